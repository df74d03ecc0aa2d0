"""Blur kernels and convolution: normalisation, centring, shapes of each kernel type,
camera-shake statistics over many draws, and FFT convolution against direct summation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deblurcli.ops.blur import (
    ShakeDraws,
    blur,
    camera_shake_kernels,
    convolve_valid,
    defocus_kernels,
    exposure_weights,
    gaussian_kernels,
    linear_kernels,
    next_fast_length,
    rasterize_points,
    shake_trajectories,
)


def _moments(kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids (B, 2) as (x, y) and covariance matrices (B, 2, 2)."""
    size = kernels.shape[-1]
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=kernels.dtype),
        torch.arange(size, dtype=kernels.dtype),
        indexing="ij",
    )
    cx, cy = (kernels * xs).sum((1, 2)), (kernels * ys).sum((1, 2))
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    cov = torch.stack(
        [
            torch.stack([(kernels * dx * dx).sum((1, 2)), (kernels * dx * dy).sum((1, 2))], -1),
            torch.stack([(kernels * dx * dy).sum((1, 2)), (kernels * dy * dy).sum((1, 2))], -1),
        ],
        -2,
    )
    return torch.stack([cx, cy], -1), cov


KERNELS = {
    "shake": lambda: camera_shake_kernels(
        6,
        max_len=35.0,
        expl=0.005,
        exposure=torch.tensor([1, 0.5, 0.2, 1, 1, 0.7]),
        generator=torch.Generator().manual_seed(0),
    ),
    "linear": lambda: linear_kernels(
        torch.tensor([0.0, 3.0, 12.5, 30.0]), torch.tensor([0, 45, 90, 137.0]), 4
    ),
    "defocus": lambda: defocus_kernels(torch.tensor([0.2, 1.0, 2.5, 6.0]), 4),
    "gaussian": lambda: gaussian_kernels(torch.tensor([0.3, 1.0, 2.0]), 3),
}


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_kernels_are_normalised_non_negative_odd_and_centred(kind):
    kernels = KERNELS[kind]()
    size = kernels.shape[-1]
    assert kernels.dim() == 3 and size % 2 == 1 and kernels.shape[1] == size
    assert bool((kernels >= 0).all())
    torch.testing.assert_close(kernels.sum((1, 2)), torch.ones(len(kernels), dtype=kernels.dtype))
    centroid, _ = _moments(kernels)
    torch.testing.assert_close(centroid, torch.full_like(centroid, size // 2), atol=1e-9, rtol=0)


def test_rasterizing_one_point_splits_it_bilinearly_and_keeps_its_centre():
    points = torch.tensor([[[0.25, 0.75]]], dtype=torch.float64)
    kernel = rasterize_points(points, torch.ones(1, 1, dtype=torch.float64))[0]
    assert kernel.shape == (3, 3)  # one point: the centre pixel and its neighbours
    assert float(kernel.sum()) == pytest.approx(1.0)
    centroid, _ = _moments(kernel[None])
    assert centroid[0].tolist() == pytest.approx([1.0, 1.0])


def test_rasterize_rejects_a_canvas_too_small_or_even():
    points = torch.tensor([[[0.0, 0.0], [10.0, 0.0]]], dtype=torch.float64)
    weights = torch.ones(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="at least 13"):
        rasterize_points(points, weights, kernel_size=9)
    with pytest.raises(ValueError, match="odd"):
        rasterize_points(points, weights, kernel_size=16)
    assert rasterize_points(points, weights, kernel_size=21).shape == (1, 21, 21)


def test_linear_kernels_lie_along_their_angle_with_their_length():
    kernels = linear_kernels(torch.tensor([20.0, 20.0, 20.0]), torch.tensor([0.0, 90.0, 45.0]), 3)
    _, cov = _moments(kernels)
    # A uniform segment of length L has variance L²/12 along it (plus the splat's own spread).
    along = 20.0**2 / 12
    assert float(cov[0, 0, 0]) == pytest.approx(along, rel=0.05)
    assert float(cov[0, 1, 1]) < 0.1
    assert float(cov[1, 1, 1]) == pytest.approx(along, rel=0.05)
    assert float(cov[1, 0, 0]) < 0.1
    # 45° counter-clockwise in image coordinates (rows downwards): x and y anti-correlated.
    assert float(cov[2, 0, 1]) == pytest.approx(-along / 2, rel=0.05)


def test_defocus_discs_cover_their_area_and_gaussians_their_variance():
    radii = torch.tensor([2.0, 4.5, 7.0])
    discs = defocus_kernels(radii, 3)
    area = 1 / discs.amax((1, 2))  # fully covered pixels hold 1 / area each
    torch.testing.assert_close(area, math.pi * radii.double() ** 2, rtol=0.02, atol=0)
    sigmas = torch.tensor([1.0, 2.5])
    _, cov = _moments(gaussian_kernels(sigmas, 2))
    torch.testing.assert_close(cov[:, 0, 0], sigmas.double() ** 2, rtol=0.03, atol=0)
    torch.testing.assert_close(cov[:, 0, 1], torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)


def test_shake_trajectories_have_the_requested_length_and_start_at_the_origin():
    draws = ShakeDraws.sample(64, 500, torch.Generator().manual_seed(1))
    max_len = torch.linspace(5, 80, 64)
    points = shake_trajectories(draws, max_len, 0.005)
    steps = (points[:, 1:] - points[:, :-1]).norm(dim=-1)
    torch.testing.assert_close(steps.sum(1), max_len.double(), rtol=1e-9, atol=0)
    assert bool((points[:, 0] == 0).all())
    extent = (points - points[:, :1]).norm(dim=-1).amax(1)
    assert bool((extent <= max_len.double() + 1e-9).all())


def test_shake_statistics_over_many_draws():
    """Directions are isotropic; stronger shake (expl) gives more compact kernels;
    shorter exposure gives smaller kernels; abrupt shakes happen at their rate."""
    g = torch.Generator().manual_seed(7)
    draws = ShakeDraws.sample(512, 2000, g)
    calm = shake_trajectories(draws, 60.0, 0.003)
    shaky = shake_trajectories(draws, 60.0, 0.01)

    def spread(points: torch.Tensor) -> torch.Tensor:
        return (points - points.mean(1, keepdim=True)).norm(dim=-1).mean(1)

    assert float(spread(calm).median()) > 1.3 * float(spread(shaky).median())
    # principal direction of each kernel: uniform on [0, π) -> each quarter holds ~25 %
    kernels = rasterize_points(calm, torch.ones(512, 2000, dtype=torch.float64))
    _, cov = _moments(kernels)
    angle = 0.5 * torch.atan2(2 * cov[:, 0, 1], cov[:, 0, 0] - cov[:, 1, 1]) % math.pi
    counts = torch.histc(angle, bins=4, min=0, max=math.pi)
    assert bool((counts > 0.18 * 512).all()), counts
    # exposure: a fifth of the path spreads less than the whole path
    full = rasterize_points(calm, exposure_weights(2000, 1.0, 512))
    fifth = rasterize_points(calm, exposure_weights(2000, 0.2, 512))
    _, cov_full = _moments(full)
    _, cov_fifth = _moments(fifth)
    trace = lambda c: c[:, 0, 0] + c[:, 1, 1]  # noqa: E731
    assert float(trace(cov_fifth).median()) < 0.25 * float(trace(cov_full).median())
    # abrupt shakes: on average big_shake_probability * expl per step
    expected = float((draws.big_shake_probability * 0.01).mean() * 1999)
    observed = float(
        (draws.shake_uniform < (draws.big_shake_probability * 0.01)[:, None]).sum(1).double().mean()
    )
    assert observed == pytest.approx(expected, rel=0.15)


def test_trajectories_do_not_depend_on_how_they_are_batched():
    single = [ShakeDraws.sample(1, 300, torch.Generator().manual_seed(s)) for s in range(5)]
    batched = shake_trajectories(ShakeDraws.cat(single), torch.arange(10.0, 60.0, 10.0), 0.007)
    for i, draws in enumerate(single):
        alone = shake_trajectories(draws, 10.0 * (i + 1), 0.007)
        assert torch.equal(alone[0], batched[i])


def test_exposure_weights_keep_the_first_fraction():
    weights = exposure_weights(11, torch.tensor([1.0, 0.5, 0.25]), 3)
    assert weights[0].tolist() == [1.0] * 11
    assert weights[1].tolist() == [1.0] * 6 + [0.0] * 5
    assert weights[2].tolist()[:5] == pytest.approx([1, 1, 1, 0.5, 0])  # ends at t = 2.5
    with pytest.raises(ValueError):
        exposure_weights(11, 0.0, 1)


def test_next_fast_length_is_the_smallest_5_smooth_number():
    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 700):
        expected = next(m for m in range(n, 2 * n + 2) if smooth(m))
        assert next_fast_length(n) == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_convolution_matches_direct_summation(dtype):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 37, 53, generator=g, dtype=torch.float64).to(dtype)
    kernels = torch.rand(2, 9, 9, generator=g, dtype=torch.float64).to(dtype)
    kernels[:, 0, 0] = 5  # asymmetric, so a missing flip would show
    valid = convolve_valid(images, kernels)
    assert valid.shape == (2, 3, 29, 45)
    for i in range(2):
        direct = F.conv2d(images[i : i + 1], kernels[i].flip(0, 1).expand(3, 1, 9, 9), groups=3)
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(valid[i : i + 1], direct, atol=tol, rtol=tol)
    same = blur(images, kernels)
    assert same.shape == images.shape
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    torch.testing.assert_close(same, convolve_valid(padded, kernels))


def test_blur_explains_a_too_large_kernel():
    with pytest.raises(ValueError, match="reflect padding"):
        blur(torch.rand(1, 1, 8, 8), torch.ones(1, 17, 17) / 289)
    with pytest.raises(ValueError, match="smaller than"):
        convolve_valid(torch.rand(1, 1, 8, 8), torch.ones(1, 9, 9) / 81)


def test_delta_kernel_leaves_images_unchanged():
    images = torch.from_numpy(np.random.default_rng(0).random((1, 3, 20, 30)))
    delta = linear_kernels(0.0, 0.0)
    torch.testing.assert_close(blur(images, delta), images, atol=1e-12, rtol=0)
