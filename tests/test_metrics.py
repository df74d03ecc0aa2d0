"""PSNR, SSIM and sharpness against scikit-image, BasicSR's conventions and closed forms."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurcli import metrics
from deblurcli.metrics import gradient_energy, laplacian_variance, psnr, ssim
from tests.reference import basicsr_metrics


def _tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×C (or H×W) integer array -> (1, C, H, W) tensor of the same values."""
    if image.ndim == 2:
        image = image[:, :, None]
    return torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None]


def _distortions(sharp: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    peak = np.iinfo(sharp.dtype).max
    noisy = np.clip(sharp + rng.normal(0, 0.02 * peak, sharp.shape), 0, peak).astype(sharp.dtype)
    return [cv2.GaussianBlur(sharp, (0, 0), 2.0), noisy, (sharp // 8 * 8).astype(sharp.dtype)]


@pytest.fixture(scope="module")
def pairs(photos) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sharp test photos against blurred, noisy and posterised copies."""
    found = []
    for i, path in enumerate(photos[:4]):
        sharp = cv2.resize(cv2.imread(str(path))[:, :, ::-1], (301, 203))
        found += [(sharp, distorted) for distorted in _distortions(sharp, i)]
    return found


def test_uint8_values_agree_with_scikit_image(pairs):
    for sharp, distorted in pairs:
        expected_ssim = structural_similarity(
            distorted, sharp, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, channel_axis=-1, data_range=255,
        )  # fmt: skip
        expected_psnr = peak_signal_noise_ratio(sharp, distorted, data_range=255)
        got_ssim = float(ssim(_tensor(distorted), _tensor(sharp), 255))
        got_psnr = float(psnr(_tensor(distorted), _tensor(sharp), 255))
        assert got_ssim == pytest.approx(expected_ssim, abs=1e-4)
        assert got_psnr == pytest.approx(expected_psnr, abs=1e-4)
        assert got_ssim < 0.999  # the distortion is visible, so the comparison means something


def test_16_bit_and_gray_agree_with_scikit_image(pairs):
    sharp, distorted = pairs[0]
    sharp16, distorted16 = sharp.astype(np.uint16) * 257, distorted.astype(np.uint16) * 257 + 40
    expected = structural_similarity(
        distorted16, sharp16, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, channel_axis=-1, data_range=65535,
    )  # fmt: skip
    assert float(ssim(_tensor(distorted16), _tensor(sharp16), 65535)) == pytest.approx(
        expected, abs=1e-4
    )
    gray, gray_distorted = sharp[:, :, 1], distorted[:, :, 1]
    expected_gray = structural_similarity(
        gray_distorted, gray, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )  # fmt: skip
    assert float(ssim(_tensor(gray_distorted), _tensor(gray), 255)) == pytest.approx(
        expected_gray, abs=1e-4
    )


@pytest.mark.parametrize(("crop_border", "y_channel"), [(0, True), (4, True), (4, False)])
def test_basicsr_conventions(pairs, crop_border, y_channel):
    for sharp, distorted in pairs[:6]:
        bgr_sharp, bgr_distorted = sharp[:, :, ::-1], distorted[:, :, ::-1]
        options = {"data_range": 255, "crop_border": crop_border, "y_channel": y_channel}
        expected_psnr = basicsr_metrics.calculate_psnr(
            bgr_distorted, bgr_sharp, crop_border, y_channel
        )
        expected_ssim = basicsr_metrics.calculate_ssim(
            bgr_distorted, bgr_sharp, crop_border, y_channel
        )
        got_psnr = float(psnr(_tensor(distorted), _tensor(sharp), **options))
        got_ssim = float(ssim(_tensor(distorted), _tensor(sharp), **options))
        assert got_psnr == pytest.approx(expected_psnr, abs=1e-4)
        assert got_ssim == pytest.approx(expected_ssim, abs=1e-4)
    # the Y channel really is a different number from RGB
    sharp, distorted = pairs[1]
    rgb = float(psnr(_tensor(distorted), _tensor(sharp), 255))
    luma = float(psnr(_tensor(distorted), _tensor(sharp), 255, y_channel=True))
    assert abs(rgb - luma) > 0.1


def test_closed_form_values():
    """PSNR of a constant offset d is 20·log10(255/d); SSIM of two flat images a and b
    is (2ab + C1) / (a² + b² + C1), their variances being zero."""
    a = torch.full((1, 3, 20, 30), 100.0, dtype=torch.float64)
    b = a + 5
    assert float(psnr(b, a, 255)) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    c1 = (0.01 * 255) ** 2
    assert float(ssim(b, a, 255)) == pytest.approx((2 * 100 * 105 + c1) / (100**2 + 105**2 + c1))
    assert math.isinf(float(psnr(a, a, 255)))
    assert float(ssim(a, a, 255)) == pytest.approx(1.0)
    # data_range scales everything: the same picture in [0, 1] scores the same
    assert float(ssim(b / 255, a / 255, 1.0)) == pytest.approx(float(ssim(b, a, 255)), abs=1e-6)


def test_batches_and_bands_give_the_same_values(pairs, monkeypatch):
    preds = torch.cat([_tensor(d) for _, d in pairs[:3]])
    targets = torch.cat([_tensor(s) for s, _ in pairs[:3]])
    batched = ssim(preds, targets, 255)
    singles = torch.stack([ssim(preds[i : i + 1], targets[i : i + 1], 255)[0] for i in range(3)])
    torch.testing.assert_close(batched, singles, atol=1e-9, rtol=0)
    monkeypatch.setattr(metrics, "_BAND_BYTES", 1)  # one output row per band
    torch.testing.assert_close(ssim(preds, targets, 255), batched, atol=1e-7, rtol=0)


def test_sharpness_measures_match_opencv_and_fall_with_blur(pairs):
    sharp = pairs[0][0]
    luma = sharp.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    expected_laplacian = cv2.Laplacian(luma, cv2.CV_64F).var()
    gx, gy = cv2.Sobel(luma, cv2.CV_64F, 1, 0), cv2.Sobel(luma, cv2.CV_64F, 0, 1)
    expected_tenengrad = (gx**2 + gy**2).mean()
    assert float(laplacian_variance(_tensor(sharp), 255)) == pytest.approx(expected_laplacian)
    assert float(gradient_energy(_tensor(sharp), 255)) == pytest.approx(expected_tenengrad)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert float(laplacian_variance(_tensor(blurred), 255)) < 0.2 * expected_laplacian
    # 8-bit units whatever the bit depth
    sharp16 = sharp.astype(np.uint16) * 257
    assert float(laplacian_variance(_tensor(sharp16), 65535)) == pytest.approx(
        expected_laplacian, rel=1e-6
    )


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), crop_border=5)
    with pytest.raises(ValueError, match="RGB or gray"):
        psnr(torch.rand(1, 2, 20, 20), torch.rand(1, 2, 20, 20), y_channel=True)
    gray, other = torch.rand(1, 1, 20, 20), torch.rand(1, 1, 20, 20)
    assert float(psnr(gray, other, y_channel=True)) == float(psnr(gray, other))  # as BasicSR


def test_ssim_under_autograd_gives_the_same_value_and_the_true_gradient(pairs):
    preds = torch.cat([_tensor(d) for _, d in pairs[:3]]) / 255
    targets = torch.cat([_tensor(s) for s, _ in pairs[:3]]) / 255
    preds = preds.float().requires_grad_(True)
    value = ssim(preds, targets.float())
    torch.testing.assert_close(value, ssim(preds.detach(), targets), atol=1e-6, rtol=0)
    value.sum().backward()
    # Against a finite difference of the scoring path at one pixel of the first image.
    pixel, step = (0, 1, 40, 50), 1e-2
    nudged = [preds.detach().clone() for _ in range(2)]
    nudged[0][pixel] += step
    nudged[1][pixel] -= step
    plus, minus = (float(ssim(n[:1], targets[:1].float())[0]) for n in nudged)
    assert float(preds.grad[pixel]) == pytest.approx((plus - minus) / (2 * step), rel=0.02)
