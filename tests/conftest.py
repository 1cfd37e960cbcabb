import os

import torch

# Two cores shared by pytest, helpers and other jobs: one intra-op thread avoids OpenMP
# oversubscription, which slows small updates down by orders of magnitude.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
