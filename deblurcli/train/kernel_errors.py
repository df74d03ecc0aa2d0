"""Wrong kernels like the ones the blind search makes, to teach the refiner what they do.

The kernel search fails in a few recognisable ways (docs/quality.md): a kernel
smeared along one direction (parallel cables read as one cable blurred), one
that is longer, shorter or turned against the true path, and a diffuse blob.
Deconvolving a photo with such a kernel leaves double edges and ringing the
refiner should learn to take back out, falling back on the blurred photo where
the deconvolution cannot be trusted. :func:`perturb_kernel` makes one from the
true kernel that synth-blur recorded.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from deblurcli.ops.blur import linear_kernels
from deblurcli.ops.blur_estimate import kernel_extent
from deblurcli.ops.deconv import centre_kernel

# The ways a kernel estimate goes wrong, as perturb_kernel names them.
ERROR_KINDS = ("smear", "stretch", "shrink", "turn", "blob")


def _warp(kernel: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(S, S) kernel under the 2×2 linear map ``matrix`` about its centre pixel."""
    side = kernel.shape[0]
    centre = np.array([side // 2, side // 2], dtype=np.float64)
    affine = np.hstack([matrix, (centre - matrix @ centre)[:, None]])
    return cv2.warpAffine(kernel, affine, (side, side), flags=cv2.INTER_LINEAR)


def _rotation(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _centred_crop(kernel: np.ndarray) -> np.ndarray:
    """Shift the kernel's centroid onto the centre pixel, then crop it to the smallest
    odd square (plus a 1 px margin) holding every value above 1 % of the peak."""
    side = kernel.shape[0]
    kernel = centre_kernel(torch.from_numpy(kernel)).numpy()
    rows, cols = np.nonzero(kernel > 0.01 * kernel.max())
    reach = int(max(np.abs(rows - side // 2).max(), np.abs(cols - side // 2).max())) + 1
    reach = min(reach, side // 2)
    centre = side // 2
    return kernel[centre - reach : centre + reach + 1, centre - reach : centre + reach + 1]


def perturb_kernel(
    kernel: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] | None = None
) -> np.ndarray:
    """A wrong version of a blur kernel, as the search might estimate it.

    Args:
        kernel: (K, K) true kernel, non-negative.
        rng: draws the errors and their sizes.
        kinds: the errors to apply, in order, from :data:`ERROR_KINDS`; by default
            one or two drawn at random. Sizes are relative to the kernel's extent E:
            ``smear`` convolves with a line of 0.3–1 E + 3 px at any angle,
            ``stretch`` lengthens it 1.3–1.8× along one direction, ``shrink``
            scales it by 0.5–0.75, ``turn`` rotates it by 15–45° either way, and
            ``blob`` blurs it with a Gaussian of σ = 0.1–0.25 E + 0.5 px.

    Returns:
        (K', K') float32 kernel, K' odd, summing to 1, its centroid on the centre.
    """
    if kinds is None:
        count = int(rng.integers(1, 3))
        kinds = tuple(rng.choice(ERROR_KINDS, size=count, replace=False))
    unknown = set(kinds) - set(ERROR_KINDS)
    if unknown:
        raise ValueError(f"unknown kernel errors {sorted(unknown)}; choose from {ERROR_KINDS}")
    extent = kernel_extent(kernel)
    size = kernel.shape[0]
    margin = size // 2 + 2 * extent + 4  # room for every error to grow the kernel
    wrong = np.pad(kernel.astype(np.float32) / kernel.sum(), margin)
    for kind in kinds:
        angle = rng.uniform(0, np.pi)
        if kind == "smear":
            length = rng.uniform(0.3, 1.0) * extent + 3
            line = linear_kernels(length, np.rad2deg(angle))[0].float().numpy()
            wrong = cv2.filter2D(wrong, -1, line, borderType=cv2.BORDER_CONSTANT)
        elif kind == "stretch":
            turn = _rotation(angle)
            matrix = turn @ np.diag([rng.uniform(1.3, 1.8), 1.0]) @ turn.T
            wrong = _warp(wrong, matrix)
        elif kind == "shrink":
            wrong = _warp(wrong, np.eye(2) * rng.uniform(0.5, 0.75))
        elif kind == "turn":
            wrong = _warp(wrong, _rotation(rng.choice([-1, 1]) * np.deg2rad(rng.uniform(15, 45))))
        else:  # blob
            sigma = rng.uniform(0.1, 0.25) * extent + 0.5
            wrong = cv2.GaussianBlur(wrong, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        wrong = np.clip(wrong, 0, None)
    wrong = _centred_crop(wrong)
    return (wrong / wrong.sum()).astype(np.float32)
