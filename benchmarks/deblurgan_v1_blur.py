"""The DeblurGAN v1 ``motion_blur`` scripts' algorithm, restated for speed comparison.

DeblurGAN (Kupyn et al., 2018) makes its synthetic training pairs with three
scripts: a random trajectory (``generate_trajectory.py``), its PSFs
(``generate_PSF.py``) and the blur (``blur_image.py``). This module restates
what they do, step by step and in the same style — Python loops over complex
scalars, a PSF per exposure fraction accumulated pixel by pixel, the PSF
zero-padded to the image height and convolved with ``scipy.signal.fftconvolve``
per channel, min-max normalisation with OpenCV — so that
``benchmarks/synth_speed.py`` can time both on the same images. It is not used
by deblurcli itself. Requires SciPy (installed with scikit-image).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import signal

CANVAS = 64
MAX_LEN = 60
EXPL_CHOICES = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003)
FRACTIONS = (1 / 100, 1 / 10, 1 / 2, 1)
ITERATIONS = 2000


def trajectory(canvas: int = CANVAS, max_len: float = MAX_LEN, expl: float = 0.005) -> np.ndarray:
    """Random camera-shake trajectory of ``ITERATIONS`` complex points, centred on the canvas."""
    centripetal = 0.7 * np.random.uniform(0, 1)
    prob_big_shake = 0.2 * np.random.uniform(0, 1)
    gaussian_shake = 10 * np.random.uniform(0, 1)
    init_angle = 360 * np.random.uniform(0, 1)
    v0 = complex(math.cos(math.radians(init_angle)), math.sin(math.radians(init_angle)))
    v = v0 * max_len / (ITERATIONS - 1)
    if expl > 0:
        v = v0 * expl
    x = np.zeros(ITERATIONS, dtype=complex)
    for t in range(ITERATIONS - 1):
        if np.random.uniform() < prob_big_shake * expl:
            next_direction = 2 * v * np.exp(1j * (np.pi + (np.random.uniform() - 0.5)))
        else:
            next_direction = 0
        dv = next_direction + expl * (
            gaussian_shake * complex(np.random.randn(), np.random.randn()) - centripetal * x[t]
        ) * (max_len / (ITERATIONS - 1))
        v += dv
        v = (v / abs(v)) * max_len / (ITERATIONS - 1)
        x[t + 1] = x[t] + v
    x += complex(-np.min(x.real), -np.min(x.imag))
    x = x - complex(x[0].real % 1.0, x[0].imag % 1.0) + complex(1, 1)
    x += complex(math.ceil((canvas - max(x.real)) / 2), math.ceil((canvas - max(x.imag)) / 2))
    return x


def _triangle(value: float) -> float:
    return max(0.0, 1 - abs(value))


def psfs(points: np.ndarray, canvas: int = CANVAS) -> list[np.ndarray]:
    """One PSF per exposure fraction, each accumulated over the trajectory point by point."""
    iterations = len(points)
    psf = np.zeros((canvas, canvas))
    result = []
    for j, fraction in enumerate(FRACTIONS):
        previous = 0 if j == 0 else FRACTIONS[j - 1]
        for t in range(iterations):
            if fraction * iterations >= t and previous * iterations < t - 1:
                proportion = 1
            elif fraction * iterations >= t - 1 and previous * iterations < t - 1:
                proportion = fraction * iterations - (t - 1)
            elif fraction * iterations >= t and previous * iterations < t:
                proportion = t - previous * iterations
            elif fraction * iterations >= t - 1 and previous * iterations < t:
                proportion = (fraction - previous) * iterations
            else:
                proportion = 0
            m2 = int(min(canvas - 1, max(1, math.floor(points[t].real))))
            big_m2 = m2 + 1
            m1 = int(min(canvas - 1, max(1, math.floor(points[t].imag))))
            big_m1 = m1 + 1
            re, im = points[t].real, points[t].imag
            psf[m1, m2] += proportion * _triangle(re - m2) * _triangle(im - m1)
            psf[m1, big_m2 % canvas] += proportion * _triangle(re - big_m2) * _triangle(im - m1)
            psf[big_m1 % canvas, m2] += proportion * _triangle(re - m2) * _triangle(im - big_m1)
            psf[big_m1 % canvas, big_m2 % canvas] += (
                proportion * _triangle(re - big_m2) * _triangle(im - big_m1)
            )
        result.append(psf / iterations)
    return result


def blur_image(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Blur a BGR uint8 image: PSF zero-padded to the image height, FFT-convolved per channel."""
    height = image.shape[0]
    delta = height - psf.shape[0]
    padded = np.pad(psf, delta // 2, "constant")
    cv2.normalize(padded, padded, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX)
    blurred = cv2.normalize(
        image, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F
    )
    for channel in range(3):
        blurred[:, :, channel] = signal.fftconvolve(blurred[:, :, channel], padded, "same")
    blurred = cv2.normalize(blurred, blurred, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX)
    return np.abs(blurred)


def make_pair(image: np.ndarray) -> np.ndarray:
    """One DeblurGAN v1 blurred image: random expl and exposure part, as its script draws them."""
    points = trajectory(expl=float(np.random.choice(EXPL_CHOICES)))
    part = int(np.random.choice([1, 2, 3]))
    return blur_image(image, psfs(points)[part])
