"""The synthetic input/label-adaptation experiments: data, tasks, Reset schedule, runs, CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tarfile
import urllib.error
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from plastic import runtime
from plastic.synthetic import data as data_mod
from plastic.synthetic.artifacts import read_csv
from plastic.synthetic.cli import main as cli_main
from plastic.synthetic.data import (
    CIFAR10_FIXED_MEAN,
    CIFAR10_FIXED_STD,
    _make_dataset,
    load_cifar10,
    load_digits_dataset,
    with_normalization,
)
from plastic.synthetic.experiment import (
    FIDELITY_PROFILES,
    METRIC_FIELDS,
    SyntheticConfig,
    head_reset_due,
    run_synthetic,
    synthetic_config,
)
from plastic.synthetic.grid import run_grid
from plastic.synthetic.models import METHODS, SyntheticConvNet, flatten_dim, get_method
from plastic.synthetic.tasks import make_chunks


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tiny models only lose time to thread hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dataset():
    """40 train / 20 test random 3×32×32 images with labels 0..9 (fast to train on)."""
    g = torch.Generator().manual_seed(123)
    x_train = torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8)
    x_test = torch.randint(0, 256, (20, 3, 32, 32), generator=g, dtype=torch.uint8)
    y_train = torch.arange(40) % 10
    y_test = torch.arange(20) % 10
    return _make_dataset("tiny", x_train, y_train, x_test, y_test)


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def tiny_config(**kw) -> SyntheticConfig:
    values = dict(task="input", method="vanilla", dataset="tiny", chunks=4, iters_per_chunk=5, batch_size=8)
    values.update(kw)
    return SyntheticConfig(**values)


class Recorder:
    def __init__(self) -> None:
        self.batches: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = defaultdict(list)
        self.evals: dict[int, torch.Tensor] = {}
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event: str, **info) -> None:
        if event == "batch":
            self.batches[info["stage"]].append((info["indices"].clone(), info["labels"].clone()))
        elif event == "eval":
            self.evals[info["stage"]] = info["labels"].clone()
        else:
            self.events.append((event, info))

    def indices(self, stage: int) -> set[int]:
        return {int(i) for idx, _ in self.batches[stage] for i in idx}


# ---------------------------------------------------------------------------------------------
# Tasks


def test_chunks_partition_the_training_set():
    chunks = make_chunks(103, 10, seed=5)
    sizes = [len(c) for c in chunks]
    assert sorted(np.concatenate(chunks).tolist()) == list(range(103))  # disjoint and complete
    assert max(sizes) - min(sizes) <= 1
    assert make_chunks(103, 10, seed=5)[3].tolist() == chunks[3].tolist()
    assert make_chunks(103, 10, seed=6)[3].tolist() != chunks[3].tolist()
    with pytest.raises(ValueError, match="chunks must be between 1 and"):
        make_chunks(5, 6, seed=0)


def test_input_task_grows_the_training_set_chunk_by_chunk(tiny_dataset):
    rec = Recorder()
    config = tiny_config(task="input", chunks=4, iters_per_chunk=5, batch_size=8, seed=3)
    run_synthetic(config, dataset=tiny_dataset, observer=rec)
    chunks = make_chunks(40, 4, seed=3)
    previous: set[int] = set()
    for stage in range(4):
        used = rec.indices(stage)
        # 5 batches of 8 cover every image of the stage's set (at most 40 images)
        assert used == set(np.concatenate(chunks[: stage + 1]).tolist())
        assert len(used) == 10 * (stage + 1)
        assert previous < used and len(used - previous) == 10  # exactly one new chunk
        previous = used
        for idx, labels in rec.batches[stage]:  # true labels on the input task
            assert torch.equal(labels, tiny_dataset.y_train[idx])
        assert torch.equal(rec.evals[stage], tiny_dataset.y_test)


def test_label_task_shifts_train_and_test_labels_by_the_chunk_index(tiny_dataset):
    rec = Recorder()
    config = tiny_config(task="label", chunks=3, iters_per_chunk=5, batch_size=8)
    run_synthetic(config, dataset=tiny_dataset, observer=rec)
    for stage in range(3):
        assert rec.indices(stage) == set(range(40))  # all data from the start
        for idx, labels in rec.batches[stage]:
            expected = [(int(tiny_dataset.y_train[i]) + stage) % 10 for i in idx]
            assert labels.tolist() == expected
        expected_test = [(int(y) + stage) % 10 for y in tiny_dataset.y_test]
        assert rec.evals[stage].tolist() == expected_test
    assert not torch.equal(rec.evals[1], rec.evals[0])


def test_logged_test_accuracy_and_loss_are_the_models_on_the_chunks_labels(tiny_dataset, tmp_path):
    # recomputed by hand after each chunk's last step: argmax accuracy and mean cross-entropy of the
    # model on every test image, against that chunk's shifted labels
    by_hand: dict[int, tuple[float, float]] = {}
    model: list[torch.nn.Module] = []

    def observe(event: str, **info) -> None:
        if event == "step":
            model[:] = [info["model"]]
        elif event == "eval":
            net = model[0]
            net.eval()
            with torch.no_grad():
                logits = net(tiny_dataset.prepare(tiny_dataset.x_test, torch.device("cpu"))).double()
            net.train()
            labels = info["labels"].numpy()
            log_probs = torch.log_softmax(logits, dim=1).numpy()
            by_hand[info["stage"]] = (
                float(np.mean(logits.numpy().argmax(axis=1) == labels)),
                float(-np.mean(log_probs[np.arange(len(labels)), labels])))

    config = tiny_config(task="label", chunks=3, iters_per_chunk=20, batch_size=8)
    run_synthetic(config, tmp_path, dataset=tiny_dataset, observer=observe)
    rows = read_csv(tmp_path / "metrics.csv")
    assert len(rows) == 3
    for row in rows:
        accuracy, loss = by_hand[int(row["chunk"])]
        assert float(row["test_acc"]) == pytest.approx(accuracy, abs=1e-6)
        assert float(row["test_loss"]) == pytest.approx(loss, rel=1e-4)
    assert len({acc for acc, _ in by_hand.values()}) > 1  # the labels move: so does the accuracy


# ---------------------------------------------------------------------------------------------
# Reset


@pytest.mark.parametrize("method", ["reset", "plastic"])
def test_reset_every_10_chunks_on_the_head_only(tiny_dataset, tmp_path, method):
    """The intent profile (SyntheticConfig's default): before chunks 10, 20; head momentum cleared."""
    snapshots = {}
    checks = []

    def observer(event, **info):
        if event == "pre_reset":
            snapshots.update({k: v.clone() for k, v in info["model"].state_dict().items()})
        elif event == "reset":
            model, opt = info["model"], info["optimizer"]
            after = model.state_dict()
            backbone_same = all(
                torch.equal(after[k], snapshots[k]) for k in after if k.startswith("backbone.")
            )
            head_weights = [k for k in after if k.startswith("head.") and k.endswith("weight")]
            head_changed = all(not torch.equal(after[k], snapshots[k]) for k in head_weights)
            head_state = [opt.state.get(p) for p in model.head.parameters()]
            backbone_state = [opt.state.get(p) for p in model.backbone.parameters()]
            checks.append((info["stage"], backbone_same, head_changed, head_state, backbone_state))

    config = tiny_config(task="label", method=method, chunks=21, iters_per_chunk=1, batch_size=4, lr=0.05)
    summary = run_synthetic(config, tmp_path / "run", dataset=tiny_dataset, observer=observer)
    assert [c[0] for c in checks] == [10, 20]
    assert summary["resets"] == 2
    for _, backbone_same, head_changed, head_state, backbone_state in checks:
        assert backbone_same
        assert head_changed
        assert all(not s for s in head_state)  # momentum of the head cleared
        assert all(s for s in backbone_state)  # ... and only of the head
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert [int(r["chunk"]) for r in rows if r["reset"] == "1"] == [10, 20]


def test_no_reset_without_the_reset_component(tiny_dataset):
    rec = Recorder()
    config = tiny_config(task="label", method="crelu", chunks=11, iters_per_chunk=1, batch_size=4)
    summary = run_synthetic(config, dataset=tiny_dataset, observer=rec)
    assert summary["resets"] == 0
    assert not [e for e, _ in rec.events if e == "reset"]


# ---------------------------------------------------------------------------------------------
# Fidelity


def test_reset_schedules_over_the_papers_100_chunks():
    def stages(**kw):
        config = SyntheticConfig(task="label", method="reset", **kw).resolved()
        return [s for s in range(100) if head_reset_due(s, config)]

    assert stages() == stages(fidelity="intent") == list(range(10, 100, 10))
    # the authors reset after chunks 0, 10, ..., 90: before chunks 1, 11, ..., 91
    assert stages(fidelity="authors") == stages(reset_schedule="after_chunk") == list(range(1, 100, 10))
    assert stages(fidelity="authors", reset_schedule="before_chunk") == list(range(10, 100, 10))


def test_profiles_fill_only_the_knobs_left_unset():
    intent = SyntheticConfig(task="input", method="plastic").resolved()
    authors = synthetic_config("input", "plastic").resolved()
    knobs = list(FIDELITY_PROFILES["intent"])
    assert {k: getattr(intent, k) for k in knobs} == FIDELITY_PROFILES["intent"]
    assert authors.fidelity == "authors"
    assert {k: getattr(authors, k) for k in knobs} == FIDELITY_PROFILES["authors"]
    assert synthetic_config("input", "plastic", reset_momentum=True).resolved().reset_momentum is True
    for bad in ({"fidelity": "paper"}, {"reset_schedule": "never"}, {"normalization": "imagenet"}):
        with pytest.raises(ValueError, match="valid choices"):
            synthetic_config("input", "plastic", **bad).resolved()
    with pytest.raises(ValueError, match="reset_momentum must be true or false"):
        synthetic_config("input", "plastic", reset_momentum="no").resolved()


def test_authors_profile_resets_after_chunk_0_and_keeps_the_head_momentum(tiny_dataset):
    checks = []

    def observer(event, **info):
        if event in ("pre_reset", "reset"):
            model, opt = info["model"], info["optimizer"]
            checks.append(
                (
                    event,
                    info["stage"],
                    [opt.state[p]["momentum_buffer"].clone() for p in model.head.parameters()],
                )
            )

    config = synthetic_config("label", "reset", dataset="tiny", chunks=12, iters_per_chunk=1, batch_size=4)
    summary = run_synthetic(config, dataset=tiny_dataset, observer=observer)
    assert summary["resets"] == 2 and summary["fidelity"] == "authors"
    assert [(event, stage) for event, stage, _ in checks] == [
        ("pre_reset", 1), ("reset", 1), ("pre_reset", 11), ("reset", 11)
    ]  # fmt: skip
    for before, after in [(checks[0][2], checks[1][2]), (checks[2][2], checks[3][2])]:
        assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_cifar_normalization_uses_the_authors_constants(tiny_dataset):
    x = tiny_dataset.x_train[:3]
    fixed = with_normalization(tiny_dataset, "cifar")
    mean = torch.tensor(CIFAR10_FIXED_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_FIXED_STD).view(1, 3, 1, 1)
    assert torch.equal(fixed.prepare(x), (x.float() / 255 - mean) / std)
    assert with_normalization(tiny_dataset, "data") is tiny_dataset
    assert not torch.allclose(fixed.prepare(x), tiny_dataset.prepare(x))
    assert fixed.x_train is tiny_dataset.x_train  # the images are shared, not copied
    with pytest.raises(ValueError, match="valid choices: data, cifar"):
        with_normalization(tiny_dataset, "imagenet")


def test_a_config_saved_before_the_knobs_keeps_its_meaning(tmp_path):
    """Recorded runs' config.json have no fidelity keys: they load as the intent profile, a
    finished one is still skipped under its own config and refused under the authors profile."""
    recorded = Path(__file__).parents[1] / "benchmarks/synthetic/reduced_grid/label/reset/seed_0"
    saved = json.loads((recorded / "config.json").read_text())
    assert "fidelity" not in saved
    config = SyntheticConfig.from_dict(saved).resolved()
    assert config.fidelity == "intent"
    assert {k: getattr(config, k) for k in FIDELITY_PROFILES["intent"]} == FIDELITY_PROFILES["intent"]

    run_dir = tmp_path / "old"
    run_dir.mkdir()
    for name in ("config.json", "summary.json", "metrics.csv"):
        (run_dir / name).write_bytes((recorded / name).read_bytes())
    assert run_synthetic(SyntheticConfig.from_dict(saved), run_dir)["skipped"]
    values = {k: v for k, v in saved.items() if k not in ("task", "method")}
    with pytest.raises(ValueError, match="different config .*fidelity: 'intent' there, 'authors' now"):
        run_synthetic(synthetic_config(saved["task"], saved["method"], **values), run_dir)


def test_cli_defaults_to_the_authors_profile(tmp_path):
    common = ["input", "--method", "reset", "--dataset", "digits", "--chunks", "2", "--iters-per-chunk", "1",
              "--batch-size", "8"]  # fmt: skip
    assert cli_main([*common, "--out", str(tmp_path / "a")]) == 0
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["fidelity"] == "authors"
    assert {k: saved[k] for k in FIDELITY_PROFILES["authors"]} == FIDELITY_PROFILES["authors"]
    assert (
        cli_main([*common, "--fidelity", "intent", "--no-reset-momentum", "--out", str(tmp_path / "b")]) == 0
    )
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["fidelity"] == "intent" and saved["normalization"] == "data"
    assert saved["reset_momentum"] is False  # an explicit option wins over the profile


def skip_where_subnormals_cannot_be_flushed() -> None:
    with runtime.denormals_flushed() as flushed:
        if not flushed:
            pytest.skip("this CPU cannot flush subnormal floats")


@pytest.mark.parametrize("flush", [True, False])
def test_a_run_trains_with_subnormals_flushed_unless_told_and_restores_the_setting(tiny_dataset, flush):
    skip_where_subnormals_cannot_be_flushed()
    before = runtime.denormals_are_flushed()
    seen = set()

    def observer(event: str, **info) -> None:  # the setting, and what it does to a subnormal 1e-39
        seen.add((runtime.denormals_are_flushed(), (torch.tensor([1e-39]) * 1.0).item() == 0.0))

    config = tiny_config(chunks=1, iters_per_chunk=2, **({} if flush else {"flush_denormal": False}))
    run_synthetic(config, dataset=tiny_dataset, observer=observer)
    assert seen == {(flush, flush)}
    assert runtime.denormals_are_flushed() == before


def test_flush_denormal_is_a_cli_option_and_never_makes_a_finished_run_differ(tmp_path):
    common = ["input", "--method", "vanilla", "--dataset", "digits", "--chunks", "1",
              "--iters-per-chunk", "1", "--batch-size", "8", "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli_main([*common, "--no-flush-denormal"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["flush_denormal"] is False
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    # the same run asked for with flushing on is the finished one, not a different config
    config = SyntheticConfig.from_dict({**json.loads((tmp_path / "run" / "config.json").read_text()),
                                        "flush_denormal": True})
    assert run_synthetic(config, tmp_path / "run") == {**saved, "skipped": True}
    with pytest.raises(ValueError, match="flush_denormal must be true or false, got 'yes'"):
        tiny_config(flush_denormal="yes").resolved()


_CHECK_EVERY_THREAD_FLUSHES = """
import sys, torch
from plastic.synthetic import cli, data, experiment
load, run = data.load_dataset, experiment.run_synthetic
def load_dataset(*args, **kwargs):  # a parallel op first, as converting a large dataset may be
    torch.ones(4_000_000).sum()
    return load(*args, **kwargs)
def run_synthetic(*args, **kwargs):  # where the run starts: a 2-thread op on subnormals
    subnormals = torch.full((4_000_000,), 1 << 20, dtype=torch.int32).view(torch.float32)  # 1.5e-39
    result = subnormals * 1.0
    print("ZEROS", int((result == 0).sum()), result.numel(), flush=True)
    return run(*args, **kwargs)
data.load_dataset, experiment.run_synthetic = load_dataset, run_synthetic
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("flush", [True, False])
def test_the_cli_flushes_in_every_torch_thread_with_two_threads(tmp_path, flush):
    """torch's worker threads copy the setting when they start, at the first parallel op: the CLI
    enters it before it loads the data, so the second thread's half of an op flushes too."""
    skip_where_subnormals_cannot_be_flushed()
    args = ["input", "--method", "vanilla", "--dataset", "digits", "--chunks", "1", "--iters-per-chunk", "1",
            "--batch-size", "8", "--threads", "2", "--out", str(tmp_path / "run"),
            "--flush-denormal" if flush else "--no-flush-denormal"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", _CHECK_EVERY_THREAD_FLUSHES, *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    zeros, total = (int(v) for v in done.stdout.split("ZEROS ")[1].split()[:2])
    assert zeros == (total if flush else 0)


# ---------------------------------------------------------------------------------------------
# Data


def _write_fake_cifar(folder: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list]]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    content = {}
    for name in [*data_mod.CIFAR10_TRAIN_BATCHES, data_mod.CIFAR10_TEST_BATCH]:
        raw = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": raw, b"labels": labels}, f)
        content[name] = (raw, labels)
    return content


def test_cifar10_pickle_loader_reads_a_fake_set(tmp_path):
    content = _write_fake_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path, download=False)
    assert ds.name == "cifar10"
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8
    raw3, labels3 = content["data_batch_3"]
    # image 1 of batch 3 is train image 9; a row is the R plane, then G, then B, each row-major
    for c, h, w in [(0, 0, 0), (1, 5, 17), (2, 31, 30)]:
        assert ds.x_train[9, c, h, w].item() == raw3[1, c * 1024 + h * 32 + w]
    assert ds.y_train[8:12].tolist() == labels3
    assert ds.y_test.tolist() == content["test_batch"][1]
    # standardisation uses the training set's per-channel statistics
    x = ds.prepare(ds.x_train)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_cifar10_archive_is_checksum_verified(tmp_path, monkeypatch):
    _write_fake_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(ValueError, match="md5 checksum"):
        load_cifar10(archive.parent, download=False)
    monkeypatch.setattr(data_mod, "CIFAR10_MD5", data_mod.md5sum(archive))
    from_archive = load_cifar10(archive.parent, download=False)
    from_folder = load_cifar10(tmp_path / "src", download=False)
    assert torch.equal(from_archive.x_train, from_folder.x_train)
    assert torch.equal(from_archive.y_test, from_folder.y_test)


def test_missing_cifar10_says_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz") as err:
        load_cifar10(tmp_path, download=False)
    assert str(tmp_path) in str(err.value) and "--dataset digits" in str(err.value)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)
    with pytest.raises(FileNotFoundError, match="download failed"):
        load_cifar10(tmp_path, download=True)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_auto_dataset_falls_back_to_digits(tmp_path, capsys):
    ds = data_mod.load_dataset("auto", tmp_path)
    assert ds.name == "digits"
    assert "digits" in capsys.readouterr().out
    with pytest.raises(ValueError, match="valid choices: auto, cifar10, digits"):
        data_mod.load_dataset("mnist")


def test_digits_loader_shapes_and_content(digits):
    from sklearn.datasets import load_digits

    assert digits.x_train.shape == (1437, 3, 32, 32) and digits.x_test.shape == (360, 3, 32, 32)
    assert digits.y_train.shape == (1437,) and digits.y_test.shape == (360,)
    assert digits.x_train.dtype == torch.float32 and digits.x_train.min() >= 0.0
    assert digits.x_train.max() <= 1.0
    assert torch.equal(digits.x_train[:, 0], digits.x_train[:, 2])  # grayscale replicated
    assert np.bincount(digits.y_test.numpy(), minlength=10).min() >= 35  # stratified split
    again = load_digits_dataset()
    assert torch.equal(again.x_test, digits.x_test)  # the split is fixed
    # Each upsampled test image, pooled back to 8×8, is closest to an original digit of its label.
    original = torch.from_numpy(load_digits().images / 16.0).float().flatten(1)
    pooled = F.avg_pool2d(digits.x_test[:, :1], 4).flatten(1)
    dist = torch.cdist(pooled, original)
    best = dist.argmin(dim=1)
    assert dist.min(dim=1).values.max() < 1.2  # bilinear blur, not another digit
    assert torch.equal(torch.from_numpy(load_digits().target)[best], digits.y_test)


# ---------------------------------------------------------------------------------------------
# Model and methods


def test_model_shapes_and_methods():
    assert flatten_dim(32) == 2304
    x = torch.randn(2, 3, 32, 32)
    plain, crelu_ln = SyntheticConvNet(), SyntheticConvNet(layer_norm=True, crelu=True)
    assert plain(x).shape == crelu_ln(x).shape == (2, 10)
    assert [m.out_features for m in plain.head if isinstance(m, torch.nn.Linear)] == [512, 128, 10]
    assert [m.in_features for m in crelu_ln.head if isinstance(m, torch.nn.Linear)] == [
        2304,
        768,
        384,
    ]
    norms = [m for m in crelu_ln.backbone if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(n.num_groups == 1 for n in norms)
    assert get_method("plastic") == get_method("plastic").__class__(True, True, True, True)
    with pytest.raises(ValueError, match="valid choices: vanilla, ln, sam, crelu, reset, plastic"):
        get_method("adam")
    with pytest.raises(ValueError, match="unknown method 'adam'"):
        run_synthetic(tiny_config(method="adam"))
    with pytest.raises(ValueError, match="valid choices: input, label"):
        run_synthetic(tiny_config(task="output"))
    assert list(METHODS) == ["vanilla", "ln", "sam", "crelu", "reset", "plastic"]


# ---------------------------------------------------------------------------------------------
# End to end


def test_tiny_run_writes_artifacts_and_is_deterministic(digits, tmp_path):
    config = SyntheticConfig(
        task="label", method="plastic", dataset="digits", chunks=3, iters_per_chunk=2,
        batch_size=16, seed=7, hessian=True, hessian_iters=3, probe_size=32,
    )  # fmt: skip
    first = run_synthetic(config, tmp_path / "a", dataset=digits)
    assert not first["skipped"]
    for name in ("config.json", "metrics.csv", "summary.json"):
        assert (tmp_path / "a" / name).is_file()
    assert not list((tmp_path / "a").glob(".*tmp"))  # no leftovers of atomic writes
    rows = read_csv(tmp_path / "a" / "metrics.csv")
    assert list(rows[0]) == list(METRIC_FIELDS) and len(rows) == 3
    accs = [float(r["test_acc"]) for r in rows]
    assert [float(r["test_acc_mean"]) for r in rows] == pytest.approx(
        [np.mean(accs[: i + 1]) for i in range(3)]
    )
    assert all(np.isfinite(float(r["hessian_top"])) for r in rows)
    assert all(0.0 <= float(r["active_backbone"]) <= 1.0 for r in rows)
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved["final_test_acc"] == accs[-1] and saved["mean_test_acc"] == pytest.approx(np.mean(accs))
    assert json.loads((tmp_path / "a" / "config.json").read_text())["lr"] == 1e-2

    again = run_synthetic(config, tmp_path / "a", dataset=digits)
    assert again["skipped"] and again["final_test_acc"] == first["final_test_acc"]

    second = run_synthetic(config, tmp_path / "b", dataset=digits)
    rows_b = read_csv(tmp_path / "b" / "metrics.csv")
    drop = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]  # noqa: E731
    assert drop(rows_b) == drop(rows)
    assert second["final_train_loss"] == first["final_train_loss"]

    other_seed = run_synthetic(
        SyntheticConfig(**{**config.to_dict(), "seed": 8, "hessian": False}), dataset=digits
    )
    assert other_seed["final_train_loss"] != first["final_train_loss"]

    with pytest.raises(ValueError, match="different config"):
        run_synthetic(SyntheticConfig(**{**config.to_dict(), "seed": 8}), tmp_path / "a")


def test_cli_run_and_grid_report(tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(
        ["input", "--method", "ln", "--dataset", "digits", "--chunks", "2",
         "--iters-per-chunk", "1", "--batch-size", "8", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "ln" and summary["chunks"] == 2 and summary["dataset"] == "digits"
    with pytest.raises(SystemExit):
        cli_main(["input", "--method", "adam"])
    assert "invalid choice: 'adam'" in capsys.readouterr().err

    base = SyntheticConfig(
        task="input", method="vanilla", dataset="digits", chunks=2, iters_per_chunk=1, batch_size=8
    )
    grid_dir = tmp_path / "grid"
    run_grid(grid_dir, base, methods=["vanilla", "crelu"], seeds=[0, 1], workers=1)
    for name in ("results.md", "results.json", "final_accuracy.png", "accuracy_curves.png"):
        assert (grid_dir / name).is_file()
    assert len(list(grid_dir.glob("*/*/seed_*/summary.json"))) == 2 * 2 * 2
    table = json.loads((grid_dir / "results.json").read_text())
    assert set(table) == {"input", "label"} and list(table["label"]) == ["vanilla", "crelu"]
    finals = [
        json.loads(p.read_text())["final_test_acc"]
        for p in sorted((grid_dir / "label" / "crelu").glob("seed_*/summary.json"))
    ]
    assert table["label"]["crelu"]["final_acc_mean"] == pytest.approx(np.mean(finals))
    assert "| crelu |" in (grid_dir / "results.md").read_text()


def test_sam_with_zero_radius_trains_exactly_like_sgd(tiny_dataset):
    """SAM at ρ = 0 evaluates the gradient at w itself, so it must reproduce plain SGD."""
    common = dict(task="label", chunks=2, iters_per_chunk=3, batch_size=8, seed=4)
    sgd = run_synthetic(tiny_config(method="vanilla", **common), dataset=tiny_dataset)
    sam0 = run_synthetic(tiny_config(method="sam", rho=0.0, **common), dataset=tiny_dataset)
    sam = run_synthetic(tiny_config(method="sam", **common), dataset=tiny_dataset)
    assert sam0["final_train_loss"] == pytest.approx(sgd["final_train_loss"], rel=1e-6)
    assert sam["final_train_loss"] != pytest.approx(sgd["final_train_loss"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# What a user meets: one-line errors, progress


def _cli_error(capsys, argv: list[str]) -> str:
    """Runs `plastic ARGV`, which must fail with exit code 2 and one line on stderr; returns it."""
    from plastic.cli import main as plastic_main

    capsys.readouterr()
    assert plastic_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not_a_batch", "wrong_shape"])
def test_a_junk_cifar_batch_is_named_in_one_line(tmp_path, capsys, damage):
    folder = tmp_path / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    batch = folder / "data_batch_3"
    if damage == "truncated":
        batch.write_bytes(batch.read_bytes()[:200])
    elif damage == "garbage":
        batch.write_bytes(b"\x80\x04junk that is no pickle at all" * 10)
    elif damage == "not_a_batch":
        batch.write_bytes(pickle.dumps([1, 2, 3]))
    else:
        batch.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}))
    err = _cli_error(capsys, ["synthetic", "input", "--method", "vanilla", "--dataset", "cifar10",
                              "--data-dir", str(tmp_path), "--no-download", "--chunks", "1"])
    assert str(batch) in err and "CIFAR-10" in err


def test_a_cifar_archive_with_a_wrong_md5_or_junk_inside_is_named_in_one_line(tmp_path, capsys, monkeypatch):
    archive = tmp_path / data_mod.CIFAR10_ARCHIVE
    archive.write_bytes(b"not a tarball")
    argv = ["synthetic", "label", "--method", "reset", "--data-dir", str(tmp_path), "--chunks", "1"]
    err = _cli_error(capsys, argv)
    assert str(archive) in err and "md5" in err
    monkeypatch.setattr(data_mod, "md5sum", lambda path: data_mod.CIFAR10_MD5)  # pretend it matches
    err = _cli_error(capsys, argv)
    assert str(archive) in err and "gzip" in err.lower()
    _write_fake_cifar(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "src" / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02junk")
    archive.unlink()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    err = _cli_error(capsys, argv)
    assert f"{archive}:cifar-10-batches-py/test_batch" in err


def test_a_run_reports_every_chunk_with_elapsed_time_and_eta(tmp_path, capsys):
    from plastic.cli import main as plastic_main

    assert plastic_main(["synthetic", "label", "--method", "vanilla", "--dataset", "digits", "--chunks", "20",
                         "--iters-per-chunk", "1", "--batch-size", "8", "--out", str(tmp_path / "run")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " chunk " in line]
    assert [line.split(" chunk ")[1].split(":")[0] for line in lines] == [f"{k}/20" for k in range(1, 21)]
    for line in lines:
        assert line.startswith("[synthetic] label/vanilla seed 0 chunk ") and len(line) < 110, line
        assert "test acc 0." in line and " elapsed" in line and ", ETA " in line, line


def test_the_demo_says_how_it_goes_and_ends_in_an_aligned_table(capsys):
    """`plastic demo` (the digits label-shifting demo of the building blocks): a line per stage of
    each model, then a table of both models, then how to read its Hessian row."""
    from plastic.cli import main as plastic_main
    from plastic.demo import ROWS

    assert plastic_main(["demo", "--stages", "2", "--iters", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("[demo] ") and ": stage " in line]
    assert [line.split(": test accuracy")[0] for line in progress] == [
        "[demo] plain: stage 1/2", "[demo] plain: stage 2/2",
        "[demo] PLASTIC: stage 1/2", "[demo] PLASTIC: stage 2/2 (head Reset first)"]
    start = lines.index(next(line for line in lines if line.split() == ["plain", "PLASTIC"]))
    table = lines[start:start + 1 + len(ROWS)]
    assert len({len(line) for line in table}) == 1  # aligned: every row as wide as the header
    for (label, _, _), line in zip(ROWS, table[1:], strict=True):
        assert line.startswith(label)
        plain, plastic = (float(x) for x in line[len(label):].split())
        assert np.isfinite(plain) and np.isfinite(plastic)
    note = [line for line in lines[start + 1 + len(ROWS):] if line.strip()]
    assert len(note) == 1 and "Hessian" in note[0] and "paper" in note[0]
    assert not any("{" in line for line in lines)  # no dict reprs
