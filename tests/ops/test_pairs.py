"""One kernel maker for every kind synth-blur draws."""

from __future__ import annotations

import pytest
import torch

from deblurcli.ops.pairs import KERNEL_TYPES, make_kernel


def _spread(kernel: torch.Tensor) -> float:
    axis = torch.arange(kernel.shape[-1], dtype=kernel.dtype) - kernel.shape[-1] // 2
    return float((kernel.sum(0) * axis.square()).sum() + (kernel.sum(1) * axis.square()).sum())


@pytest.mark.parametrize(
    ("kind", "small", "large"),
    [
        ("linear", {"length": 5.0, "angle": 30.0}, {"length": 21.0, "angle": 30.0}),
        ("defocus", {"radius": 1.5}, {"radius": 5.0}),
        ("gaussian", {"sigma": 0.8}, {"sigma": 3.0}),
    ],
)
def test_each_kind_sums_to_one_and_grows_with_its_parameter(kind, small, large):
    kernels = [make_kernel(kind, params) for params in (small, large)]
    for kernel in kernels:
        assert kernel.ndim == 2 and kernel.shape[0] % 2 == 1
        assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-9) and float(kernel.min()) >= 0
    assert _spread(kernels[1]) > 3 * _spread(kernels[0])


def test_a_shake_is_its_trajectory_and_needs_one():
    line = torch.stack([torch.linspace(0, 8, 50), torch.zeros(50)], dim=-1)[None]  # (1, 50, 2)
    kernel = make_kernel("shake", {"exposure": 1.0}, line)
    rows = (kernel.sum(1) > 1e-6).sum()
    cols = (kernel.sum(0) > 1e-6).sum()
    assert cols >= 8 and rows <= 2 and float(kernel.sum()) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs its trajectory"):
        make_kernel("shake", {"exposure": 1.0})
    with pytest.raises(ValueError, match="choose from shake, linear, defocus, gaussian"):
        make_kernel("box", {})
    assert KERNEL_TYPES == ("shake", "linear", "defocus", "gaussian")
