"""Deep Photo Enhancer's global U-Net (Chen et al., CVPR 2018), at any resolution.

The paper's network works on 512×512 images. Local encoder: five 5×5
convolutions (16 channels at full scale, then 32, 64, 128, 128 with stride 2,
down to 1/16), each with batch norm and SELU. Global path: two more stride-2
convolutions on the 1/16 features and an 8×8 one (a fully connected layer)
give one 1×1×128 vector per image, which is broadcast and concatenated to the
local 1/16 features and fused by a 1×1 convolution. The decoder upsamples
×2 four times, each time concatenating the encoder's features of that scale
(skip connections), and the output is a residual added to the input and
clipped to the value range.

Full-resolution photos follow the authors' recipe: the global vector comes
from a copy resized to ``global_size`` (512) on the long side and mirrored to
a square, and the local path runs on the full image. Because the vector is an
input of :meth:`DPEGenerator.forward_with_context`, tiles of a large photo
share one vector and agree with the untiled result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.models.layers import (
    GlobalContextGenerator,
    Padding,
    output_layer,
    pad_bottom_right,
)

ENCODER_WIDTHS = (16, 32, 64, 128, 128)


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution, batch norm, SELU; (N, c_in, H, W) -> (N, c_out, H/stride, W/stride)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.SELU(inplace=True),
    )


class DPEGenerator(GlobalContextGenerator):
    """DPE global U-Net: (N, 3, H, W) in [-1, 1] -> the same, enhanced.

    Args:
        global_size: side of the square the global path sees (512 in the paper).

    Example:
        >>> g = DPEGenerator(global_size=128).eval()
        >>> g(torch.zeros(1, 3, 50, 70)).shape
        torch.Size([1, 3, 50, 70])
    """

    def __init__(self, global_size: int = 512) -> None:
        super().__init__()
        if global_size % 64:
            raise ValueError("global_size must be a multiple of 64")
        self.global_size = global_size
        self.padding = Padding(16, mode="reflect")
        c0, c1, c2, c3, c4 = ENCODER_WIDTHS
        self.enc0 = _conv_block(3, c0, 5)
        self.enc1 = _conv_block(c0, c1, 5, 2)
        self.enc2 = _conv_block(c1, c2, 5, 2)
        self.enc3 = _conv_block(c2, c3, 5, 2)
        self.enc4 = _conv_block(c3, c4, 5, 2)
        grid = global_size // 64  # 1/16 scale, then two stride-2 convolutions: 8 for 512
        self.global_path = nn.Sequential(
            _conv_block(c4, c4, 5, 2),
            _conv_block(c4, c4, 5, 2),
            nn.Conv2d(c4, c4, grid),  # fully connected over the whole grid: (N, 128, 1, 1)
            nn.SELU(inplace=True),
        )
        self.fuse = _conv_block(2 * c4, c4, 1)
        self.dec3 = _conv_block(c4 + c3, c3, 3)
        self.dec2 = _conv_block(c3 + c2, c2, 3)
        self.dec1 = _conv_block(c2 + c1, c1, 3)
        self.dec0 = _conv_block(c1 + c0, c0, 3)
        self.output = nn.Conv2d(c0, 3, 3, padding=1)  # last, so training can start at identity

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.enc0(x)]
        for stage in (self.enc1, self.enc2, self.enc3, self.enc4):
            features.append(stage(features[-1]))
        return features

    def global_features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) whole images -> (N, 128, 1, 1) global vectors.

        The image is resized to ``global_size`` on its long side (antialiased)
        and mirrored at the bottom and right to a square.
        """
        height, width = image.shape[-2:]
        scale = self.global_size / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = F.interpolate(image, size=size, mode="bilinear", antialias=True)
        square = pad_bottom_right(small, Padding(self.global_size))
        return self.global_path(self._encode(square)[-1])

    def forward_with_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Enhance (N, 3, H, W) in [-1, 1] with the (N, 128, 1, 1) vectors of their whole images."""
        height, width = x.shape[-2:]
        padded = pad_bottom_right(x, self.padding)
        f0, f1, f2, f3, f4 = self._encode(padded)
        fused = self.fuse(torch.cat([f4, context.expand(-1, -1, *f4.shape[-2:])], dim=1))
        y = self.dec3(torch.cat([_up(fused), f3], dim=1))
        y = self.dec2(torch.cat([_up(y), f2], dim=1))
        y = self.dec1(torch.cat([_up(y), f1], dim=1))
        y = self.dec0(torch.cat([_up(y), f0], dim=1))
        return (padded + output_layer(self.output, y)).clamp(-1.0, 1.0)[..., :height, :width]


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")
