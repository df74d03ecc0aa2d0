"""Training recipes: the papers' settings as presets, every value overridable.

``deblurgan``: DeblurGAN (Kupyn et al., CVPR 2018): WGAN-GP (λ = 10) with 5
critic steps per generator step, perceptual loss ×100, Adam 1e-4 with betas
(0.5, 0.999), constant learning rate for the first half, then linear decay.

``deblurgan-v2``: DeblurGAN-v2 (Kupyn et al., ICCV 2019): RaGAN-LS with the
double-scale critic, 0.5·L1 + 0.006·perceptual + 0.01·adversarial, backbone
frozen for the first 3 % of steps, linear decay.

``fast``: L1 + FFT-L1 + SSIM, no GAN, no VGG: trains on a CPU. Good photos
are blurred on the fly over the range users meet (``FAST_SYNTH``): camera
shake of about 5 to 40 px extent, some linear and defocus blur, sensor noise
up to about 2.5 grey levels, with crops drawn at 0.5× to 1× of the photo.

``dpe``: Deep Photo Enhancer (Chen et al., CVPR 2018), supervised: MSE
only, as the paper's 23.8 dB setting on MIT-Adobe FiveK.

``curves``: the image-adaptive colour matrix and tone curves (``curves``
model), L1, on whole good photos squashed to 128×128 by nearest neighbour (a
global colour mapping does not depend on geometry, and a crop's levels are
not its photo's), degraded over ranges wider than ``ops.degrade``'s defaults, a fifth
of them left untouched so that good photos stay good.

``dpe-gan``: DPE's 1-way GAN: MSE plus the adaptive WGAN-GP (λ doubled or
halved when the moving average of the critic's gradient norm leaves its
band).

``dpe-2way``: DPE's unpaired 2-way GAN (``--source``/``--target``): two
generators with individual batch norm, adaptive WGAN-GP critics, identity
and cycle-consistency losses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved as ``config.json`` in the run folder)."""

    model: str = "mobilenet"
    model_config: dict = field(default_factory=lambda: {"norm": "batch"})
    preset: str = "fast"
    steps: int = 1000
    batch_size: int = 8
    crop: int = 256
    val_crop: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    decay_start: float = 0.5  # fraction of the steps after which the rate decays linearly to 0
    weights: dict = field(default_factory=lambda: {"l1": 1.0, "fft": 0.1, "ssim": 0.2})
    gan_loss: str | None = None  # wgan-gp, ragan-ls, lsgan, vanilla
    critic: str = "patch"
    critic_steps: int = 1
    gp_weight: float = 10.0
    gp_band: tuple[float, float] | None = None  # adaptive WGAN-GP: gradient-norm band
    gp_window: int = 50  # adaptive WGAN-GP: critic steps in the moving average
    adversarial_weight: float = 0.0
    freeze_backbone_steps: int = 0
    ema_decay: float = 0.999
    max_side: int | None = None  # sharp-only photos shrunk to this longer side on loading
    scales: tuple[float, float] = (1.0, 1.0)  # crops from the photo scaled by a factor in here
    synth: dict = field(default_factory=dict)  # on-the-fly blur: synth-blur options (train.data)
    degrade: dict = field(default_factory=dict)  # enhancers: DegradeConfig ranges to draw from
    identity_share: float = 0.0  # enhancers: share of good photos left as they are
    squash: bool = False  # samples are whole photos resized to crop×crop, not crops
    val_max_side: int | None = None  # validation photos shrunk to this longer side
    precision: str = "auto"  # autocast dtype: auto, bf16, fp16 (CUDA) or fp32
    init: str | None = None  # warm start: a weights file of the same architecture
    val_every: int = 200
    log_every: int = 10
    seed: int = 0
    workers: int = 2

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> TrainConfig:
        data = json.loads(text)
        data["betas"] = tuple(data["betas"])
        if "scales" in data:
            data["scales"] = tuple(data["scales"])
        if data.get("gp_band") is not None:
            data["gp_band"] = tuple(data["gp_band"])
        known = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in data.items() if k in known})


# DPE's GAN recipes: the adaptive WGAN-GP with a PatchGAN critic.
_DPE_ADVERSARIAL = {
    "model": "dpe",
    "model_config": {},
    "gan_loss": "wgan-gp",
    "critic": "patch",
    "critic_steps": 1,
    "gp_weight": 10.0,
    "gp_band": (0.95, 1.05),
    "gp_window": 50,
    "lr": 1e-4,
    "betas": (0.5, 0.999),
}

# On-the-fly blur of the fast recipe (keys of train.data.synth_settings). Shake path
# lengths 15-100 give kernels of about 5-43 px extent; 3 in 5 pairs are shake.
FAST_SYNTH = {
    "types": ["shake", "shake", "shake", "linear", "defocus"],
    "max_len": [15.0, 100.0],
    "exposure": [0.5, 1.0],
    "length": [5.0, 35.0],
    "radius": [1.0, 5.0],
    "shot_noise": [1e-5, 3e-4],
    "read_noise": [2e-4, 3e-3],
}

# Degradations of the curves recipe: photos made darker, flatter, duller, hazier and
# cast, over wider ranges than ops.degrade's defaults, and barely ever brighter or
# punchier: a photo with full levels is then a good one, not an over-enhanced one.
CURVES_DEGRADE = {
    "exposure_ev": [-2.0, 0.3],
    "temperature": [-0.5, 0.5],
    "tint": [-0.2, 0.2],
    "contrast": [0.5, 1.05],
    "saturation": [0.4, 1.05],
    "haze": [0.0, 0.35],
}

PRESETS: dict[str, dict] = {
    "fast": {
        "weights": {"l1": 1.0, "fft": 0.1, "ssim": 0.2},
        "gan_loss": None,
        "betas": (0.9, 0.999),
        "lr": 2e-4,
        "synth": FAST_SYNTH,
        "scales": (0.5, 1.0),
    },
    "dpe": {
        "model": "dpe",
        "model_config": {},
        "weights": {"l2": 1.0},
        "gan_loss": None,
        "lr": 5e-4,
        "betas": (0.9, 0.999),
    },
    "curves": {
        "model": "curves",
        "model_config": {},
        "weights": {"l1": 1.0},
        "gan_loss": None,
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "batch_size": 16,
        "crop": 128,
        "max_side": 512,
        "degrade": CURVES_DEGRADE,
        "identity_share": 0.2,
        "squash": True,
    },
    "dpe-gan": _DPE_ADVERSARIAL | {"weights": {"l2": 1.0}, "adversarial_weight": 1e-3},
    "dpe-2way": _DPE_ADVERSARIAL
    | {"weights": {"identity": 10.0, "cycle": 10.0}, "adversarial_weight": 1.0},
    "deblurgan": {
        "weights": {"perceptual": 100.0},
        "gan_loss": "wgan-gp",
        "critic": "patch",
        "critic_steps": 5,
        "gp_weight": 10.0,
        "adversarial_weight": 1.0,
        "lr": 1e-4,
        "betas": (0.5, 0.999),
        "decay_start": 0.5,
    },
    "deblurgan-v2": {
        "weights": {"l1": 0.5, "perceptual": 0.006},
        "gan_loss": "ragan-ls",
        "critic": "double",
        "critic_steps": 1,
        "adversarial_weight": 0.01,
        "lr": 1e-4,
        "betas": (0.9, 0.999),
        "decay_start": 0.0,
        "freeze_backbone_steps": -1,  # -1: 3 % of the steps
    },
}


def resolve(preset: str, **overrides: object) -> TrainConfig:
    """The preset's config with ``overrides`` (``None`` values are ignored) applied.

    Raises:
        ValueError: unknown preset or option.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
    config = replace(TrainConfig(preset=preset), **PRESETS[preset])
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if config.freeze_backbone_steps < 0:
        config = replace(config, freeze_backbone_steps=max(1, config.steps * 3 // 100))
    return config
