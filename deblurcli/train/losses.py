"""Content losses: L1, L2, SSIM, FFT-L1 and the VGG19 conv3_3 perceptual loss.

All take (B, 3, H, W) predictions and targets in [-1, 1] and return a scalar.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from deblurcli import metrics
from deblurcli.errors import WeightsError

# torchvision's ImageNet VGG19 file, and its download address (for the error message).
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# VGG19 "features" up to conv3_3 (index 14), as DeblurGAN's perceptual loss cuts it.
_VGG19_CONV3_3 = (
    (3, 64), (64, 64), "pool", (64, 128), (128, 128), "pool", (128, 256), (256, 256), (256, 256)
)  # fmt: skip
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (:func:`deblurcli.metrics.ssim`, the scoring SSIM) of images in [-1, 1]."""
    return 1 - metrics.ssim((pred + 1) / 2, (target + 1) / 2).mean().float()


def fft_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the real and imaginary parts of the images' 2-D spectra (as MIMO-UNet),
    with orthonormal FFTs so its scale does not grow with the crop size."""
    difference = torch.fft.rfft2(pred.float(), norm="ortho") - torch.fft.rfft2(
        target.float(), norm="ortho"
    )
    return torch.view_as_real(difference).abs().mean()


def torch_hub_checkpoints() -> Path:
    """Where torchvision keeps downloaded ImageNet weights (``TORCH_HOME`` honoured)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(home) / "hub" / "checkpoints"


class VGG19Conv33(nn.Module):
    """VGG19 features up to conv3_3 (torchvision's ``features.0`` … ``features.14``).

    Shapes: (B, 3, H, W) in [-1, 1] -> (B, 256, H/4, W/4).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for item in _VGG19_CONV3_3:
            if item == "pool":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(item[0], item[1], 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers[:-1])  # ends at conv3_3, before its ReLU
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)

    @staticmethod
    def from_torch_cache(path: Path | None = None) -> VGG19Conv33:
        """Load torchvision's ImageNet VGG19 weights from the torch hub cache, frozen.

        Raises:
            WeightsError: the file is not there (it is never downloaded behind your back).
        """
        path = path or torch_hub_checkpoints() / VGG19_FILE
        if not path.is_file():
            raise WeightsError(
                f"the perceptual loss needs torchvision's ImageNet VGG19 weights: download "
                f"{VGG19_URL} to this path, or choose a preset without it (--preset fast)",
                path,
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = VGG19Conv33()
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        own = model.features.state_dict()
        missing = [k for k in own if f"features.{k}" not in wanted]
        if missing:
            raise WeightsError(f"is not a VGG19 checkpoint (no features.{missing[0]})", path)
        model.features.load_state_dict({k: wanted[f"features.{k}"] for k in own})
        model.requires_grad_(False)
        return model.eval()


class PerceptualLoss(nn.Module):
    """MSE between VGG19 conv3_3 features of prediction and target (DeblurGAN's content loss)."""

    def __init__(self, vgg: VGG19Conv33) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.vgg(target)
        return F.mse_loss(self.vgg(pred), target_features)


CONTENT_LOSSES: dict[str, Loss] = {"l1": l1, "l2": l2, "ssim": ssim_loss, "fft": fft_l1}
