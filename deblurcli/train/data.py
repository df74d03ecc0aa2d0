"""Training data: paired folders, or good photos degraded on the fly.

Paired layouts: any folder named ``blur`` pairs with its sibling ``sharp`` by
relative path, and ``input`` with ``target`` (enhancement pairs, as
MIT-Adobe FiveK's originals and an expert's retouches). That covers
synth-blur datasets (``train/blur/NAME.png``, ``train/sharp/NAME.png``) and
GoPro (``GOPR0372_07_00/blur/000047.png``, ``.../sharp/000047.png``). A
folder without such folders is a folder of good photos: for deblurring
models they are blurred on the fly by the synth-blur camera model, for
enhancers degraded by :mod:`deblurcli.ops.degrade`.

Every sample's randomness (crop, flips, kernel, noise) comes from a generator
seeded by (seed, epoch, index), so batches do not depend on DataLoader
workers, and a resumed run sees the same data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from deblurcli.errors import InputImageError, UsageError
from deblurcli.io.discovery import list_images
from deblurcli.io.images import peek_size, read_image
from deblurcli.ops.degrade import DegradeConfig, degrade
from deblurcli.ops.pairs import (
    KernelOptions,
    Range,
    SynthSettings,
    derived_seed,
    downscale,
    synthesize_pairs,
)
from deblurcli.ops.synthesis import SynthesisConfig

if TYPE_CHECKING:
    from deblurcli.train.presets import TrainConfig

PAIR_FOLDERS = {"blur": "sharp", "input": "target"}  # degraded folder -> its good sibling


@dataclass(frozen=True)
class Source:
    """A dataset found on disk: pairs (blur, sharp), or sharp photos alone."""

    pairs: list[tuple[Path, Path]]
    sharp_only: list[Path]

    def __len__(self) -> int:
        return len(self.pairs) or len(self.sharp_only)


def find_data(root: Path) -> Source:
    """Pairs under ``blur``/``sharp`` or ``input``/``target`` folders, else good photos.

    Raises:
        UsageError: no images, or degraded and good files that do not pair up.
    """
    if not root.is_dir():
        raise UsageError("is not a folder of training images", root)
    blur_dirs = sorted(
        p for name in PAIR_FOLDERS for p in root.rglob(name) if p.is_dir() and p != root
    )
    if not blur_dirs:
        photos = list_images(root)
        if not photos:
            raise UsageError("holds no images (JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF)", root)
        return Source([], photos)
    pairs: list[tuple[Path, Path]] = []
    for blur_dir in blur_dirs:
        good = PAIR_FOLDERS[blur_dir.name]
        sharp_dir = blur_dir.parent / good
        blurred = {p.relative_to(blur_dir): p for p in list_images(blur_dir)}
        sharp = (
            {p.relative_to(sharp_dir): p for p in list_images(sharp_dir)}
            if sharp_dir.is_dir()
            else {}
        )
        missing = sorted(set(blurred) - set(sharp))
        extra = sorted(set(sharp) - set(blurred))
        if missing or extra:
            example = (blur_dir / missing[0]) if missing else (sharp_dir / extra[0])
            raise UsageError(
                f"{len(blurred)} {blur_dir.name} and {len(sharp)} {good} images do not pair up "
                f"by name (first unpaired: {example}): every {blur_dir.name}/NAME needs a "
                f"{good}/NAME",
                blur_dir.parent,
            )
        pairs += [(blurred[k], sharp[k]) for k in sorted(blurred)]
    if not pairs:
        raise UsageError(f"its {blur_dirs[0].name}/ folders hold no images", root)
    return Source(pairs, [])


def check_sizes(paths: list[Path], crop: int, max_side: int | None = None) -> None:
    """Every image at least ``crop`` on each side, after shrinking to ``max_side``
    (read from headers only).

    Raises:
        InputImageError: the first image that is too small, or unreadable.
    """
    for path in paths:
        size = peek_size(path)
        if size is None:
            raise InputImageError("cannot be read as an image", path)
        width, height = size
        if max_side is not None and max(width, height) > max_side:
            scale = max_side / max(width, height)
            width, height = round(width * scale), round(height * scale)
        if min(width, height) < crop:
            raise InputImageError(
                f"is {width}×{height} px, smaller than the {crop} px training crop: "
                "use a smaller --crop or remove it",
                path,
            )


def load_photo(path: Path, max_side: int | None) -> np.ndarray:
    """A good photo's pixels, shrunk to ``max_side`` (callers never write into them)."""
    if max_side is None:
        return read_image(path).pixels
    return _load_shrunk(path, max_side)


_SHRUNK_KEPT = 256


@functools.lru_cache(maxsize=_SHRUNK_KEPT)
def _load_shrunk(path: Path, max_side: int) -> np.ndarray:
    """Shrunk photos are small and read every epoch: the last 256 stay in memory."""
    return downscale(read_image(path).pixels, max_side)


_RANGE_OPTIONS = ("max_len", "expl", "exposure", "length", "angle", "radius", "sigma")
_SYNTHESIS_OPTIONS = {f for f in SynthesisConfig.__dataclass_fields__}


def synth_settings(options: dict) -> SynthSettings:
    """Synth-blur settings from a recipe's plain options (JSON-friendly).

    Keys: ``types`` (kernel types, one drawn uniformly per pair: repeat a type
    to draw it more often), the kernel ranges ``max_len``, ``expl``,
    ``exposure``, ``length``, ``angle``, ``radius``, ``sigma`` as [low, high],
    and any :class:`SynthesisConfig` field (``noise``, ``shot_noise``,
    ``read_noise``, ``saturation``, ...). Missing keys keep synth-blur's defaults.

    Raises:
        ValueError: an unknown key.
    """
    kernel: dict = {}
    synthesis: dict = {}
    for key, value in options.items():
        if key == "types":
            kernel["types"] = tuple(value)
        elif key in _RANGE_OPTIONS:
            low, high = value
            kernel[key] = Range(float(low), float(high))
        elif key in _SYNTHESIS_OPTIONS:
            synthesis[key] = tuple(value) if isinstance(value, list) else value
        else:
            known = ", ".join(["types", *_RANGE_OPTIONS, *sorted(_SYNTHESIS_OPTIONS)])
            raise ValueError(f"unknown blur option {key!r}: use {known}")
    return SynthSettings(kernels=KernelOptions(**kernel), synthesis=SynthesisConfig(**synthesis))


def rescale(pixels: np.ndarray, scale: float, smallest: int) -> np.ndarray:
    """(H, W, C) pixels shrunk by ``scale`` <= 1 (area averaging), never below
    ``smallest`` px on the shorter side."""
    height, width = pixels.shape[:2]
    scale = max(scale, smallest / min(height, width))
    if scale >= 1:
        return pixels
    return downscale(pixels, round(max(height, width) * scale))


def random_window(
    shape: tuple[int, ...], crop: int, generator: torch.Generator
) -> tuple[slice, slice]:
    """(rows, columns) of a random ``crop``×``crop`` window inside an (H, W, ...) image."""
    height, width = shape[:2]
    y = int(torch.randint(0, height - crop + 1, (1,), generator=generator))
    x = int(torch.randint(0, width - crop + 1, (1,), generator=generator))
    return slice(y, y + crop), slice(x, x + crop)


def degrade_config(options: dict) -> DegradeConfig:
    """A :class:`DegradeConfig` from a recipe's ``{field: [low, high]}`` options.

    Raises:
        ValueError: an unknown field.
    """
    known = set(DegradeConfig.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise ValueError(
            f"unknown degradation {sorted(unknown)[0]!r}: use {', '.join(sorted(known))}"
        )
    return DegradeConfig(**{key: tuple(value) for key, value in options.items()})


def _degraded_pair(
    pixels: np.ndarray,
    generator: torch.Generator,
    config: DegradeConfig | None = None,
    identity_share: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(degraded, good) (3, H, W) in [-1, 1] from good pixels, by :func:`degrade`; with
    probability ``identity_share`` the photo is left as it is (degraded == good)."""
    good = pixels_to_model_input(pixels)
    degraded, _ = degrade((good + 1) / 2, generator, config)
    if identity_share > 0 and float(torch.rand((), generator=generator)) < identity_share:
        return good.clone(), good
    return degraded * 2 - 1, good


def pixels_to_model_input(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8/uint16 -> (3, H, W) float32 in [-1, 1]."""
    peak = float(np.iinfo(pixels.dtype).max)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels).astype(np.float32) / peak)
    tensor = tensor.permute(2, 0, 1)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    return tensor * 2 - 1


class TrainingPairs(Dataset):
    """Random ``crop``×``crop`` pairs with flips; (degraded, good) in [-1, 1], (3, crop, crop).

    Args:
        source: what :func:`find_data` found.
        crop: crop side in pixels.
        seed: base seed of every random choice.
        synth: how sharp-only photos are blurred (its ``crop`` is set here).
        task: ``deblur`` (good photos are blurred) or ``enhance`` (they are degraded).
        max_side: good photos are first shrunk to this longer side.
        scales: each crop of a good photo comes from it scaled by a factor drawn
            uniformly from this range, so blur of every size meets content of every size.
        degrade: how good photos are degraded for ``task="enhance"`` (default ranges
            when None), and ``identity_share`` of them are left as they are.
        squash: each sample is a whole good photo resized to ``crop``×``crop``
            instead of a crop of it, by nearest neighbour: a strided sample of real
            pixels, as a global enhancer reads a photo's levels at inference (an
            averaging resize would narrow the levels it learns from).
    """

    def __init__(
        self,
        source: Source,
        crop: int,
        seed: int,
        synth: SynthSettings | None = None,
        task: str = "deblur",
        max_side: int | None = None,
        scales: tuple[float, float] = (1.0, 1.0),
        degrade: DegradeConfig | None = None,
        identity_share: float = 0.0,
        squash: bool = False,
    ) -> None:
        self.source = source
        self.degrade = degrade
        self.identity_share = identity_share
        self.squash = squash
        self.crop = crop
        self.seed = seed
        self.epoch = 0
        self.task = task
        self.max_side = max_side
        self.scales = scales
        self.synth = SynthSettings(crop=(crop, crop), **_synth_fields(synth))
        if max_side is not None and len(source.sharp_only) <= _SHRUNK_KEPT:
            # Read them here, once: the loader's workers are forked anew every epoch
            # and start with this process's memory, so they never decode them again.
            for path in source.sharp_only:
                load_photo(path, max_side)

    def _photo(self, index: int, seed: int) -> np.ndarray:
        """Good photo ``index``, shrunk to ``max_side`` and then by a random scale."""
        photo = load_photo(self.source.sharp_only[index], self.max_side)
        low, high = self.scales
        if low == high == 1.0:
            return photo
        g = torch.Generator().manual_seed(seed ^ 0x5CA1E)
        scale = low + (high - low) * float(torch.rand((), generator=g))
        return rescale(photo, scale, self.crop)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = derived_seed(self.seed, self.epoch, index)
        if self.source.pairs:
            blur_path, sharp_path = self.source.pairs[index]
            blurred, sharp = read_image(blur_path).pixels, read_image(sharp_path).pixels
            if blurred.shape != sharp.shape:
                raise InputImageError(f"differs in size from {sharp_path}", blur_path)
            g = torch.Generator().manual_seed(seed)
            window = random_window(sharp.shape[:2], self.crop, g)
            pair = torch.stack(
                [pixels_to_model_input(blurred[window]), pixels_to_model_input(sharp[window])]
            )
        elif self.task == "enhance":
            photo = self._photo(index, seed)
            g = torch.Generator().manual_seed(seed)
            if self.squash:
                photo = cv2.resize(photo, (self.crop, self.crop), interpolation=cv2.INTER_NEAREST)
            window = random_window(photo.shape[:2], self.crop, g)
            pair = torch.stack(_degraded_pair(photo[window], g, self.degrade, self.identity_share))
        else:
            photo = self._photo(index, seed)
            made = synthesize_pairs(photo, [seed], self.synth)[0]
            pair = torch.stack(
                [pixels_to_model_input(made.blurred), pixels_to_model_input(made.sharp)]
            )
            g = torch.Generator().manual_seed(seed ^ 0x5EED)
        flips = torch.randint(0, 2, (3,), generator=g).tolist()
        if flips[0]:
            pair = pair.flip(-1)
        if flips[1]:
            pair = pair.flip(-2)
        if flips[2]:
            pair = pair.transpose(-1, -2)
        return pair[0].contiguous(), pair[1].contiguous()


def _synth_fields(synth: SynthSettings | None) -> dict:
    if synth is None:
        return {}
    return {"kernels": synth.kernels, "synthesis": synth.synthesis}


def validation_set(
    source: Source | None,
    config: TrainConfig,
    task: str,
    synth: SynthSettings | None = None,
    degrade: DegradeConfig | None = None,
) -> ValidationPairs | None:
    """A run's fixed validation pairs, as its recipe says: centre crops of
    ``config.val_crop`` (0: whole photos), photos shrunk to ``config.val_max_side``
    (else ``config.max_side``). None without a (non-empty) source."""
    if not source:
        return None
    max_side = config.val_max_side or config.max_side
    return ValidationPairs(source, config.val_crop, config.seed, task, max_side, synth, degrade)


class ValidationPairs(Dataset):
    """Centre crops (``crop``×``crop``, or the whole image when smaller or when
    ``crop`` is 0) of fixed pairs.

    Good-photo folders are blurred (or, for ``task="enhance"``, degraded) once
    with a fixed seed, so every validation sees the same inputs; ``synth``
    says how (the training recipe's blur, so validation measures the same task).
    """

    def __init__(
        self,
        source: Source,
        crop: int,
        seed: int,
        task: str = "deblur",
        max_side: int | None = None,
        synth: SynthSettings | None = None,
        degrade: DegradeConfig | None = None,
    ) -> None:
        self.source = source
        self.degrade = degrade
        self.crop = crop if crop > 0 else 1 << 30
        self.seed = seed
        self.task = task
        self.max_side = max_side
        self.synth = SynthSettings(crop=None, **_synth_fields(synth))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.source.pairs:
            blur_path, sharp_path = self.source.pairs[index]
            blurred, sharp = read_image(blur_path).pixels, read_image(sharp_path).pixels
        elif self.task == "enhance":
            photo = _centre(load_photo(self.source.sharp_only[index], self.max_side), self.crop)
            g = torch.Generator().manual_seed(derived_seed(self.seed, "val", index))
            return _degraded_pair(photo, g, self.degrade)
        else:
            photo = load_photo(self.source.sharp_only[index], self.max_side)
            photo = _centre(photo, self.crop + 128)  # room for the blur's surroundings
            made = synthesize_pairs(photo, [derived_seed(self.seed, "val", index)], self.synth)[0]
            blurred, sharp = made.blurred, made.sharp
        return pixels_to_model_input(_centre(blurred, self.crop)), pixels_to_model_input(
            _centre(sharp, self.crop)
        )


def _centre(pixels: np.ndarray, size: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    h, w = min(size, height), min(size, width)
    y, x = (height - h) // 2, (width - w) // 2
    return pixels[y : y + h, x : x + w]
