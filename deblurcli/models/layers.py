"""Blocks shared by the generators: padding policy, pad-and-crop, norm statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

Statistics = Literal["per_image", "running"]


@dataclass(frozen=True)
class Padding:
    """How a model pads its input to a size its strides accept.

    Padding goes at the bottom and right only, so that tiles starting at
    multiples of ``multiple`` keep the stride grid of the whole image.

    Attributes:
        multiple: height and width are padded up to a multiple of this.
        mode: ``reflect`` mirrors the border; ``zeros`` pads with 0 in the
            model's value space (mid-grey for inputs in [-1, 1]).
        always_extra: add a full block even when the size is already a
            multiple (DeblurGAN-v2's ``predict.py`` pads ``h`` to ``(h//32+1)*32``).
        minimum: sides are padded to at least this many pixels (networks with
            unpadded convolutions need a minimum input size).
    """

    multiple: int
    mode: Literal["reflect", "zeros"] = "reflect"
    always_extra: bool = False
    minimum: int = 0

    def amount(self, size: int) -> int:
        """Pixels to add after ``size`` pixels."""
        if self.always_extra:
            target = (size // self.multiple + 1) * self.multiple
        else:
            target = size + (-size % self.multiple)
        return max(target, self.minimum) - size


def pad_bottom_right(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    """Pad ``x`` of shape (N, C, H, W) at the bottom and right per ``padding``.

    Reflection needs the pad to be smaller than the side; tiny images fall back
    to replicating the border.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = padding.amount(h), padding.amount(w)
    if pad_h == 0 and pad_w == 0:
        return x
    if padding.mode == "zeros":
        return F.pad(x, (0, pad_w, 0, pad_h))
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def output_layer(layer: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Run the layer that maps features to output values at the layer's own precision,
    even under autocast: (N, C, H, W) -> the layer's output.

    Under bf16 autocast a convolution keeps 8 significant bits, which shows in
    the output as grey levels; the last layer is cheap, so it stays exact.
    """
    dtype = next(layer.parameters()).dtype
    with torch.autocast(features.device.type, enabled=False):
        return layer(features.to(dtype))


class PaddedGenerator(nn.Module):
    """Base for generators that accept any H×W: pad inside, crop back.

    Subclasses implement :meth:`forward_padded` on inputs whose sides are
    multiples of ``padding.multiple``. ``statistics`` says how norm layers
    behave (see :func:`set_statistics`). ``local`` is False for models whose
    every output pixel depends on the whole input (such as FFT deconvolution):
    their tiles differ from a whole-image run, so they run whole when they fit.
    """

    padding: Padding
    statistics: Statistics = "running"
    local: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` of shape (N, 3, H, W) in [-1, 1]; returns the same shape."""
        h, w = x.shape[-2:]
        return self.forward_padded(pad_bottom_right(x, self.padding))[..., :h, :w]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GlobalContextGenerator(PaddedGenerator):
    """Base for generators whose output also depends on a vector computed from the
    whole image (Deep Photo Enhancer's global features).

    Tiled inference computes :meth:`global_features` once from the whole image
    and passes it to :meth:`forward_with_context` for every tile, so tiles
    agree with the untiled result.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance whole images: (N, 3, H, W) in [-1, 1] -> the same shape."""
        return self.forward_with_context(x, self.global_features(x))

    def global_features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) whole images -> (N, C, 1, 1) context vectors."""
        raise NotImplementedError

    def forward_with_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) images or tiles, any size, with their images' context -> same shape."""
        raise NotImplementedError


def set_statistics(model: PaddedGenerator, statistics: Statistics) -> None:
    """Choose whether norm layers use running buffers or each image's own statistics.

    ``per_image`` reproduces the official DeblurGAN code, which runs inference
    in train mode: every BatchNorm and InstanceNorm normalises with the
    statistics of the image at hand. The running buffers are removed, so the
    model stays stateless in ``eval()`` and never updates them. ``running``
    (our own trained weights) normalises with the stored buffers, which makes
    the model translation-equivariant, so tiles agree with the whole image.
    """
    if statistics == "per_image":
        for module in model.modules():
            if isinstance(module, (_BatchNorm, _InstanceNorm)):
                module.track_running_stats = False
                module.running_mean = None
                module.running_var = None
                module.num_batches_tracked = None
    elif statistics != "running":
        raise ValueError(f"unknown statistics policy {statistics!r}")
    model.statistics = statistics


def _last_convolution(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d] | None:
    """(parent, name, conv) of the convolution that produces ``module``'s output, if
    ``module`` is a convolution or a Sequential ending in one."""
    while isinstance(module, nn.Sequential) and len(module) > 0:
        name = str(len(module) - 1)
        child = module[-1]
        if isinstance(child, nn.Conv2d):
            return module, name, child
        module = child
    return None


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each running-statistics BatchNorm that follows a convolution into it.

    Inside an ``nn.Sequential``, ``conv → BatchNorm`` computes
    ``γ·(W∗x + b − μ)/σ + β``, which is one convolution with weights
    ``γW/σ`` and bias ``γ(b − μ)/σ + β``: the same output (to float rounding)
    with one full pass over the activations fewer. Depthwise-separable pairs
    (a Sequential ending in a convolution) fold into their last convolution.
    The model must be in eval mode with running statistics; norm layers that
    use per-image statistics are left alone. Returns how many were folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(model.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        for index in range(len(parent) - 1):
            norm = parent[index + 1]
            if not isinstance(norm, nn.BatchNorm2d) or norm.running_mean is None:
                continue
            if norm.training:
                raise ValueError("fold_batch_norms needs a model in eval mode")
            producer = (
                (parent, str(index), parent[index])
                if isinstance(parent[index], nn.Conv2d)
                else _last_convolution(parent[index])
            )
            if producer is None:
                continue
            owner, name, conv = producer
            setattr(owner, name, fuse_conv_bn_eval(conv, norm))
            parent[index + 1] = nn.Identity()
            folded += 1
    return folded
