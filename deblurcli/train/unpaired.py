"""Deep Photo Enhancer's unpaired 2-way GAN (``--preset dpe-2way``).

Two generators learn opposite directions from photos that are not pairs:
``G_X`` turns source photos X into the target style Y, ``G_Y`` goes back.
Each has a critic on its output domain (``D_Y`` judges ``G_X(x)`` against
real y, ``D_X`` judges ``G_Y(y)`` against real x), trained with WGAN-GP,
adaptive when the recipe gives a band. The generators minimise::

    adversarial·(−D_Y(G_X(x)) − D_X(G_Y(y)))
    + identity·(‖G_X(x) − x‖² + ‖G_Y(y) − y‖²)        (keep the content)
    + cycle·(‖G'_Y(G_X(x)) − x‖² + ‖G'_X(G_Y(y)) − y‖²) (come back)

Individual batch normalisation: a generated image has other statistics
than a real one, so ``G'_X`` and ``G'_Y``, which run on generated inputs in
the cycle, share every convolution with ``G_X`` and ``G_Y`` but keep batch
norms of their own. ``G_X``'s EMA is the exported enhancer. Runs in one
process (no DDP).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from deblurcli.errors import UsageError
from deblurcli.models import build_model
from deblurcli.ops.pairs import derived_seed
from deblurcli.train.checkpoint import Stateful
from deblurcli.train.data import (
    Source,
    check_sizes,
    load_photo,
    pixels_to_model_input,
    random_window,
    validation_set,
)
from deblurcli.train.gan import Adversary
from deblurcli.train.loop import Trainer, start_as_identity
from deblurcli.train.presets import TrainConfig


def share_convolutions(source: nn.Module, twin: nn.Module) -> None:
    """Make ``twin`` (a copy of ``source``) use ``source``'s convolution parameters,
    keeping its own batch norms (individual batch normalisation)."""
    for mine, theirs in zip(source.modules(), twin.modules(), strict=True):
        if isinstance(mine, nn.Conv2d):
            theirs.weight = mine.weight
            theirs.bias = mine.bias


def _unique_parameters(*modules: nn.Module) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            seen.setdefault(id(parameter), parameter)
    return list(seen.values())


class UnpairedCrops(Dataset):
    """(x, y): a random crop of source photo ``index`` and of a target photo the seed picks;
    (3, crop, crop) in [-1, 1], flipped at random."""

    def __init__(
        self, source: list[Path], target: list[Path], crop: int, seed: int, max_side: int | None
    ) -> None:
        self.source, self.target = source, target
        self.crop, self.seed, self.max_side = crop, seed, max_side
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def _crop(self, path: Path, g: torch.Generator) -> torch.Tensor:
        photo = load_photo(path, self.max_side)
        image = pixels_to_model_input(photo[random_window(photo.shape, self.crop, g)])
        if torch.randint(0, 2, (1,), generator=g):
            image = image.flip(-1)
        return image.contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, index))
        partner = int(torch.randint(0, len(self.target), (1,), generator=g))
        return self._crop(self.source[index], g), self._crop(self.target[partner], g)


class UnpairedTrainer(Trainer):
    """The 2-way GAN run: ``train`` holds the source photos, ``target`` the target style.

    ``val`` (optional) are pairs or good photos, scored as in :class:`Trainer`.
    """

    OTHER_LOSSES = frozenset({"identity", "cycle"})

    def __init__(
        self,
        config: TrainConfig,
        train: Source,
        val: Source | None,
        run_dir: Path,
        device: torch.device,
        resume: bool = False,
        resume_steps: int | None = None,
        *,
        target: Source,
    ) -> None:
        if train.pairs or target.pairs:
            raise UsageError("--source and --target take folders of photos, not pair folders")
        if config.gan_loss is None:
            raise UsageError("the 2-way GAN needs --gan-loss (wgan-gp in the dpe-2way preset)")
        self.target_source = target
        super().__init__(config, train, val, run_dir, device, resume, resume_steps)
        if self.world > 1:
            raise UsageError("the 2-way GAN runs in one process: start it without torchrun")

    def _make_data(self, train: Source, val: Source | None) -> None:
        config = self.config
        for photos in (train.sharp_only, self.target_source.sharp_only):
            check_sizes(photos, config.crop, config.max_side)
        self.train_set = UnpairedCrops(
            train.sharp_only,
            self.target_source.sharp_only,
            config.crop,
            config.seed,
            config.max_side,
        )
        self.val_set = validation_set(val, config, self.task)

    def _make_networks(self) -> None:
        config, device = self.config, self.device

        def generator() -> nn.Module:
            return start_as_identity(build_model(config.model, config.model_config)).to(device)

        def critic() -> Adversary:
            return Adversary.from_config(config).to(device)

        self.model = generator()  # G_X: source -> target, the enhancer
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.generator = self.model
        self.backward_model = generator()  # G_Y: target -> source
        self.twins = nn.ModuleList([copy.deepcopy(self.model), copy.deepcopy(self.backward_model)])
        share_convolutions(self.model, self.twins[0])
        share_convolutions(self.backward_model, self.twins[1])
        self.adversary = nn.ModuleDict({"target": critic(), "source": critic()})
        self._make_optimisers(_unique_parameters(self.model, self.backward_model, *self.twins))

    def _stateful_parts(self) -> dict[str, Stateful]:
        return {
            **super()._stateful_parts(),
            "backward_model": self.backward_model,
            "twins": self.twins,
        }

    def _after_load(self) -> None:
        share_convolutions(self.model, self.twins[0])
        share_convolutions(self.backward_model, self.twins[1])

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        config = self.config
        to_target, to_source = self.adversary["target"], self.adversary["source"]
        for module in (self.model, self.backward_model, self.twins):
            module.train()
        logged: dict[str, float] = {}
        for _ in range(config.critic_steps):
            with torch.no_grad():
                fake_y, fake_x = self.model(x), self.backward_model(y)
            critic_loss = to_target.critic_loss(y, fake_y) + to_source.critic_loss(x, fake_x)
            self.opt_d.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.opt_d.step()
        self.sched_d.step()
        logged["critic"] = critic_loss.item()
        if to_target.adaptive is not None:
            logged["gp_weight"] = to_target.gp_weight

        fake_y, fake_x = self.model(x), self.backward_model(y)
        self.adversary.requires_grad_(False)
        adversarial = to_target.generator_loss(y, fake_y) + to_source.generator_loss(x, fake_x)
        self.adversary.requires_grad_(True)
        identity = (fake_y - x).pow(2).mean() + (fake_x - y).pow(2).mean()
        cycle = (self.twins[1](fake_y) - x).pow(2).mean() + (self.twins[0](fake_x) - y).pow(
            2
        ).mean()
        total = (
            config.adversarial_weight * adversarial
            + config.weights.get("identity", 0.0) * identity
            + config.weights.get("cycle", 0.0) * cycle
        )
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.sched_g.step()
        self._update_ema()
        logged.update(
            adversarial=adversarial.item(),
            identity=identity.item(),
            cycle=cycle.item(),
            total=total.item(),
        )
        return logged
