"""Critics and adversarial losses: PatchGAN, DeblurGAN-v2's double-scale pair,
WGAN-GP, RaGAN-LS, LSGAN and the vanilla GAN.

Images are (B, 3, H, W) in [-1, 1]. An :class:`Adversary` owns the critic(s)
and says how to score them and the generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from deblurcli.models.deblurgan_v1 import NLayerDiscriminator

if TYPE_CHECKING:
    from deblurcli.train.presets import TrainConfig

GAN_LOSSES = ("wgan-gp", "ragan-ls", "lsgan", "vanilla")
CRITICS = ("patch", "double")


def build_critics(kind: str) -> nn.ModuleList:
    """``patch``: one 3-layer PatchGAN; ``double``: DeblurGAN-v2's 3-layer patch critic
    plus a 5-layer critic over the whole crop (their losses are averaged)."""
    if kind == "patch":
        return nn.ModuleList([NLayerDiscriminator(n_layers=3)])
    if kind == "double":
        return nn.ModuleList([NLayerDiscriminator(n_layers=3), NLayerDiscriminator(n_layers=5)])
    raise ValueError(f"unknown critic {kind!r}: use {', '.join(CRITICS)}")


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """WGAN-GP: (‖∇ critic(x̂)‖₂ - 1)² at random points between real and fake.

    Returns:
        The penalty (differentiable) and the mean gradient norm.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(between)
    (gradients,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    norms = gradients.flatten(1).norm(dim=1)
    return ((norms - 1) ** 2).mean(), float(norms.detach().mean())


class AdaptivePenalty:
    """Deep Photo Enhancer's adaptive WGAN (A-WGAN): λ follows the gradient norm.

    The critic's gradient norm should stay near 1. Over a moving window of
    ``window`` critic steps, when its average rises above ``band[1]`` the
    penalty is too weak and λ doubles; when it falls below ``band[0]`` λ
    halves. The window restarts after each change, so every decision sees
    only steps taken with the current λ.
    """

    def __init__(self, weight: float, band: tuple[float, float], window: int) -> None:
        if not 0 < band[0] < band[1] or window < 1:
            raise ValueError("the gradient-norm band needs 0 < LOW < HIGH, the window ≥ 1 step")
        self.weight, self.band, self.window = weight, band, window
        self.norms: list[float] = []

    def update(self, norm: float) -> float:
        """Record one step's mean gradient norm; returns λ for the next step."""
        self.norms.append(norm)
        if len(self.norms) >= self.window:
            average = sum(self.norms) / len(self.norms)
            if average > self.band[1]:
                self.weight *= 2.0
                self.norms.clear()
            elif average < self.band[0]:
                self.weight /= 2.0
                self.norms.clear()
            else:
                self.norms.pop(0)
        return self.weight


class Adversary(nn.Module):
    """Critics plus one adversarial loss.

    Args:
        loss: ``wgan-gp``, ``ragan-ls``, ``lsgan`` or ``vanilla``.
        critic: ``patch`` or ``double``.
        gp_weight: λ of the gradient penalty (WGAN-GP only); the starting λ when adaptive.
        gp_band: (low, high) gradient-norm band of the adaptive WGAN (see
            :class:`AdaptivePenalty`); None keeps λ fixed.
        gp_window: critic steps in the adaptive WGAN's moving average.
    """

    def __init__(
        self,
        loss: str,
        critic: str,
        gp_weight: float = 10.0,
        gp_band: tuple[float, float] | None = None,
        gp_window: int = 50,
    ) -> None:
        super().__init__()
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}: use {', '.join(GAN_LOSSES)}")
        self.loss = loss
        self.critics = build_critics(critic)
        self.gp_weight = gp_weight
        self.adaptive = AdaptivePenalty(gp_weight, gp_band, gp_window) if gp_band else None

    @staticmethod
    def from_config(config: TrainConfig) -> Adversary:
        """The adversary a :class:`~deblurcli.train.presets.TrainConfig` describes."""
        return Adversary(
            config.gan_loss, config.critic, config.gp_weight, config.gp_band, config.gp_window
        )

    def get_extra_state(self) -> dict:
        """λ and the adaptive window travel with the critics' checkpoint."""
        return {"gp_weight": self.gp_weight, "norms": self.adaptive.norms if self.adaptive else []}

    def set_extra_state(self, state: dict) -> None:
        self.gp_weight = float(state["gp_weight"])
        if self.adaptive is not None:
            self.adaptive.weight, self.adaptive.norms = self.gp_weight, list(state["norms"])

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Loss to minimise for the critics (``fake`` is detached here)."""
        fake = fake.detach()
        losses, norms = [], []
        for critic in self.critics:
            real_scores, fake_scores = critic(real), critic(fake)
            if self.loss == "wgan-gp":
                penalty, norm = gradient_penalty(critic, real, fake)
                norms.append(norm)
                loss = fake_scores.mean() - real_scores.mean() + self.gp_weight * penalty
            elif self.loss == "ragan-ls":
                loss = (
                    ((real_scores - fake_scores.mean() - 1) ** 2).mean()
                    + ((fake_scores - real_scores.mean() + 1) ** 2).mean()
                ) / 2
            elif self.loss == "lsgan":
                loss = (((real_scores - 1) ** 2).mean() + (fake_scores**2).mean()) / 2
            else:
                loss = (
                    F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                    + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
                ) / 2
            losses.append(loss)
        if self.adaptive is not None and norms:
            self.gp_weight = self.adaptive.update(sum(norms) / len(norms))
        return torch.stack(losses).mean()

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Adversarial loss to minimise for the generator."""
        losses = []
        for critic in self.critics:
            fake_scores = critic(fake)
            if self.loss == "wgan-gp":
                loss = -fake_scores.mean()
            elif self.loss == "ragan-ls":
                real_scores = critic(real).detach()
                loss = (
                    ((fake_scores - real_scores.mean() - 1) ** 2).mean()
                    + ((real_scores - fake_scores.mean() + 1) ** 2).mean()
                ) / 2
            elif self.loss == "lsgan":
                loss = ((fake_scores - 1) ** 2).mean()
            else:
                loss = F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
            losses.append(loss)
        return torch.stack(losses).mean()
