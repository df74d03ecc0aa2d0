"""BasicSR's PSNR/SSIM conventions (``basicsr/metrics/psnr_ssim.py``), restated in NumPy/OpenCV.

Used as an independent reference: images are H×W×3 BGR uint8 as BasicSR reads
them with OpenCV; ``crop_border`` is cut first, then with ``test_y_channel``
the image becomes float32 BT.601 luma in [16, 235] (not rounded), then
everything is float64. SSIM filters with an 11×11 Gaussian (σ = 1.5) and
keeps the valid region, per channel, averaged.
"""

from __future__ import annotations

import cv2
import numpy as np


def _to_y_channel(bgr: np.ndarray) -> np.ndarray:
    scaled = bgr.astype(np.float32) / 255.0
    luma = scaled @ np.array([24.966, 128.553, 65.481], dtype=np.float32) + 16.0
    return (luma / 255.0)[..., None] * 255.0


def _prepare(bgr: np.ndarray, crop_border: int, test_y_channel: bool) -> np.ndarray:
    if crop_border:
        bgr = bgr[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        bgr = _to_y_channel(bgr)
    return bgr.astype(np.float64)


def calculate_psnr(a: np.ndarray, b: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
    a, b = _prepare(a, crop_border, test_y_channel), _prepare(b, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 * 255.0 / mse)


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    mu1 = cv2.filter2D(a, -1, window)[5:-5, 5:-5]
    mu2 = cv2.filter2D(b, -1, window)[5:-5, 5:-5]
    sigma1 = cv2.filter2D(a * a, -1, window)[5:-5, 5:-5] - mu1**2
    sigma2 = cv2.filter2D(b * b, -1, window)[5:-5, 5:-5] - mu2**2
    sigma12 = cv2.filter2D(a * b, -1, window)[5:-5, 5:-5] - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1**2 + mu2**2 + c1) * (sigma1 + sigma2 + c2)
    )
    return float(ssim_map.mean())


def calculate_ssim(a: np.ndarray, b: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
    a, b = _prepare(a, crop_border, test_y_channel), _prepare(b, crop_border, test_y_channel)
    return float(np.mean([_ssim_channel(a[..., i], b[..., i]) for i in range(a.shape[2])]))
