"""Critics and adversarial losses: PatchGAN, DeblurGAN-v2's double-scale pair,
WGAN-GP, RaGAN-LS, LSGAN and the vanilla GAN.

Images are (B, 3, H, W) in [-1, 1]. An :class:`Adversary` owns the critic(s)
and says how to score them and the generator.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deblurcli.models.deblurgan_v1 import NLayerDiscriminator

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


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (‖∇ critic(x̂)‖₂ - 1)² at random points between real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(between)
    (gradients,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    return ((gradients.flatten(1).norm(dim=1) - 1) ** 2).mean()


class Adversary(nn.Module):
    """Critics plus one adversarial loss.

    Args:
        loss: ``wgan-gp``, ``ragan-ls``, ``lsgan`` or ``vanilla``.
        critic: ``patch`` or ``double``.
        gp_weight: λ of the gradient penalty (WGAN-GP only).
    """

    def __init__(self, loss: str, critic: str, gp_weight: float = 10.0) -> None:
        super().__init__()
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}: use {', '.join(GAN_LOSSES)}")
        self.loss = loss
        self.critics = build_critics(critic)
        self.gp_weight = gp_weight

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Loss to minimise for the critics (``fake`` is detached here)."""
        fake = fake.detach()
        losses = []
        for critic in self.critics:
            real_scores, fake_scores = critic(real), critic(fake)
            if self.loss == "wgan-gp":
                loss = fake_scores.mean() - real_scores.mean()
                loss = loss + self.gp_weight * gradient_penalty(critic, real, fake)
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
