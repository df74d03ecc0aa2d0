"""Blurred/sharp pairs from one photo: the kernels, their parameters and the camera model.

The pure part of ``synth-blur``, shared by the dataset writer
(:mod:`deblurcli.pipelines.synth`), on-the-fly blur in training, the
blur detector's and the refiner's training, and the benchmarks. Every pair
draws all its random numbers from its own generator, seeded by the caller
(:func:`derived_seed` makes such seeds from a run seed, a photo and a copy
number), so a pair depends only on its seed and the settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch

from deblurcli.ops.blur import (
    ShakeDraws,
    defocus_kernels,
    exposure_weights,
    gaussian_kernels,
    linear_kernels,
    rasterize_points,
    shake_trajectories,
)
from deblurcli.ops.color import (
    linear_to_srgb,
    pixels_to_linear,
    pixels_to_tensor,
    tensor_to_pixels,
)
from deblurcli.ops.synthesis import SynthesisConfig, SynthesisDraws, camera_blur, jpeg_roundtrip

# Each kernel kind and the KernelOptions ranges its parameters are drawn from, in draw order.
KERNEL_PARAMETERS = {
    "shake": ("max_len", "expl", "exposure"),
    "linear": ("length", "angle"),
    "defocus": ("radius",),
    "gaussian": ("sigma",),
}
KERNEL_TYPES = tuple(KERNEL_PARAMETERS)


@dataclass(frozen=True)
class Range:
    """A value drawn uniformly from [low, high]; low == high is a fixed value."""

    low: float
    high: float

    @staticmethod
    def parse(text: str) -> Range:
        """``"5"`` or ``"5-30"`` (also ``"0.1-1"``) -> Range.

        Raises:
            ValueError: not one number or two numbers joined by ``-``, or low > high.
        """
        parts = text.strip().split("-")
        if len(parts) not in (1, 2) or not all(parts):
            raise ValueError(f"expected a number or LOW-HIGH, got {text!r}")
        low, high = float(parts[0]), float(parts[-1])
        if low > high:
            raise ValueError(f"{text!r}: the low end is above the high end")
        return Range(low, high)

    def at(self, u: float) -> float:
        """The value at quantile ``u`` in [0, 1)."""
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class KernelOptions:
    """Which kernels to draw and the ranges of their parameters.

    Attributes:
        types: kernel types, one chosen uniformly per pair.
        max_len: camera-shake path length in pixels.
        expl: camera-shake intensity (DeblurGAN draws 0.003 to 0.01).
        exposure: fraction of the shake trajectory exposed.
        iterations: camera-shake trajectory points.
        length: linear-motion length in pixels.
        angle: linear-motion angle in degrees.
        radius: defocus disc radius in pixels.
        sigma: Gaussian standard deviation in pixels.
    """

    types: tuple[str, ...] = ("shake",)
    max_len: Range = Range(60.0, 60.0)
    expl: Range = Range(0.003, 0.01)
    exposure: Range = Range(0.1, 1.0)
    iterations: int = 2000
    length: Range = Range(5.0, 30.0)
    angle: Range = Range(0.0, 180.0)
    radius: Range = Range(1.0, 6.0)
    sigma: Range = Range(0.5, 3.0)


@dataclass(frozen=True)
class SynthSettings:
    """Everything that decides the pairs (and nothing that only decides speed)."""

    per_image: int = 1
    seed: int = 0
    crop: tuple[int, int] | None = None  # (width, height)
    max_side: int | None = None  # photos are first downscaled to this longer side
    val_fraction: float = 0.0
    kernels: KernelOptions = field(default_factory=KernelOptions)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def as_json(self) -> dict:
        """Plain-JSON form for ``synth-blur.json``."""
        return json.loads(json.dumps(asdict(self)))


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (run seed, photo, copy, epoch...): SHA-256 of their
    text, so it is the same on every machine, process and Python version."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class _PairDraws:
    kernel_type: str
    kernel_params: dict[str, float]
    shake: ShakeDraws | None
    crop_u: tuple[float, float]
    synthesis: SynthesisDraws
    generator: torch.Generator


def _kernel_params(kind: str, options: KernelOptions, u: Sequence[float]) -> dict[str, float]:
    """A kind's parameters at quantiles ``u`` of their ranges (shakes add their point count)."""
    params = {
        name: getattr(options, name).at(u[i]) for i, name in enumerate(KERNEL_PARAMETERS[kind])
    }
    if kind == "shake":
        params["iterations"] = options.iterations
    return params


def _draw_pair(seed: int, settings: SynthSettings) -> _PairDraws:
    """All of a pair's random numbers except the noise, in a fixed order."""
    g = torch.Generator().manual_seed(seed)
    options = settings.kernels
    u = torch.rand(4, dtype=torch.float64, generator=g).tolist()
    kernel_type = options.types[min(int(u[0] * len(options.types)), len(options.types) - 1)]
    params = _kernel_params(kernel_type, options, u[1:])
    shake = ShakeDraws.sample(1, options.iterations, g)  # drawn always: fixed stream layout
    crop_u = tuple(torch.rand(2, dtype=torch.float64, generator=g).tolist())
    synthesis = SynthesisDraws.sample(1, settings.synthesis, g)
    return _PairDraws(
        kernel_type, params, shake if kernel_type == "shake" else None, crop_u, synthesis, g
    )


def _kernels(draws: Sequence[_PairDraws]) -> list[torch.Tensor]:
    """(K, K) float64 kernels, one per pair; shake trajectories integrated as one batch."""
    shaken = [d for d in draws if d.shake is not None]
    trajectories: dict[int, torch.Tensor] = {}
    if shaken:
        batch = ShakeDraws.cat([d.shake for d in shaken])
        max_len = torch.tensor([d.kernel_params["max_len"] for d in shaken])
        expl = torch.tensor([d.kernel_params["expl"] for d in shaken])
        points = shake_trajectories(batch, max_len, expl)
        trajectories = {id(d): points[i : i + 1] for i, d in enumerate(shaken)}
    return [make_kernel(d.kernel_type, d.kernel_params, trajectories.get(id(d))) for d in draws]


def make_kernel(
    kind: str, params: Mapping[str, float], trajectory: torch.Tensor | None = None
) -> torch.Tensor:
    """The (K, K) float64 kernel of one kind from its parameters (as :func:`_kernel_params`
    draws them); a shake also needs its (1, P, 2) trajectory.

    Raises:
        ValueError: an unknown kind, or a shake without its trajectory.
    """
    if kind == "shake":
        if trajectory is None:
            raise ValueError("a shake kernel needs its trajectory")
        weights = exposure_weights(trajectory.shape[1], params["exposure"], 1)
        return rasterize_points(trajectory, weights)[0]
    if kind == "linear":
        return linear_kernels(params["length"], params["angle"])[0]
    if kind == "defocus":
        return defocus_kernels(params["radius"])[0]
    if kind == "gaussian":
        return gaussian_kernels(params["sigma"])[0]
    raise ValueError(f"unknown kernel kind {kind!r}: choose from {', '.join(KERNEL_PARAMETERS)}")


def _crop_box(
    width: int, height: int, crop: tuple[int, int] | None, u: tuple[float, float]
) -> tuple[int, int, int, int]:
    if crop is None:
        return 0, 0, width, height
    crop_w, crop_h = crop
    x = min(int(u[0] * (width - crop_w + 1)), width - crop_w)
    y = min(int(u[1] * (height - crop_h + 1)), height - crop_h)
    return x, y, crop_w, crop_h


def _with_context(pixels: np.ndarray, box: tuple[int, int, int, int], margin: int) -> np.ndarray:
    """The box plus ``margin`` px of real surroundings, mirrored where the photo ends."""
    x, y, w, h = box
    height, width = pixels.shape[:2]
    top, left = max(0, y - margin), max(0, x - margin)
    bottom, right = min(height, y + h + margin), min(width, x + w + margin)
    region = pixels[top:bottom, left:right]
    pad = (
        (margin - (y - top), margin - (bottom - y - h)),
        (margin - (x - left), margin - (right - x - w)),
        (0, 0),
    )
    return np.pad(region, pad, mode="reflect") if any(sum(p) for p in pad) else region


@dataclass(frozen=True)
class SynthesizedPair:
    """One blurred/sharp pair made from a photo, with what was drawn for it.

    Attributes:
        blurred, sharp: (h, w, C) pixels of the photo's dtype.
        kernel: (K, K) float64, summing to 1.
        box: (x, y, w, h) of the crop in the photo.
        draws: the kernel type, its parameters and the camera-model values.
        values: the camera-model values as plain numbers (``jpeg_quality`` None
            when it could not apply).
    """

    blurred: np.ndarray
    sharp: np.ndarray
    kernel: torch.Tensor
    box: tuple[int, int, int, int]
    draws: _PairDraws
    values: dict


def synthesize_pairs(
    pixels: np.ndarray, seeds: Sequence[int], settings: SynthSettings
) -> list[SynthesizedPair]:
    """Make one pair per seed from (H, W, C) pixels: crop, kernel, camera model, quantisation.

    Used for datasets on disk and for blurring sharp photos on the fly in
    training; the same seed and settings give the same pair.
    """
    all_draws = [_draw_pair(seed, settings) for seed in seeds]
    height, width = pixels.shape[:2]
    made = []
    for draws, kernel in zip(all_draws, _kernels(all_draws), strict=True):
        margin = kernel.shape[-1] // 2
        box = _crop_box(width, height, settings.crop, draws.crop_u)
        surroundings = _with_context(pixels, box, margin)
        linear = settings.synthesis.linear_light
        light = pixels_to_linear(surroundings) if linear else pixels_to_tensor(surroundings)
        blurred = camera_blur(
            light[None],
            kernel[None].float(),
            settings.synthesis,
            draws.synthesis,
            context=True,
            generator=draws.generator,
        )[0]
        if linear:
            blurred = linear_to_srgb(blurred)
        blurred_pixels = tensor_to_pixels(blurred, pixels.dtype)
        values = draws.synthesis.row(0)
        if values["jpeg_quality"] is not None:
            if pixels.dtype == np.uint8:
                blurred_pixels = jpeg_roundtrip(blurred_pixels, int(values["jpeg_quality"]))
            else:
                values["jpeg_quality"] = None  # JPEG holds 8 bits only: 16-bit pairs stay exact
        x, y, w, h = box
        sharp = np.ascontiguousarray(pixels[y : y + h, x : x + w])
        made.append(SynthesizedPair(blurred_pixels, sharp, kernel, box, draws, values))
    return made


def downscale(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """(H, W, C) pixels shrunk with area averaging so the longer side is at most
    ``max_side`` (aspect kept, never enlarged; ``None`` keeps them as they are).

    Large photos hold little detail per pixel; shrinking them first gives
    training crops with the texture density of the images a model will meet.
    """
    height, width = pixels.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return pixels
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return shrunk.reshape(size[1], size[0], *pixels.shape[2:])
