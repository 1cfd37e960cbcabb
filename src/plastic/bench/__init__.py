"""Speed benchmarks of the learner update and of acting, each against a straightforward reference."""
