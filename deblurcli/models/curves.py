"""An image-adaptive global enhancer: a colour matrix and per-channel tone curves,
predicted from a small copy of the photo and applied exactly at any resolution.

Exposure, white balance, contrast, saturation and haze act on a whole photo
the same way everywhere, and each is undone by a global colour operation: an
affine colour matrix (contrast, saturation, haze are affine in sRGB) followed
by a monotone curve per channel (exposure and white balance are gains in
linear light, which are curves in sRGB). A small network reads the photo's
levels (33 quantiles each of red, green, blue, luma and chroma) and predicts
both, as the image-adaptive curve and LUT enhancers predict theirs from a
small copy of the photo (Zeng et al., TPAMI 2020; Guo et al., CVPR 2020). So
the model corrects each photo by what that photo needs. Luma and chroma (a
pixel's largest channel minus its smallest) are read besides the channels
because saturation and colour casts show in how the channels move together,
which levels per channel cannot show.

The output is ``curve_c((M s(x) + b)_c)`` per pixel, where ``s`` first
stretches the levels from the darkest channel's 0.1 % level to the brightest
channel's 99.9 % level onto [0, 1] (an auto-levels that keeps colours): no
tiling error (every pixel is mapped alone), no resampling, 12 + 3·(K + 2) + 6
numbers per photo. With the last layer at
zero the model is that auto-levels stretch, so training starts from a strong
generic correction and learns when and how far to depart from it (a good
photo is mapped back onto itself).

With ``channel_stretch``, the model also predicts, per channel, how far to
move that stretch towards the channel's own darkest and brightest pixel, which
is what PIL's autocontrast does for every photo: the degradations that are gains
or offsets per channel (white balance, exposure, contrast, haze) are nearly
undone by it, and a photo dominated by one colour (a blue sky) is left with
the shared stretch. At zero it starts 95 % of the way to the per-channel
stretch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deblurcli.models.layers import GlobalContextGenerator, Padding
from deblurcli.ops.color import rgb_to_gray


class CurveEnhancer(GlobalContextGenerator):
    """Colour matrix and K-segment tone curves per photo: (N, 3, H, W) in [-1, 1] -> same.

    Args:
        sample_size: the levels are read from a copy strided to at most this many
            pixels on the longer side (every kept pixel is a real one).
        knots: K, segments of each channel's piecewise-linear curve.
        hidden: width of the predictor's two hidden layers.
        channel_stretch: also predict, per channel, the share of a per-channel
            stretch mixed into the shared one (three more numbers per photo).

    Example:
        >>> model = CurveEnhancer().eval()
        >>> model(torch.zeros(1, 3, 37, 91)).shape
        torch.Size([1, 3, 37, 91])
    """

    QUANTILES = 33  # per level map: 0 %, 3.125 %, ..., 100 %
    LEVEL_MAPS = 5  # red, green, blue, luma, chroma
    EXTREMES = (0.001, 0.999)  # the levels stretched to 0 and 1: robust to a few hot pixels
    CHANNEL_SHARE_AT_ZERO = 0.95  # share of the per-channel stretch when its number is 0

    def __init__(
        self,
        sample_size: int = 512,
        knots: int = 16,
        hidden: int = 128,
        channel_stretch: bool = False,
    ) -> None:
        super().__init__()
        self.sample_size = sample_size
        self.knots = knots
        self.channel_stretch = channel_stretch
        self.padding = Padding(1)
        self.head = nn.Sequential(
            nn.Conv2d(self.LEVEL_MAPS * self.QUANTILES, hidden, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, self.parameter_count, 1),  # last: zero it for auto levels
        )

    @property
    def parameter_count(self) -> int:
        """Numbers predicted per photo: 9 matrix + 3 bias + 3 × (start, rise, K segment
        logits), then 3 per-channel stretch shares with ``channel_stretch``."""
        return self.curve_end + (3 if self.channel_stretch else 0)

    @property
    def curve_end(self) -> int:
        """Index just past the curves' numbers in the predicted parameters."""
        return 12 + 3 * (self.knots + 2)

    def global_features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) whole photos in [-1, 1] -> (N, P + 6, 1, 1) colour parameters:
        the predicted P, then the darkest and brightest level in [0, 1], three times."""
        step = max(1, math.ceil(max(image.shape[-2:]) / self.sample_size))
        rgb = image[..., ::step, ::step].float()
        chroma = rgb.amax(dim=1, keepdim=True) - rgb.amin(dim=1, keepdim=True) - 1  # in [-1, 1]
        maps = torch.cat([rgb, rgb_to_gray(rgb), chroma], dim=1)  # (N, 5, h, w)
        values = maps.flatten(2).sort(dim=-1).values
        last = values.shape[-1] - 1

        def at(fractions: torch.Tensor) -> torch.Tensor:
            return values[..., (fractions * last).round().long()]

        levels = at(torch.linspace(0, 1, self.QUANTILES))  # (N, 5, Q)
        # One stretch for all three channels: per-channel stretches recolour photos
        # dominated by one colour (a blue sky turns deep blue); casts are the matrix's job.
        ends = (at(torch.tensor(self.EXTREMES))[:, :3] + 1) / 2  # (N, 3, 2)
        darkest = ends[..., :1].amin(dim=1, keepdim=True).expand(-1, 3, -1)
        brightest = ends[..., 1:].amax(dim=1, keepdim=True).expand(-1, 3, -1)
        extremes = torch.cat([darkest, brightest], dim=-1)  # (N, 3, 2)
        predicted = self.head(levels.flatten(1)[..., None, None].to(image.dtype)).float()
        if self.channel_stretch:  # towards each channel's own darkest and brightest pixel
            own = (at(torch.tensor([0.0, 1.0]))[:, :3] + 1) / 2  # (N, 3, 2)
            logit = math.log(self.CHANNEL_SHARE_AT_ZERO / (1 - self.CHANNEL_SHARE_AT_ZERO))
            share = torch.sigmoid(predicted[:, self.curve_end :, 0] + logit)  # (N, 3, 1)
            extremes = extremes + share * (own - extremes)
        return torch.cat([predicted, extremes.transpose(1, 2).flatten(1)[..., None, None]], 1)

    def forward_with_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Apply (N, P + 6, 1, 1) parameters to (N, 3, H, W) photos or tiles in [-1, 1]."""
        params = context.flatten(1).float()
        n = params.shape[0]
        darkest = params[:, -6:-3].view(n, 3, 1, 1)
        span = (params[:, -3:].view(n, 3, 1, 1) - darkest).clamp(min=0.05)
        matrix = torch.eye(3, device=x.device) + params[:, :9].view(n, 3, 3)
        bias = params[:, 9:12].view(n, 3, 1, 1)
        rgb = ((x.float() + 1) / 2 - darkest) / span
        mixed = torch.einsum("nij,njhw->nihw", matrix, rgb) + bias
        knots = self.curve_knots(params[:, 12 : self.curve_end].view(n, 3, self.knots + 2))
        return (apply_curves(mixed, knots) * 2 - 1).to(x.dtype)

    def curve_knots(self, raw: torch.Tensor) -> torch.Tensor:
        """(N, 3, K + 2) raw numbers -> (N, 3, K + 1) monotone knot values.

        The first number is the curve's value at 0 (0 at zero), the second the
        log of its total rise (a rise of 1 at zero); the K segment logits share
        the rise by a softmax. So every curve is increasing, and all-zero
        numbers give the identity.
        """
        low = raw[..., :1]
        rise = torch.exp(raw[..., 1:2]) * torch.cumsum(torch.softmax(raw[..., 2:], dim=-1), dim=-1)
        return torch.cat([low, low + rise], dim=-1)


def apply_curves(image: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Map (N, 3, H, W) values through per-channel piecewise-linear curves.

    Args:
        image: values; clamped to [0, 1] first.
        knots: (N, 3, K + 1) curve values at 0, 1/K, ..., 1.

    Returns:
        (N, 3, H, W) in [0, 1].
    """
    segments = knots.shape[-1] - 1
    position = image.clamp(0, 1) * segments
    index = position.floor().clamp(max=segments - 1)
    fraction = position - index
    flat_index = index.long().flatten(2)
    low = torch.gather(knots, 2, flat_index).view_as(image)
    high = torch.gather(knots, 2, flat_index + 1).view_as(image)
    return (low + (high - low) * fraction).clamp(0, 1)
