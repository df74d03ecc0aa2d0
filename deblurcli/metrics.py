"""Image quality metrics on batched tensors: PSNR, SSIM and no-reference sharpness.

Conventions (see docs/score.md for which paper used which):

- PSNR: ``10 · log10(data_range² / MSE)``, the MSE over all channels and pixels.
- SSIM: Wang et al. (2004) with an 11×11 Gaussian window (σ = 1.5),
  K1 = 0.01, K2 = 0.03, population (not sample) covariances, the mean over
  the "valid" window positions only, colour channels averaged. This is
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` and BasicSR's ``calculate_ssim``.
- ``crop_border`` removes that many pixels on each side first;
  ``y_channel`` scores BT.601 luma instead of RGB (BasicSR's ``test_y_channel``).

Pixels are processed in float32 and summed in float64 (float32 on MPS, which
has no float64). SSIM's local moments are filtered on mean-centred values so
that its variances, differences of squares, stay accurate: results agree
with scikit-image's float64 computation to about 1e-6.

Example:
    >>> x = torch.rand(2, 3, 32, 32)
    >>> psnr(x, x.clamp(0, 0.5)).shape, round(float(ssim(x, x)[0]), 6)
    (torch.Size([2]), 1.0)
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deblurcli.ops.color import rgb_to_gray, rgb_to_y

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_BAND_BYTES = 24 * 1024**2  # working memory per SSIM band; small enough to stay in cache
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _prepare(
    images: torch.Tensor, crop_border: int, y_channel: bool, data_range: float
) -> torch.Tensor:
    if images.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(images.shape)}")
    images = images.to(torch.float32)
    if crop_border:
        images = images[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and images.shape[1] != 1:  # gray images are scored as they are, as in BasicSR
        if images.shape[1] != 3:
            raise ValueError("y_channel needs RGB or gray images")
        images = rgb_to_y(images, data_range)
    return images


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB (``inf`` for identical images).

    Args:
        pred, target: (B, C, H, W) in [0, data_range].
        data_range: the peak value (1.0, 255, 65535).
        crop_border: pixels removed on each side before scoring.
        y_channel: score BT.601 luma of RGB images (gray ones as they are).

    Returns:
        (B,) float64 (float32 on MPS).
    """
    _check_pair(pred, target)
    x = _prepare(pred, crop_border, y_channel, data_range)
    y = _prepare(target, crop_border, y_channel, data_range)
    row_sums = (x - y).square_().sum(dim=(2, 3))  # float32 pairwise sums: exact enough
    mse = row_sums.to(_sum_dtype(x.device)).sum(dim=1) / x[0].numel()
    return 10 * torch.log10(data_range**2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, **kwargs) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian; SSIM's window is its outer product with itself."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (window / window.sum()).to(**kwargs)


def _filter_valid(maps: torch.Tensor, window: torch.Tensor, autograd: bool) -> torch.Tensor:
    """Separable 2-D filtering of (N, H, W) maps, valid positions only -> (N, H-k+1, W-k+1).

    On the CPU without ``autograd`` through OpenCV's ``sepFilter2D`` (about 8×
    faster than torch's CPU convolution for single-channel maps); otherwise with
    ``conv2d``, which autograd can differentiate.
    """
    size = window.numel()
    half = size // 2
    if maps.device.type == "cpu" and not autograd:
        kernel = window.numpy()
        source = maps.contiguous().numpy()
        filtered = np.empty_like(source)
        for map_in, map_out in zip(source, filtered, strict=True):
            cv2.sepFilter2D(map_in, -1, kernel, kernel, dst=map_out)
        return torch.from_numpy(filtered[:, half:-half, half:-half])
    maps = F.conv2d(maps.unsqueeze(1), window.view(1, 1, 1, size))
    return F.conv2d(maps, window.view(1, 1, size, 1)).squeeze(1)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
) -> torch.Tensor:
    """Structural similarity per image (Gaussian window, valid positions, channels averaged).

    The one SSIM of the package: scoring and the training loss
    (:func:`deblurcli.train.losses.ssim_loss`) both call it. When autograd
    records (an input requires grad), it filters with ``conv2d`` and the result
    is differentiable; otherwise the CPU filters with OpenCV, faster.

    The local means and moments are filtered in float32 on values centred on
    the target's mean per channel, which keeps the variances (differences of
    squares) accurate while running 3× faster than float64. Large images are
    processed in bands of rows, so memory stays bounded.

    Args:
        pred, target: (B, C, H, W) in [0, data_range], H and W at least 11 after cropping.
        data_range: the peak value (1.0, 255, 65535).
        crop_border: pixels removed on each side before scoring.
        y_channel: score BT.601 luma of RGB images (gray ones as they are).

    Returns:
        (B,) float64 (float32 on MPS).
    """
    _check_pair(pred, target)
    autograd = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    x = _prepare(pred, crop_border, y_channel, data_range)
    y = _prepare(target, crop_border, y_channel, data_range)
    batch, channels, height, width = x.shape
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW}×{SSIM_WINDOW} px, got {height}×{width}"
        )
    window = gaussian_window(dtype=torch.float32, device=x.device)
    # Any value near the mean serves as the centre (SSIM does not depend on it; it
    # only keeps the moments small), so a float32 mean is enough, and a constant
    # for autograd: (B, C, 1, 1).
    centre = y.detach().mean(dim=(2, 3), keepdim=True)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    out_height = height - SSIM_WINDOW + 1
    # Bands of one image each: every band re-reads SSIM_WINDOW - 1 rows of its
    # neighbour, so tall bands (about 100 rows at 1280 px) keep that overhead small.
    per_row = channels * width * 4 * 16  # five maps in and out, and temporaries
    band = max(1, _BAND_BYTES // per_row)
    sums = []
    for index in range(batch):
        total = torch.zeros((), dtype=_sum_dtype(x.device), device=x.device)
        for top in range(0, out_height, band):
            rows = slice(top, min(top + band, out_height) + SSIM_WINDOW - 1)
            xs = x[index, :, rows] - centre[index]
            ys = y[index, :, rows] - centre[index]
            maps = torch.stack([xs, ys, xs * xs, ys * ys, xs * ys])  # (5, C, h, w)
            filtered = _filter_valid(maps.view(-1, *maps.shape[-2:]), window, autograd)
            mu_x, mu_y, xx, yy, xy = filtered.view(5, channels, *filtered.shape[-2:]).unbind()
            covariance = 2 * (xy - mu_x * mu_y) + c2
            variances = xx + yy - mu_x.square() - mu_y.square() + c2
            mu_x, mu_y = mu_x + centre[index], mu_y + centre[index]
            numerator = (2 * mu_x * mu_y + c1) * covariance
            denominator = (mu_x.square() + mu_y.square() + c1) * variances
            total = total + (numerator / denominator).sum(dtype=total.dtype)
        sums.append(total)
    total = torch.stack(sums)
    return total / (channels * out_height * (width - SSIM_WINDOW + 1))


def _gray_8bit(images: torch.Tensor, data_range: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W) float32 luma in 8-bit units, comparable across bit depths."""
    images = images.to(torch.float32)
    gray = rgb_to_gray(images) if images.shape[1] == 3 else images[:, :1].clone()
    return gray.squeeze(1).mul_(255.0 / data_range)


def _filtered_statistics(
    gray: torch.Tensor, kernel: tuple[tuple[float, ...], ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of each (B, H, W) map after a 3×3 correlation with mirrored
    borders (OpenCV's BORDER_REFLECT_101): two (B,) float64 (float32 on MPS).

    On the CPU, OpenCV's ``filter2D`` and ``meanStdDev`` (one pass, float64
    accumulation); ``conv2d`` and torch reductions elsewhere.
    """
    weights = torch.tensor(kernel, dtype=gray.dtype)
    if gray.device.type == "cpu":
        filtered = np.empty(gray.shape[-2:], dtype=np.float32)
        means, variances = [], []
        for plane in gray.contiguous().numpy():
            cv2.filter2D(plane, -1, weights.numpy(), dst=filtered)
            mean, deviation = cv2.meanStdDev(filtered)
            means.append(float(mean[0, 0]))
            variances.append(float(deviation[0, 0]) ** 2)
        as_tensor = partial(torch.tensor, dtype=torch.float64)
        return as_tensor(means), as_tensor(variances)
    padded = F.pad(gray.unsqueeze(1), (1, 1, 1, 1), mode="reflect")
    response = F.conv2d(padded, weights.to(gray.device).view(1, 1, 3, 3)).flatten(1)
    mean = response.mean(dim=1, dtype=_sum_dtype(response.device))
    return mean, (response - mean[:, None].to(response.dtype)).square_().mean(dim=1)


def laplacian_variance(images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Variance of the Laplacian of the luma: higher is sharper (no reference needed).

    The 4-neighbour Laplacian on 8-bit-scaled luma, as ``cv2.Laplacian(gray,
    cv2.CV_64F).var()`` computes it.

    Args:
        images: (B, C, H, W), C = 1 or 3, in [0, data_range].

    Returns:
        (B,) float64 in squared 8-bit levels (filtered in float32).
    """
    return _filtered_statistics(_gray_8bit(images, data_range), _LAPLACIAN)[1]


def gradient_energy(images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Tenengrad: the mean squared Sobel gradient magnitude of the luma; higher is sharper.

    Args:
        images: (B, C, H, W), C = 1 or 3, in [0, data_range].

    Returns:
        (B,) in squared 8-bit levels (per pixel, 3×3 Sobel).
    """
    gray = _gray_8bit(images, data_range)
    energy = torch.zeros(gray.shape[0], dtype=_sum_dtype(gray.device))
    for kernel in (_SOBEL_X, tuple(zip(*_SOBEL_X, strict=True))):
        mean, variance = _filtered_statistics(gray, kernel)
        energy += variance + mean.square()  # E[g²]
    return energy
