"""Golden fixtures for DrQ (SAC) on DeepMind Control, made by running the PLASTIC authors' JAX learner.

``tests/golden/test_dmc.py`` checks that our DrQSACAgent reproduces, from the same parameters,
optimizer state, batch and random draws, one update of the authors' ``DrQLearner``
(``dmc/continuous_control/agents/drq/drq_learner.py``): their ``drq`` baseline and ``plastic``.
The test reads only the committed fixtures; this script is needed only to remake them.

Getting the authors' code: fetch the public GitHub repository dojeon-ai/PLASTIC and export its
tree (``git archive HEAD | tar -x -C /path/to/PLASTIC``, or any checkout); point
``PLASTIC_AUTHORS_DIR`` at its root (the folder holding ``dmc/``; the ``dmc`` folder itself works
too). Their code is imported, never copied.

Environment: their pins (``dmc/plastic_dmc.yaml``: python 3.9, jax 0.4.8, jaxlib 0.4.7, flax 0.6.8,
optax 0.1.4, chex 0.1.7, tensorflow-probability 0.19.0, numpy 1.21.0, scipy 1.7.1) except jaxlib,
whose oldest wheel on PyPI is 0.4.13, so jax and jaxlib are both 0.4.13. In a separate venv (not
the project's)::

    python3.9 -m venv /work/jaxenv    # e.g. /root/.pyenv/versions/3.9.18/bin/python
    /work/jaxenv/bin/pip install jax==0.4.13 jaxlib==0.4.13 flax==0.6.8 optax==0.1.4 chex==0.1.7 \\
        tensorflow-probability==0.19.0 numpy==1.21.0 scipy==1.7.1 tqdm
    PLASTIC_AUTHORS_DIR=/path/to/PLASTIC /work/jaxenv/bin/python tests/golden/generate_dmc.py

It runs on CPU in about two minutes (mostly XLA compiling) and writes
``tests/golden/fixtures/dmc/{drq,plastic}.npz`` (byte-identical on a rerun: fixed zip
timestamps; ``--check`` compares with them instead of writing).

What is patched, and why (their modules are otherwise imported and run as they are, jitted):

- ``continuous_control.datasets`` is stood in by an empty package so that importing its
  ``dataset`` module (``Batch``) does not pull in gym and dm_control through ``__init__``.
- Random draws are forced, so that our agent can be fed the same ones: in their
  ``augmentations`` module, ``jax.random.split`` returns the forced crop offsets (B, 2) as the
  "keys" and ``jax.random.randint`` returns its key, so their ``random_crop`` (edge pad,
  ``dynamic_slice``) crops at those offsets; in tfp's ``Normal``, ``samplers.normal`` returns the
  forced ε of the reparameterised sample (next actions in the critic target, then actions in the
  actor loss). The draws are consumed while tracing, so jax's caches are cleared before each update
  and each update must consume exactly its own draws.

The state (``DrQLearner(seed=0)``, then one warm-up update with its own batch and draws) is what
their loop has after its first update: Adam moments at step 1, a target critic that differs from
the online one, the actor's copy of the encoder equal to the critic's. The fixture is that state
("before/…"), the golden update's batch and draws ("input/…", "draw/…"), and after it
("after/…") parameters and Adam moments, the applied gradients recovered from the moments
("grad/…" = (μ_after − β1·μ_before)/(1 − β1)) and their logged values ("info/…"; under SAM their
critic loss and Qs are the perturbed pass's). "init_gram/…" are MᵀM (or MMᵀ, the smaller) of each
orthogonally initialised kernel of the fresh init, M the kernel as a (fan-in, out) matrix: gain²·I.

Names are flax's, "/"-joined: ``critic/SharedEncoder/Conv_0/kernel`` ... Layouts are flax's: images
NHWC (B, H, W, 9: 3 stacked RGB frames, oldest first), conv kernels HWIO, dense kernels (in, out),
the encoder output flattened in (H, W, C) order; the test maps them onto our networks.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dmc"

# Small sizes their config allows (configs/drq.py's are 64x64, 32-64-128-256, 256-256, 50).
SETTINGS: dict[str, Any] = {
    "image_size": 32, "channels": 9, "batch_size": 4, "action_dim": 2,
    "cnn_features": [8, 8, 8, 8], "cnn_strides": [2, 2, 2, 2], "cnn_padding": "SAME",
    "hidden_dims": [16, 16], "latent_dim": 16, "actor_lr": 1e-4, "critic_lr": 1e-4,
    "temp_lr": 1e-4, "discount": 0.99, "tau": 0.005, "init_temperature": 0.1, "seed": 0,
    "shift_pad": 4,
}
# Their train_pixels.py flags. use_CReLU is passed but never reaches the networks. The DrQ baseline
# needs only_enc=False: with use_sam=False and only_enc=True (the flag's default) their
# ModelDecoupleOpt.apply_gradient raises UnboundLocalError on `first_grads`.
VARIANTS: dict[str, dict[str, Any]] = {
    "drq": {"rho": 0.01, "use_sam": False, "only_enc": False, "use_CReLU": False, "use_LN": False},
    "plastic": {"rho": 0.01, "use_sam": True, "only_enc": True, "use_CReLU": True, "use_LN": True},
}


# ------------------------------------------------------------------------------ their code
def import_authors(root: Path) -> types.SimpleNamespace:
    """Their learner and the modules whose randomness we force."""
    dmc = root / "dmc" if (root / "dmc" / "continuous_control").is_dir() else root
    if not (dmc / "continuous_control" / "agents" / "drq" / "drq_learner.py").is_file():
        sys.exit(f"PLASTIC_AUTHORS_DIR={root}: no dmc/continuous_control/agents/drq/drq_learner.py there")
    sys.path.insert(0, str(dmc))
    datasets = types.ModuleType("continuous_control.datasets")
    datasets.__path__ = [str(dmc / "continuous_control" / "datasets")]
    sys.modules["continuous_control.datasets"] = datasets
    from continuous_control.datasets.dataset import Batch

    datasets.Batch = Batch
    import continuous_control.agents.drq.augmentations as augmentations
    import continuous_control.agents.drq.drq_learner as drq_learner
    from tensorflow_probability.substrates.jax.distributions import normal

    return types.SimpleNamespace(Batch=Batch, DrQLearner=drq_learner.DrQLearner,
                                 augmentations=augmentations, normal=normal)


class ForcedDraws:
    """Queues of crop offsets and normal draws that their code takes instead of random ones."""

    def __init__(self, authors: types.SimpleNamespace) -> None:
        import jax

        self.crops: list[np.ndarray] = []
        self.normals: list[np.ndarray] = []
        real_jax, real_samplers = jax, authors.normal.samplers
        forced = self

        class CropRandom:  # `jax.random` as their augmentations module sees it
            @staticmethod
            def split(key: Any, num: int) -> Any:
                offsets = forced.crops.pop(0)
                assert offsets.shape == (num, 2), (offsets.shape, num)
                return real_jax.numpy.asarray(offsets, dtype=real_jax.numpy.int32)

            @staticmethod
            def randint(key: Any, shape: tuple[int, ...], minval: int, maxval: int) -> Any:
                assert tuple(shape) == (2,) and (minval, maxval) == (0, 2 * SETTINGS["shift_pad"] + 1)
                return key  # one sample's forced (row, column) offset, vmapped

        class CropJax:
            random = CropRandom
            vmap = staticmethod(real_jax.vmap)
            lax = real_jax.lax

        class Samplers:  # tfp's `samplers` as its Normal distribution sees it
            def __getattr__(self, name: str) -> Any:
                return getattr(real_samplers, name)

            @staticmethod
            def normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
                       seed: Any = None) -> Any:
                eps = forced.normals.pop(0)  # (B, |A|)
                assert (mean, stddev) == (0.0, 1.0) and tuple(int(s) for s in shape) == eps.T.shape
                return real_jax.numpy.asarray(eps.T, dtype=dtype)  # tfp asks (|A|, B), then transposes

        authors.augmentations.jax = CropJax
        authors.normal.samplers = Samplers()

    def load(self, draws: dict[str, np.ndarray]) -> None:
        self.crops = [draws["obs_crop"], draws["next_obs_crop"]]
        self.normals = [draws["next_action_eps"], draws["action_eps"]]

    def check_consumed(self) -> None:
        assert not self.crops and not self.normals, "an update did not take exactly its draws"


def make_learner(authors: types.SimpleNamespace, variant: dict[str, Any]) -> Any:
    s = SETTINGS
    obs = np.zeros((1, s["image_size"], s["image_size"], s["channels"]), np.uint8)
    action = np.zeros((1, s["action_dim"]), np.float32)
    kwargs = {k: v for k, v in variant.items() if k != "rho"}
    return authors.DrQLearner(
        s["seed"], obs, action, variant["rho"], actor_lr=s["actor_lr"], critic_lr=s["critic_lr"],
        temp_lr=s["temp_lr"], hidden_dims=tuple(s["hidden_dims"]), cnn_features=tuple(s["cnn_features"]),
        cnn_strides=tuple(s["cnn_strides"]), cnn_padding=s["cnn_padding"], latent_dim=s["latent_dim"],
        discount=s["discount"], tau=s["tau"], init_temperature=s["init_temperature"], **kwargs)


# ------------------------------------------------------------------------------ data
def make_batch(rng: np.random.Generator) -> dict[str, np.ndarray]:
    s = SETTINGS
    shape = (s["batch_size"], s["image_size"], s["image_size"], s["channels"])
    return {
        "observations": rng.integers(0, 256, shape, dtype=np.uint8),
        "actions": rng.uniform(-1, 1, (s["batch_size"], s["action_dim"])).astype(np.float32),
        "rewards": rng.normal(size=s["batch_size"]).astype(np.float32),
        "masks": np.array([1, 0, 1, 1], np.float32)[: s["batch_size"]],  # one terminal transition
        "next_observations": rng.integers(0, 256, shape, dtype=np.uint8),
    }


def make_draws(rng: np.random.Generator) -> dict[str, np.ndarray]:
    s = SETTINGS
    crop = (s["batch_size"], 2)
    noise = (s["batch_size"], s["action_dim"])
    return {
        "obs_crop": rng.integers(0, 2 * s["shift_pad"] + 1, crop).astype(np.int32),
        "next_obs_crop": rng.integers(0, 2 * s["shift_pad"] + 1, crop).astype(np.int32),
        "next_action_eps": rng.normal(size=noise).astype(np.float32),
        "action_eps": rng.normal(size=noise).astype(np.float32),
    }


def run_update(learner: Any, authors: types.SimpleNamespace, forced: ForcedDraws,
               batch: dict[str, np.ndarray], draws: dict[str, np.ndarray]) -> dict[str, float]:
    import jax

    jax.clear_caches()  # the draws are taken while tracing: trace this update anew
    forced.load(draws)
    step = learner.step
    info = learner.update(authors.Batch(**batch))
    forced.check_consumed()
    assert learner.step == step + 1 and info, "their update did not run"
    values = {k: float(v) for k, v in info.items()}
    assert all(np.isfinite(list(values.values()))), "their NaN guard would have skipped the update"
    return values


# ------------------------------------------------------------------------------ export
def flat(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}"
        if hasattr(value, "items"):
            out.update(flat(value, name))
        else:
            out[name] = np.asarray(value)
    return out


def adam_state(opt_state: Any, counter: str, params: str) -> dict[str, np.ndarray]:
    """optax.adam's (ScaleByAdamState(count, mu, nu), scale's empty state) as arrays; the moments
    named "opt/mu/" and "opt/nu/" + the parameter's name, the step count "opt/<counter>/count"."""
    adam = opt_state[0]
    return {f"opt/{counter}/count": np.asarray(adam.count), **flat(adam.mu, f"opt/mu/{params}"),
            **flat(adam.nu, f"opt/nu/{params}")}


def export_state(learner: Any) -> dict[str, np.ndarray]:
    """Parameters and Adam states; the actor's copy of the encoder is checked equal to the critic's
    (and its Adam moments zero: the actor's gradient never reaches it) and left out."""
    actor = flat(learner.actor.params, "actor")
    critic = flat(learner.critic.params, "critic")
    actor_opt = adam_state(learner.actor.opt_state, "actor", "actor")
    for name in [n for n in actor if "/SharedEncoder/" in n]:
        assert np.array_equal(actor.pop(name), critic[name.replace("actor/", "critic/", 1)]), name
    for name in [n for n in actor_opt if "/SharedEncoder/" in n]:
        assert not np.any(actor_opt.pop(name)), name
    return {
        **critic, **flat(learner.target_critic.params, "target"), **actor,
        **flat(learner.temp.params, "temp"),
        **adam_state(learner.critic.opt_state_enc, "critic_encoder", "critic/SharedEncoder"),
        **adam_state(learner.critic.opt_state_head, "critic_head", "critic"),
        **actor_opt, **adam_state(learner.temp.opt_state, "temp", "temp"),
    }


def applied_gradients(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """g = (μ_after − β1·μ_before)/(1 − β1), per parameter, named as the parameter."""
    b1 = 0.9
    return {f"grad/{name[len('opt/mu/'):]}": ((mu - b1 * before[name]) / (1 - b1)).astype(np.float32)
            for name, mu in after.items() if name.startswith("opt/mu/")}


def orthogonal_grams(learner: Any) -> dict[str, np.ndarray]:
    """MᵀM or MMᵀ (the smaller) of every orthogonally initialised kernel of the fresh init."""
    grams = {}
    params = {**flat(learner.critic.params, "critic"), **flat(learner.actor.params, "actor")}
    for name, kernel in params.items():
        projection = name.endswith("/Dense_0/kernel") and name.count("/") == 2  # LeCun, not orthogonal
        if not name.endswith("/kernel") or projection or "actor/SharedEncoder" in name:
            continue
        m = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
        grams[f"init_gram/{name}"] = (m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T).astype(np.float32)
    return grams


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz that np.load reads, byte-identical for identical arrays (fixed zip timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2023, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            array_bytes = io.BytesIO()
            np.lib.format.write_array(array_bytes, np.array(arrays[name], order="C"), allow_pickle=False)
            archive.writestr(info, array_bytes.getvalue())
    return buffer.getvalue()


# ------------------------------------------------------------------------------ main
def generate(authors: types.SimpleNamespace, forced: ForcedDraws, name: str) -> dict[str, np.ndarray]:
    import flax
    import jax
    import optax

    variant = VARIANTS[name]
    rng = np.random.default_rng(2023)
    learner = make_learner(authors, variant)
    grams = orthogonal_grams(learner)
    run_update(learner, authors, forced, make_batch(rng), make_draws(rng))  # warm-up
    before = export_state(learner)
    batch, draws = make_batch(rng), make_draws(rng)
    info = run_update(learner, authors, forced, batch, draws)
    after = export_state(learner)
    meta = {"settings": SETTINGS, "variant": variant,
            "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}}
    return {
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        **{f"input/{k}": v for k, v in batch.items()}, **{f"draw/{k}": v for k, v in draws.items()},
        **{f"before/{k}": v for k, v in before.items()}, **{f"after/{k}": v for k, v in after.items()},
        **applied_gradients(before, after), **grams,
        **{f"info/{k}": np.float32(v) for k, v in info.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed fixtures")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root:
        sys.exit("set PLASTIC_AUTHORS_DIR to an export of github.com/dojeon-ai/PLASTIC (see the docstring)")
    authors = import_authors(Path(root).expanduser().resolve())
    forced = ForcedDraws(authors)
    differ = []
    for name in VARIANTS:
        data = npz_bytes(generate(authors, forced, name))
        path = args.out / f"{name}.npz"
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                differ.append(path.name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data):,} bytes)")
    if differ:
        print(f"differ from the committed fixtures: {', '.join(differ)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

