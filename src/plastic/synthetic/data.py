"""Image classification data for the synthetic plasticity experiments.

Two sources, both returned as an :class:`ImageDataset` of 3×32×32 images with 10 classes:

- CIFAR-10 in its standard python-pickle distribution (``data_batch_1..5`` and ``test_batch``),
  either extracted (``cifar-10-batches-py/``) or as the original ``cifar-10-python.tar.gz``
  (md5-checked), downloaded only when asked and when the network allows.
- scikit-learn's handwritten digits (1,797 8×8 grayscale images that ship inside scikit-learn),
  upsampled to 32×32 and replicated over 3 channels, for machines without CIFAR-10.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torch.nn.functional as F

DATASETS = ("auto", "cifar10", "digits")
NORMALIZATIONS = ("data", "cifar")
# The fixed statistics of the authors' CIFAR-10 transform (synthetic/input_adaptation.py:59). The
# std is the widely copied (0.2023, 0.1994, 0.2010), not the per-channel std of the CIFAR-10
# training set (about 0.247, 0.243, 0.261), so their inputs have a std of about 1.2.
CIFAR10_FIXED_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_FIXED_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
IMAGE_SIZE = 32


@dataclass(frozen=True)
class ImageDataset:
    """Train and test images (N×3×H×W, stored compactly) with integer labels.

    ``x_*`` hold raw pixels: uint8 in [0, 255] for CIFAR-10, float32 in [0, 1] for digits.
    :meth:`prepare` turns a batch of them into standardised float32 inputs (per-channel mean and
    standard deviation of the training set), so a 50,000-image CIFAR-10 costs 150 MB, not 600.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor  # (3,) per-channel mean of the training set, in [0, 1] pixel units
    std: torch.Tensor  # (3,)
    num_classes: int = 10

    @property
    def pixel_scale(self) -> float:
        return 255.0 if self.x_train.dtype == torch.uint8 else 1.0

    def prepare(self, x: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """Standardised float32 inputs for a batch of raw images, on ``device``."""
        x = x.to(device=device, dtype=torch.float32) / self.pixel_scale
        mean = self.mean.to(x.device).view(1, -1, 1, 1)
        std = self.std.to(x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def with_normalization(dataset: ImageDataset, normalization: str) -> ImageDataset:
    """``dataset`` standardised by its own training-set statistics ("data", as loaded) or by the
    fixed CIFAR-10 constants of the authors' code ("cifar", whatever the images are)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; valid choices: {', '.join(NORMALIZATIONS)}"
        )
    if normalization == "data":
        return dataset
    mean = torch.tensor(CIFAR10_FIXED_MEAN, dtype=torch.float32)
    return replace(dataset, mean=mean, std=torch.tensor(CIFAR10_FIXED_STD, dtype=torch.float32))


def _channel_stats(x: torch.Tensor, pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.zeros(x.shape[1], dtype=torch.float64)
    sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), 4096):  # in pieces: a float copy of CIFAR-10 is 600 MB
        part = x[start : start + 4096].to(torch.float64) / pixel_scale
        mean += part.sum(dim=(0, 2, 3))
        sq += (part**2).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean /= count
    std = (sq / count - mean**2).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def _make_dataset(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> ImageDataset:
    scale = 255.0 if x_train.dtype == torch.uint8 else 1.0
    mean, std = _channel_stats(x_train, scale)
    return ImageDataset(name, x_train, y_train, x_test, y_test, mean, std)


# ----------------------------------------------------------------------------------------------
# CIFAR-10


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


_BATCH_HELP = (
    "re-extract it from the official cifar-10-python.tar.gz, or delete it (--dataset digits runs "
    "without CIFAR-10)"
)


def _unpickle_batch(raw: bytes | IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels of one CIFAR-10 python batch; ``ValueError`` naming
    ``where`` (its file) and what is wrong when it is not one."""
    try:
        # encoding="bytes": the batches were pickled by Python 2 (byte strings, numpy arrays).
        entry = pickle.loads(raw, encoding="bytes") if isinstance(raw, bytes) else \
            pickle.load(raw, encoding="bytes")
    except Exception as error:  # pickle raises many kinds for a truncated or foreign file
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{where} is not a readable CIFAR-10 batch ({type(error).__name__}: "
                         f"{reason[:120]}); {_BATCH_HELP}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a CIFAR-10 batch (it holds a {type(entry).__name__}, not "
                         f"a dict with 'data' and 'labels'); {_BATCH_HELP}")
    data = entry.get(b"data", entry.get("data"))
    labels = entry.get(b"labels", entry.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{where} is not a CIFAR-10 batch: it has no 'data' and 'labels' entries; "
                         f"{_BATCH_HELP}")
    try:
        images = np.asarray(data, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} is not a CIFAR-10 batch ({error}); {_BATCH_HELP}") from None
    if images.ndim != 2 or images.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE or len(images) != len(labels):
        raise ValueError(f"{where} is not a CIFAR-10 batch: its data has shape {images.shape} for "
                         f"{len(labels)} labels, not (N, 3072) for N labels; {_BATCH_HELP}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{where} is not a CIFAR-10 batch: labels outside 0-9; {_BATCH_HELP}")
    return images.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE), labels


def _stack(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return torch.from_numpy(x), torch.from_numpy(y)


def _read_cifar_folder(folder: Path) -> ImageDataset:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(folder / name, "rb") as f:
            return _unpickle_batch(f, str(folder / name))

    x_train, y_train = _stack([read(n) for n in CIFAR10_TRAIN_BATCHES])
    x_test, y_test = _stack([read(CIFAR10_TEST_BATCH)])
    return _make_dataset("cifar10", x_train, y_train, x_test, y_test)


def _read_cifar_archive(archive: Path) -> ImageDataset:
    """Read the batches straight out of the (already checksum-verified) tarball."""
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    wanted = set(CIFAR10_TRAIN_BATCHES) | {CIFAR10_TEST_BATCH}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and base in wanted:
                    fobj = tar.extractfile(member)
                    assert fobj is not None
                    found[base] = _unpickle_batch(fobj.read(), f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:  # a damaged gzip stream
        raise ValueError(f"{archive} cannot be read as a gzipped tar archive ({type(error).__name__}: "
                         f"{' '.join(str(error).split())}); delete it and put the official "
                         f"{CIFAR10_ARCHIVE} there") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{archive} is not a CIFAR-10 python archive: missing {', '.join(missing)}")
    x_train, y_train = _stack([found[n] for n in CIFAR10_TRAIN_BATCHES])
    x_test, y_test = _stack([found[CIFAR10_TEST_BATCH]])
    return _make_dataset("cifar10", x_train, y_train, x_test, y_test)


def _cifar_folder_in(data_dir: Path) -> Path | None:
    for folder in (data_dir / CIFAR10_FOLDER, data_dir):
        if all((folder / n).is_file() for n in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)):
            return folder
    return None


def find_cifar10(data_dir: str | os.PathLike | None) -> Path | None:
    """The extracted batch folder or the archive under ``data_dir``, or None if neither is there."""
    if data_dir is None:
        return None
    data_dir = Path(data_dir)
    folder = _cifar_folder_in(data_dir)
    if folder is not None:
        return folder
    archive = data_dir / CIFAR10_ARCHIVE
    return archive if archive.is_file() else None


def verify_cifar10_archive(archive: str | os.PathLike, expected_md5: str | None = None) -> None:
    expected_md5 = expected_md5 or CIFAR10_MD5
    actual = md5sum(archive)
    if actual != expected_md5:
        raise ValueError(
            f"{archive}: md5 checksum {actual} does not match CIFAR-10's {expected_md5}; "
            "the file is corrupt or not the official cifar-10-python.tar.gz — delete it and "
            "download it again"
        )


def download_cifar10(data_dir: str | os.PathLike, timeout: float = 10.0) -> Path:
    """Download the official archive into ``data_dir`` (atomically) and verify its checksum.

    Fails fast (``timeout`` seconds to connect and between reads) when there is no network.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / CIFAR10_ARCHIVE
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".cifar10-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(CIFAR10_URL, timeout=timeout) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                out.write(block)
        verify_cifar10_archive(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _missing_cifar_message(data_dir: Path | None, reason: str) -> str:
    where = str(data_dir) if data_dir is not None else "DIR (pass --data-dir DIR)"
    return (
        f"CIFAR-10 not found and {reason}. Put the official python version there: either "
        f"{where}/{CIFAR10_ARCHIVE} (md5 {CIFAR10_MD5}, from {CIFAR10_URL}) or its extracted "
        f"folder {where}/{CIFAR10_FOLDER}/ with data_batch_1..5 and test_batch. "
        "Or use --dataset digits (offline, ships with scikit-learn)."
    )


def load_cifar10(
    data_dir: str | os.PathLike | None, download: bool = True, timeout: float = 10.0
) -> ImageDataset:
    """CIFAR-10 from ``data_dir`` (extracted batches or the md5-checked archive).

    When neither is present and ``download`` is true, try to fetch the archive (failing fast
    without network); otherwise raise ``FileNotFoundError`` saying where to put the files.
    """
    root = Path(data_dir) if data_dir is not None else None
    found = find_cifar10(root)
    if found is None:
        if root is None or not download:
            reason = "no --data-dir was given" if root is None else "downloading is off"
            raise FileNotFoundError(_missing_cifar_message(root, reason))
        try:
            found = download_cifar10(root, timeout=timeout)
        except (OSError, ValueError) as err:  # URLError and timeouts are OSErrors
            raise FileNotFoundError(_missing_cifar_message(root, f"the download failed ({err})")) from err
    if found.is_dir():
        return _read_cifar_folder(found)
    verify_cifar10_archive(found)
    return _read_cifar_archive(found)


# ----------------------------------------------------------------------------------------------
# scikit-learn digits


def load_digits_dataset(
    image_size: int = IMAGE_SIZE,
    test_fraction: float = DIGITS_TEST_FRACTION,
    split_seed: int = DIGITS_SPLIT_SEED,
) -> ImageDataset:
    """scikit-learn's 8×8 digits, bilinearly upsampled to ``image_size`` and made 3-channel.

    The train/test split is fixed (stratified, ``split_seed``): 1,437 train and 360 test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # N,1,8,8
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=test_fraction,
        random_state=split_seed,
        stratify=digits.target,
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return _make_dataset("digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def load_dataset(
    name: str = "auto",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    verbose: bool = True,
) -> ImageDataset:
    """Load ``name`` in ``DATASETS``. ``auto`` = CIFAR-10 if it is on disk under ``data_dir``,
    else digits (never downloads). Prints which dataset was chosen when ``verbose``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(DATASETS)}")
    if name == "auto":
        name = "cifar10" if find_cifar10(data_dir) is not None else "digits"
        if verbose:
            why = "found under --data-dir" if name == "cifar10" else "CIFAR-10 not found locally"
            print(f"[synthetic] dataset: {name} ({why})", flush=True)
    dataset = load_cifar10(data_dir, download=download) if name == "cifar10" else load_digits_dataset()
    if verbose:
        print(
            f"[synthetic] {dataset.name}: {len(dataset.y_train)} train / "
            f"{len(dataset.y_test)} test images of shape {tuple(dataset.x_train.shape[1:])}",
            flush=True,
        )
    return dataset


def iter_batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))
