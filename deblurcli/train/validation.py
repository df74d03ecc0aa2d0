"""Scores of a model on a validation set: mean PSNR, SSIM and L1 over its pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deblurcli import metrics


@torch.no_grad()
def validation_scores(
    model: torch.nn.Module, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """Mean ``psnr``, ``ssim`` (on [0, 1]) and ``l1`` (on [-1, 1]) of ``model`` over ``pairs``
    of (input, target), each (3, H, W) in [-1, 1]; outputs are clamped to [-1, 1]."""
    psnr, ssim, l1 = 0.0, 0.0, 0.0
    for index in range(len(pairs)):
        source, target = (t[None].to(device) for t in pairs[index])
        restored = model(source).clamp(-1, 1)
        pred, truth = (restored + 1) / 2, (target + 1) / 2
        psnr += float(metrics.psnr(pred, truth)[0])
        ssim += float(metrics.ssim(pred, truth)[0])
        l1 += float((restored - target).abs().mean())
    count = len(pairs)
    return {"psnr": psnr / count, "ssim": ssim / count, "l1": l1 / count}
