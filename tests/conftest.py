"""Shared fixtures: official checkpoint layouts, photographs, small images."""

from __future__ import annotations

import json
import os
from pathlib import Path

# pytest-xdist runs one worker per core (addopts "-n auto"): each worker, and every
# process a test starts, then computes on one thread. Two-thread workers on two cores
# oversubscribe them, and OpenMP's spinning threads made the suite slower than serial.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
# Key layouts of the official checkpoints (names, shapes, dtypes; no weights).
LAYOUTS = DATA / "official_state_dicts"
# Twelve CC0 photographs, 416 px on the short side (see data/photos/README.md).
PHOTOS = DATA / "photos"

# registry name -> fixture file of its official checkpoint layout
OFFICIAL_LAYOUTS = {
    "mobilenet": "fpn_mobilenet.json",
    "inception": "fpn_inception.json",
    "resnet": "deblurgan_v1_resnet_generator.json",
}


# The official FPNs register backbone modules a second time as fpn.enc0..4.
_MOBILENET_STAGE_STARTS = (0, 2, 4, 7, 11)
_INCEPTION_STAGES = (
    ("conv2d_1a",),
    ("conv2d_2a", "conv2d_2b", "maxpool_3a"),
    ("conv2d_3b", "conv2d_4a", "maxpool_5a"),
    ("mixed_5b", "repeat", "mixed_6a"),
    ("repeat_1", "mixed_7a"),
)


def _original_of(name: str, layout: str) -> str | None:
    """The backbone key that an ``fpn.encN.*`` key duplicates, or None."""
    if not name.startswith("fpn.enc"):
        return None
    stage, rest = int(name[7]), name[9:]
    if "mobilenet" in layout:
        index, tail = rest.split(".", 1)
        return f"fpn.features.{_MOBILENET_STAGE_STARTS[stage] + int(index)}.{tail}"
    if stage == 0:
        return f"fpn.inception.conv2d_1a.{rest}"
    index, tail = rest.split(".", 1)
    return f"fpn.inception.{_INCEPTION_STAGES[stage][int(index)]}.{tail}"


def official_state_dict(layout: str, seed: int = 0, scale: float = 0.1) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the names, shapes and dtypes of an official checkpoint.

    Duplicate entries (``fpn.encN.*``) share the tensor of their original, as
    in the real files. Running variances are positive.
    """
    entries = json.loads((LAYOUTS / layout).read_text())["entries"]
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, shape, dtype in entries:
        original = _original_of(name, layout)
        if original is not None:
            assert list(state[original].shape) == shape, name
            state[name] = state[original]
        elif dtype == "int64":
            state[name] = torch.tensor(100, dtype=torch.int64)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * scale
    return state


def save_official_v2(path: Path, layout: str, seed: int = 0) -> Path:
    """Write a DeblurGAN-v2 style ``.h5``: ``{'model': DataParallel state dict}``."""
    state = official_state_dict(layout, seed)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def save_official_v1(path: Path, seed: int = 0) -> Path:
    """Write a DeblurGAN v1 style ``latest_net_G.pth``: a bare pre-0.4 state dict."""
    torch.save(official_state_dict(OFFICIAL_LAYOUTS["resnet"], seed), path)
    return path


@pytest.fixture(autouse=True)
def private_weights_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty weights cache and no network: downloads are
    tested only against the loopback server, which unsets DEBLURCLI_OFFLINE."""
    home = tmp_path / "deblurcli-home"
    monkeypatch.setenv("DEBLURCLI_HOME", str(home))
    monkeypatch.setenv("DEBLURCLI_OFFLINE", "1")
    return home


@pytest.fixture
def http_server(monkeypatch):
    """A real HTTP server on 127.0.0.1 (see tests/http_server.py); downloads allowed."""
    from tests.http_server import LoopbackServer

    monkeypatch.delenv("DEBLURCLI_OFFLINE")
    monkeypatch.setattr("deblurcli.download.BACKOFF_SECONDS", 0.01)
    server = LoopbackServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """Real photographs carried by the repository (tests/data/photos)."""
    found = sorted(PHOTOS.glob("*.jpg"))
    assert found, f"no photographs under {PHOTOS}"
    return found


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def dsc_weights(tmp_path_factory) -> Path:
    """A deblurcli .safetensors file: random eval-mode (batch norm) mobilenet-dsc weights."""
    from deblurcli.models import build_model
    from deblurcli.models._builder import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "dsc.safetensors"
    config = {"norm": "batch"}
    save_weights(build_model("mobilenet-dsc", config), path, "mobilenet-dsc", config)
    return path


@pytest.fixture(scope="session")
def small_photos(tmp_path_factory, photos) -> Path:
    """The test photos at 320 px wide, so 64 px crops hold detail."""
    folder = tmp_path_factory.mktemp("small")
    for path in photos:
        image = cv2.imread(str(path))
        height, width = image.shape[:2]
        size = (320, round(height * 320 / width))
        cv2.imwrite(
            str(folder / f"{path.stem}.png"), cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        )
    return folder


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, small_photos) -> Path:
    """A synth-blur dataset of Gaussian-blurred 96 px pairs (train/ and val/)."""
    from deblurcli.ops.pairs import KernelOptions, Range, SynthSettings
    from deblurcli.ops.synthesis import SynthesisConfig
    from deblurcli.pipelines.synth import build_dataset

    root = tmp_path_factory.mktemp("data") / "ds"
    settings = SynthSettings(
        per_image=4,
        seed=1,
        crop=(96, 96),
        val_fraction=0.15,
        kernels=KernelOptions(types=("gaussian",), sigma=Range(1.2, 1.8)),
        synthesis=SynthesisConfig(linear_light=False, saturation=False, noise=False),
    )
    sources = [(p, p.name) for p in sorted(small_photos.glob("*.png"))]
    build_dataset(sources, root, settings, workers=2)
    return root
