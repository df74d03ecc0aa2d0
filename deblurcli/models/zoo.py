"""Registered architectures (one small entry function per variant)."""

from __future__ import annotations

from deblurcli.models import blind, curves, deblurgan_v1, deblurgan_v2, dpe
from deblurcli.models._registry import register_model
from deblurcli.models.deblurgan_v2 import (
    FPNGenerator,
    InceptionResNetV2Encoder,
    MobileNetV2Encoder,
    Norm,
)
from deblurcli.models.layers import Padding

_OFFICIAL_V2_PADDING = Padding(32, mode="zeros", always_extra=True)


@register_model(
    "resnet",
    task="deblur",
    memory_per_pixel=900,
    description="DeblurGAN v1 ResNet generator (9 blocks, 11.4 M parameters)",
    official_filter=deblurgan_v1.checkpoint_filter,
    official_padding=Padding(4),
)
def resnet() -> deblurgan_v1.ResnetGenerator:
    """DeblurGAN v1: ngf 64, 9 residual blocks, instance norm, global residual."""
    return deblurgan_v1.ResnetGenerator(ngf=64, n_blocks=9)


# The class itself is the entry function; its options are the settings stored in
# deblurcli-deconv, which also holds the refiner's weights.
register_model(
    "deconv",
    task="deblur",
    memory_per_pixel=400,
    description="Blind deconvolution: one shake kernel estimated per photo, inverted with a "
    "sparse gradient prior, then cleaned up by a small learned refiner (0.79 M parameters)",
    default_weights="deblurcli-deconv",
)(blind.BlindDeconvolution)


@register_model(
    "mobilenet",
    task="deblur",
    memory_per_pixel=540,
    description="DeblurGAN-v2 FPN over MobileNetV2 (2.1 M parameters, fast)",
    official_filter=deblurgan_v2.checkpoint_filter,
    official_padding=_OFFICIAL_V2_PADDING,
    default_weights="deblurcli-mobilenet",
)
def mobilenet(norm: Norm = "instance") -> FPNGenerator:
    """DeblurGAN-v2 FPNMobileNet: FPN width 128, heads 64."""
    return FPNGenerator(MobileNetV2Encoder(), fpn_width=128, head_width=64, norm=norm)


@register_model(
    "mobilenet-dsc",
    task="deblur",
    memory_per_pixel=650,
    description="DeblurGAN-v2 MobileNet-DSC: depthwise-separable FPN and heads (1.2 M parameters)",
    default_weights="deblurcli-mobilenet-dsc",
)
def mobilenet_dsc(norm: Norm = "instance") -> FPNGenerator:
    """The paper's MobileNet-DSC: MobileNetV2 FPN with depthwise-separable convolutions."""
    return FPNGenerator(
        MobileNetV2Encoder(), fpn_width=128, head_width=64, norm=norm, separable=True
    )


@register_model(
    "inception",
    task="deblur",
    memory_per_pixel=1200,
    description="DeblurGAN-v2 FPN over Inception-ResNet-v2 (36 M parameters, best quality)",
    official_filter=deblurgan_v2.checkpoint_filter,
    official_padding=Padding(32, mode="zeros", always_extra=True, minimum=128),
    default_weights="fpn_inception",
)
def inception(norm: Norm = "instance") -> FPNGenerator:
    """DeblurGAN-v2 FPNInception: FPN width 256, heads 128; needs sides of 128 px or more."""
    return FPNGenerator(
        InceptionResNetV2Encoder(),
        fpn_width=256,
        head_width=128,
        norm=norm,
        pad_laterals=True,
        min_size=128,
    )


@register_model(
    "dpe",
    task="enhance",
    memory_per_pixel=700,
    bf16_safe=True,  # shipped weights: 61 dB from fp32, at most 1 level (benchmarks/precision.py)
    description="Deep Photo Enhancer global U-Net (exposure, contrast, colour; 3.0 M parameters)",
    default_weights="deblurcli-dpe",
)
def dpe_unet(global_size: int = 512) -> dpe.DPEGenerator:
    """DPE's global U-Net; the global path sees a ``global_size`` square copy."""
    return dpe.DPEGenerator(global_size=global_size)


@register_model(
    "curves",
    task="enhance",
    memory_per_pixel=60,
    description="Image-adaptive colour matrix and tone curves read from each photo's levels "
    "(38 k parameters, exact at any size)",
    default_weights="deblurcli-curves",
)
def curve_enhancer(
    sample_size: int = 512, knots: int = 16, hidden: int = 128, channel_stretch: bool = False
) -> curves.CurveEnhancer:
    """Auto levels, then a colour matrix and 16-segment curves per channel."""
    return curves.CurveEnhancer(
        sample_size=sample_size, knots=knots, hidden=hidden, channel_stretch=channel_stretch
    )
