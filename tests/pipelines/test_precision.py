"""Inference precision: what ``auto`` picks, and how close reduced precision stays to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deblurcli import device as device_module
from deblurcli.metrics import psnr
from deblurcli.models import get_spec, list_models
from deblurcli.models.layers import PaddedGenerator, Padding
from deblurcli.pipelines.restore import Restorer

CPU = torch.device("cpu")


def test_auto_is_bf16_only_on_native_bf16_cpus_and_only_for_checked_models(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert device_module.resolve_precision("auto", CPU) == torch.bfloat16
    assert device_module.resolve_precision("auto", CPU, reduced_ok=False) == torch.float32
    assert device_module.resolve_precision("bf16", CPU, reduced_ok=False) == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert device_module.resolve_precision("auto", CPU) == torch.float32


def test_only_models_measured_within_the_bound_are_marked_bf16_safe():
    # Measured with benchmarks/precision.py; deconv's FFTs and the curves' colour
    # matrix gain nothing from bf16, and the MobileNet FPNs were off by 3-5 levels.
    assert {name for name in list_models() if get_spec(name).bf16_safe} == {"dpe"}


def _restore(weights: str, pixels: np.ndarray, precision: str) -> np.ndarray:
    return Restorer.from_weights(weights, device="cpu", precision=precision).restore_array(pixels)[
        0
    ]


@pytest.mark.parametrize(
    "name", [n for n in list_models() if get_spec(n).bf16_safe and get_spec(n).default_weights]
)
def test_bf16_safe_models_stay_within_50_db_and_2_levels_of_fp32(name, photos):
    weights = get_spec(name).default_weights
    for path in photos[:2]:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
        exact = torch.from_numpy(_restore(weights, pixels, "fp32")).float()
        fast = torch.from_numpy(_restore(weights, pixels, "bf16")).float()
        apart = float(psnr(exact.permute(2, 0, 1)[None], fast.permute(2, 0, 1)[None], 255))
        levels = float((exact - fast).abs().max())
        assert apart >= 50 and levels <= 2, (path.name, apart, levels)


class _OverflowsInHalf(PaddedGenerator):
    """Doubles its input; under autocast it overflows to NaN, as fp16 features can."""

    def __init__(self) -> None:
        super().__init__()
        self.padding = Padding(1)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            return x * float("nan")
        return (x * self.scale).clamp(-1, 1)


def test_a_non_finite_reduced_precision_tile_is_rerun_in_fp32_with_a_note():
    pixels = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    exact, _ = Restorer(_OverflowsInHalf(), "mobilenet", None, CPU).restore_array(pixels)
    restorer = Restorer(_OverflowsInHalf(), "mobilenet", None, CPU, torch.bfloat16)
    rerun, report = restorer.restore_array(pixels)
    np.testing.assert_array_equal(rerun, exact)
    assert any("rerun in fp32" in note for note in report.notes)


def test_from_weights_loads_a_shipped_name_and_refuses_the_other_task():
    from deblurcli.errors import WeightsError

    restorer = Restorer.from_weights("deblurcli-curves", task="enhance", device="cpu")
    assert restorer.architecture == "curves" and restorer.dtype == torch.float32
    with pytest.raises(WeightsError, match="use deblur enhance"):
        Restorer.from_weights("deblurcli-curves", task="deblur", device="cpu")
