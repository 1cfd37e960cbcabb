"""PLASTIC's synthetic plasticity experiments (paper Sec. 3): input and label adaptation.

``run_synthetic(synthetic_config("input", "plastic"), out_dir)`` runs one experiment (with the
authors' update; ``fidelity="intent"`` for the method as the paper states it);
``run_grid`` runs all methods × tasks × seeds in parallel and writes a table and figures.
"""

from plastic.synthetic.data import ImageDataset, load_cifar10, load_dataset, load_digits_dataset
from plastic.synthetic.experiment import SyntheticConfig, run_synthetic, synthetic_config
from plastic.synthetic.grid import run_grid, write_report
from plastic.synthetic.models import METHODS, Method, SyntheticConvNet, get_method
from plastic.synthetic.tasks import TASKS

__all__ = [
    "METHODS",
    "TASKS",
    "ImageDataset",
    "Method",
    "SyntheticConfig",
    "SyntheticConvNet",
    "get_method",
    "load_cifar10",
    "load_dataset",
    "load_digits_dataset",
    "run_grid",
    "run_synthetic",
    "synthetic_config",
    "write_report",
]
