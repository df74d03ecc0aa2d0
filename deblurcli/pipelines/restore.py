"""Stateless restoration of one image: value mapping, device transfer, tiling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deblurcli.device import free_memory_bytes, resolve_device, resolve_precision
from deblurcli.download import Progress
from deblurcli.errors import WeightsError
from deblurcli.hub import resolve_weights
from deblurcli.models import get_spec
from deblurcli.models._builder import WeightsInfo, load_model
from deblurcli.models.layers import GlobalContextGenerator, PaddedGenerator, fold_batch_norms
from deblurcli.ops.color import integer_max, rgb_to_gray, tensor_to_pixels
from deblurcli.ops.tiling import auto_tile_size, tiled_forward_with_backoff

# Largest auto tile: past this, bigger tiles only add latency, and on the CPU they
# cost memory that the tile-overlap saving does not repay.
_AUTO_TILE_LIMIT = {"cpu": 1024, "mps": 2048, "cuda": 2048}
# Share of free memory one tile's activations may take (the rest: image, output, other programs).
_AUTO_MEMORY_SHARE = {"cpu": 0.25, "mps": 0.4, "cuda": 0.6}
_CPU_TILE_BUDGET = 1.5 * 1024**3


# Devices where reduced precision runs under autocast (elsewhere the model is cast).
_AUTOCAST_DEVICES = ("cpu", "cuda")
_NON_FINITE_NOTE = "non-finite values in reduced precision: tile rerun in fp32"

# Devices whose convolutions run faster on channels-last (NHWC) tensors.
_CHANNELS_LAST_DEVICES = ("cpu", "cuda")


def prepare_for_inference(
    model: PaddedGenerator, device: torch.device, dtype: torch.dtype
) -> PaddedGenerator:
    """Eval mode on ``device``/``dtype``; for running-statistics models also batch
    norms folded into their convolutions and channels-last layout where faster.

    Folding and NHWC change no output beyond float rounding; together they
    make the MobileNet FPNs about twice as fast on a CPU (docs/performance.md).
    Per-image-statistics models (official semantics) are left in NCHW: their
    instance norms on NHWC tensors move outputs by several grey levels.
    Folding happens before the move to ``dtype``, so fp16/bf16 models get
    weights folded in the precision they were loaded in.
    """
    model.eval()
    if model.statistics == "running":
        fold_batch_norms(model)
    model.to(device=device, dtype=dtype)
    if _uses_channels_last(model, device):
        model.to(memory_format=torch.channels_last)
    return model


def _uses_channels_last(model: PaddedGenerator, device: torch.device) -> bool:
    return model.statistics == "running" and device.type in _CHANNELS_LAST_DEVICES


@dataclass(frozen=True)
class RestoreReport:
    """How one image was run.

    Attributes:
        tile: tile side used (0 = the whole image at once).
        notes: things the user should know (tiling a per-image-statistics model, OOM retries).
    """

    tile: int
    notes: tuple[str, ...] = field(default_factory=tuple)


class Restorer:
    """Runs a generator on whole photographs; holds no per-image state.

    Args:
        model: a generator taking (1, 3, H, W) in [-1, 1].
        architecture: its registry name (for its memory use per pixel).
        info: the weights' semantics (statistics policy), or None for a model
            built in memory (treated as eval-mode, so it tiles exactly).
            The model is made ready for inference in place (see
            :func:`prepare_for_inference`): hand over a model you no longer train.
        device: where the network runs; images stay on the CPU.
        dtype: compute precision.
        tile: tile side; 0 picks one from free memory.
        overlap: pixels shared by neighbouring tiles.
        strength: blend of the result with the input (1 = the network's output,
            0 = the input unchanged).

    Models with global context (:class:`GlobalContextGenerator`) get their
    context vector from the whole image once; every tile then uses it.
    """

    def __init__(
        self,
        model: PaddedGenerator,
        architecture: str,
        info: WeightsInfo | None,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        tile: int = 0,
        overlap: int = 64,
        strength: float = 1.0,
    ) -> None:
        # Reduced precision runs under autocast: weights, the input, the global
        # residual and the value mapping stay fp32; only convolutions and matrix
        # products drop to ``dtype``. Devices without autocast cast the model.
        self.autocast = dtype != torch.float32 and device.type in _AUTOCAST_DEVICES
        self.model = prepare_for_inference(model, device, torch.float32 if self.autocast else dtype)
        self.architecture = architecture
        self.strength = strength
        self.channels_last = _uses_channels_last(model, device)
        self.info = info
        self.device = device
        self.dtype = dtype
        self.input_dtype = torch.float32 if self.autocast else dtype
        self.tile = tile
        self.overlap = overlap
        self.bytes_per_pixel = get_spec(architecture).memory_per_pixel
        if dtype != torch.float32:
            self.bytes_per_pixel /= 2

    @classmethod
    def from_weights(
        cls,
        weights: str | Path,
        *,
        task: str | None = None,
        architecture: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        tile: int = 0,
        overlap: int = 64,
        strength: float = 1.0,
        on_bytes: Progress | None = None,
    ) -> Restorer:
        """The one way from weights to a ready restorer: name, file or URL -> load -> check.

        Args:
            weights: a manifest name (``deblurcli-deconv``, ``fpn_inception``...), a
                weights file, or an https URL (downloaded once into the cache).
            task: ``deblur`` or ``enhance`` to refuse weights made for the other task.
            architecture: the registry name, when the file does not say it.
            device, precision: as ``--device`` and ``--precision`` take them; ``auto``
                precision keeps fp32 for models not marked ``bf16_safe``.
            tile, overlap, strength: see the class.
            on_bytes: download progress callback ``(bytes so far, total or None)``.

        Raises:
            WeightsError: unknown weights, or weights for the other ``task``.
            DownloadError, DeviceError: as their names say.

        Example:
            >>> restorer = Restorer.from_weights("deblurcli-mobilenet-dsc", device="cpu")
            >>> restorer.architecture
            'mobilenet-dsc'
        """
        torch_device = resolve_device(device)
        resolve_precision(precision, torch_device)  # a bad name fails before any download
        model, info = load_model(resolve_weights(str(weights), on_bytes), architecture)
        spec = get_spec(info.architecture)
        if task is not None and spec.task != task:
            command = "deblur deblur" if spec.task == "deblur" else "deblur enhance"
            raise WeightsError(
                f"holds {spec.task} weights ({info.architecture}): use {command}", info.path
            )
        dtype = resolve_precision(precision, torch_device, reduced_ok=spec.bf16_safe)
        return cls(model, info.architecture, info, torch_device, dtype, tile, overlap, strength)

    @property
    def tiles_exactly(self) -> bool:
        """True when tiles give the same result as the whole image."""
        return self.model.local and (self.info is None or self.info.tiles_exactly)

    @property
    def tiling_note(self) -> str:
        """What the user is told when an image that should run whole is tiled."""
        return _PER_IMAGE_TILING_NOTE if self.model.local else _GLOBAL_TILING_NOTE

    def choose_tile(self, height: int, width: int) -> tuple[int, tuple[str, ...]]:
        """Tile side for an image (0 = whole image) and any note for the user."""
        if self.tile > 0:
            if not self.tiles_exactly and max(height, width) > self.tile:
                return self.tile, (self.tiling_note,)
            return self.tile, ()
        kind = self.device.type
        free = free_memory_bytes(self.device)
        if not self.tiles_exactly:
            # Per-image statistics or global operations: only the whole image gives
            # the exact result.
            if height * width * self.bytes_per_pixel <= 0.8 * free:
                return 0, ()
            tile = auto_tile_size(
                int(free * _AUTO_MEMORY_SHARE[kind]),
                self.bytes_per_pixel,
                self.model.padding.multiple,
                _AUTO_TILE_LIMIT[kind],
            )
            return tile, (self.tiling_note,)
        budget = free * _AUTO_MEMORY_SHARE[kind]
        if kind == "cpu":
            budget = min(budget, _CPU_TILE_BUDGET)
        if height * width * self.bytes_per_pixel <= budget:
            return 0, ()  # fits: no overlap to recompute
        tile = auto_tile_size(
            int(budget), self.bytes_per_pixel, self.model.padding.multiple, _AUTO_TILE_LIMIT[kind]
        )
        return tile, ()

    @torch.inference_mode()
    def restore_tensor(self, image: torch.Tensor) -> tuple[torch.Tensor, RestoreReport]:
        """Restore (1, 3, H, W) float32 in [0, 1] on the CPU; returns the same shape in [0, 1]."""
        output = torch.empty_like(image, dtype=torch.float32)

        def keep(top: int, band: torch.Tensor) -> None:  # a retry rewrites the same rows
            output[:, :, top : top + band.shape[2]] = band

        return output, self._restore(image, 1.0, keep)

    @torch.inference_mode()
    def restore_array(self, pixels: np.ndarray) -> tuple[np.ndarray, RestoreReport]:
        """Restore (H, W, C) uint8/uint16 pixels, C = 1 or 3; returns the same shape and dtype.

        The photo stays in its stored dtype; only tiles become float, and each
        finished band of rows is quantised straight into the result, so a large
        photo costs about its own size twice plus one band of tiles (models
        that read the whole photo first also hold one float copy).
        """
        peak = integer_max(pixels.dtype)
        gray = pixels.shape[2] == 1
        stored = torch.from_numpy(np.require(pixels, requirements=("C", "W"))).permute(2, 0, 1)
        stored = stored[None].expand(1, 3, *pixels.shape[:2]) if gray else stored[None]
        result = np.empty_like(pixels)

        def quantise(top: int, band: torch.Tensor) -> None:
            rows = slice(top, top + band.shape[2])
            if gray:
                band = rgb_to_gray(band)
            result[rows] = tensor_to_pixels(band[0], pixels.dtype)

        return result, self._restore(stored, 1.0 / peak, quantise)

    def _restore(
        self, image: torch.Tensor, scale: float, sink: Callable[[int, torch.Tensor], None]
    ) -> RestoreReport:
        """Run (1, 3, H, W) ``image`` (times ``scale``: [0, 1]) through the model tile by
        tile; finished bands of rows, strength applied and clamped, go to ``sink``."""
        _, _, height, width = image.shape
        tile, notes = self.choose_tile(height, width)
        retries: list[int] = []
        reruns: list[None] = []
        context = None
        if isinstance(self.model, GlobalContextGenerator):
            whole = image.to(self.device, self.input_dtype) * scale
            with self._precision(reduced=True):
                context = self.model.global_features(self._to_model(whole))
            del whole

        def forward(tile_pixels: torch.Tensor) -> torch.Tensor:
            return self._forward_tile(tile_pixels * scale, context, reruns.append)

        def blend(top: int, band: torch.Tensor) -> None:
            if self.strength != 1.0:
                source = image[:, :, top : top + band.shape[2]].float() * scale
                band = source.add_(band.sub_(source).mul_(self.strength))
            sink(top, band.clamp_(0.0, 1.0))

        _, used = tiled_forward_with_backoff(
            forward,
            image,
            tile,
            self.overlap,
            self.model.padding.multiple,
            self.device,
            self.input_dtype,
            on_retry=retries.append,
            sink=blend,
        )
        if reruns:
            notes = (*notes, _NON_FINITE_NOTE)
        if retries:
            notes = (*notes, f"out of memory: retried with {retries[-1]}px tiles")
            if not self.tiles_exactly and self.tiling_note not in notes:
                notes = (*notes, self.tiling_note)
        return RestoreReport(used, notes)

    def memory_warning(self, pixels: np.ndarray) -> str | None:
        """What to tell the user before restoring ``pixels`` (H, W, C) when the photo's
        buffers alone come near the free memory; None when they fit comfortably."""
        needed = 2 * pixels.nbytes  # the photo and its result
        if isinstance(self.model, GlobalContextGenerator):
            needed += 3 * 4 * pixels.shape[0] * pixels.shape[1]  # one float copy
        free = free_memory_bytes(torch.device("cpu"))
        if needed <= 0.8 * free:
            return None
        return (
            f"needs about {needed / 1e9:.1f} GB for the photo's buffers with "
            f"{free / 1e9:.1f} GB free: close other programs if it fails or swaps"
        )

    def _to_model(self, tile: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> the network's [-1, 1] input, in its memory layout."""
        if self.channels_last:
            tile = tile.contiguous(memory_format=torch.channels_last)
        return tile * 2 - 1

    def _precision(self, reduced: bool) -> torch.autocast:
        """The autocast context for this restorer's precision (fp32 when not ``reduced``)."""
        enabled = self.autocast and reduced
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled)

    def _forward_tile(
        self,
        tile: torch.Tensor,
        context: torch.Tensor | None = None,
        on_rerun: Callable[[None], None] = lambda _: None,
    ) -> torch.Tensor:
        """(1, 3, h, w) in [0, 1] -> the same; a reduced-precision result with NaN or
        infinity (fp16 overflow) is computed again in fp32, and ``on_rerun`` told."""
        output = self._run_model(tile, context, reduced=True)
        if self.autocast and not bool(torch.isfinite(output).all()):
            on_rerun(None)
            output = self._run_model(tile, context, reduced=False)
        return output

    def _run_model(
        self, tile: torch.Tensor, context: torch.Tensor | None, reduced: bool
    ) -> torch.Tensor:
        with self._precision(reduced):
            if context is None:
                output = self.model(self._to_model(tile))
            else:
                output = self.model.forward_with_context(self._to_model(tile), context)
        return (output.float() + 1) / 2


_PER_IMAGE_TILING_NOTE = (
    "tiled: these weights normalise with per-image statistics, so tiles differ "
    "slightly from a whole-image run"
)
_GLOBAL_TILING_NOTE = (
    "tiled: this model deconvolves the whole photo at once, so tiles differ "
    "slightly from a whole-image run near their seams"
)
