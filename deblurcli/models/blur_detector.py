"""The learned part of the blur detector: a small CNN that reads one tile's blur extent.

:class:`BlurDetector` joins it to the fixed steps in
:mod:`deblurcli.ops.blur_estimate` (analysis size, textured tiles, quantile)
and to the threshold of the yes/no verdict. Its weights and settings ship as
``deblurcli-blur-detector`` (``weights/deblurcli_blur_detector.safetensors``),
trained on ``synth-blur`` pairs (see ``deblur weights show
deblurcli-blur-detector``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deblurcli.errors import WeightsError
from deblurcli.ops.blur_estimate import (
    DIRECTIONS_DEG,
    REFERENCE_SIDE,
    TILE,
    BlurEstimate,
    analysis_gray,
    photo_extent,
    textured_tiles,
)

WEIGHTS_NAME = "deblurcli-blur-detector"
# The manifest's ``architecture`` of the detector: not a restoration model of the registry.
ARCHITECTURE = "blur-detector"
DETECTOR_FORMAT = "deblurcli-blur-detector/1"


class BlurNet(nn.Module):
    """(N, 1, TILE, TILE) normalised gray tiles -> (N, 4) predicted log blur extents along
    :data:`~deblurcli.ops.blur_estimate.DIRECTIONS_DEG`, px at the analysis size.

    A 2×2 space-to-depth step (lossless), then four 3×3 convolutions, three of
    stride 2, and a global mean: about 52 k parameters, 4.9 M multiply-adds a tile.
    """

    WIDTH = 32

    def __init__(self) -> None:
        super().__init__()
        width = self.WIDTH
        self.features = nn.Sequential(
            nn.PixelUnshuffle(2),
            nn.Conv2d(4, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 3 * width // 2, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(3 * width // 2, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(2 * width, len(DIRECTIONS_DEG))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tiles).mean(dim=(2, 3)))


@dataclass(frozen=True)
class DetectorSettings:
    """What turns tile predictions into a photo's estimate and verdict.

    Attributes:
        quantile: the quantile (0-1) over the tiles taken in each direction.
        threshold: blur extent, px at :data:`REFERENCE_SIDE`, from which a photo is blurry.
        slope, offset: the calibration from the raw estimate to pixels,
            ``log(px) = slope * log(raw px) + offset`` (at :data:`REFERENCE_SIDE`).
    """

    quantile: float
    threshold: float
    slope: float = 1.0
    offset: float = 0.0


class BlurDetector:
    """Estimates how blurred a photo is, without a reference.

    Example:
        >>> import numpy as np
        >>> detector = BlurDetector(BlurNet(), DetectorSettings(quantile=0.1, threshold=6.0))
        >>> estimate = detector.estimate(np.zeros((300, 400), np.uint8), photo_side=4000)
        >>> estimate.tiles
        4
    """

    def __init__(self, net: BlurNet, settings: DetectorSettings) -> None:
        self.net = net.eval()
        self.settings = settings

    @property
    def threshold(self) -> float:
        """The verdict's default threshold, px at :data:`REFERENCE_SIDE`."""
        return self.settings.threshold

    @torch.inference_mode()
    def estimate(self, gray: np.ndarray, photo_side: int | None = None) -> BlurEstimate:
        """The blur estimate of one photo.

        Args:
            gray: (H, W) uint8 gray pixels, the photo or a reduced copy of it.
            photo_side: the photo's own longer side, px, when ``gray`` is reduced
                (the estimate is scaled to it); None when ``gray`` is the photo.

        Raises:
            ValueError: ``gray`` is smaller than one tile.
        """
        if min(gray.shape) < TILE:
            raise ValueError(f"the photo is smaller than {TILE}×{TILE} px: too small to judge")
        pixels, _ = analysis_gray(gray)
        tiles = textured_tiles(pixels)
        log_extents = self.net(torch.from_numpy(tiles)).numpy()
        analysed_side = max(pixels.shape)
        raw = photo_extent(log_extents, self.settings.quantile) * REFERENCE_SIDE / analysed_side
        reference = max(1.0, math.exp(self.settings.offset) * raw**self.settings.slope)
        own_side = photo_side if photo_side is not None else max(gray.shape)
        return BlurEstimate(
            pixels=max(1.0, reference * own_side / REFERENCE_SIDE),
            reference_pixels=reference,
            tiles=len(tiles),
        )

    def save(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        """Write the network (fp32) and settings as safetensors, atomically."""
        from safetensors.torch import save

        from deblurcli.io.images import write_atomic

        header = {"format": DETECTOR_FORMAT, "settings": json.dumps(asdict(self.settings))}
        header.update(metadata or {})
        tensors = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        write_atomic(path, save(tensors, metadata=header))

    @staticmethod
    def load(path: Path | None = None) -> BlurDetector:
        """The detector in ``path``, or the shipped one.

        Raises:
            WeightsError: the file is not a blur detector's, or is damaged.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        if path is None:
            from deblurcli import hub

            entry = hub.find(WEIGHTS_NAME)
            path = hub.location(entry) if entry is not None else None
            if path is None:
                raise WeightsError(f"the shipped {WEIGHTS_NAME} file is missing: reinstall")
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
            if header.get("format") != DETECTOR_FORMAT:
                raise WeightsError(f"{path}: not a blur detector's weights")
            settings = DetectorSettings(**json.loads(header["settings"]))
            net = BlurNet()
            net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        except (SafetensorError, OSError, KeyError, RuntimeError, TypeError) as exc:
            raise WeightsError(f"{path}: damaged blur-detector weights ({exc})") from None
        return BlurDetector(net, settings)
