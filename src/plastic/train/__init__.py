"""The off-policy training loop, evaluation, checkpoint/resume and logging."""
