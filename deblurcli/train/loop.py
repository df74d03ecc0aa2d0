"""The training loop: steps, critics, EMA, validation, checkpoints, exact resume, DDP.

A run folder holds ``config.json`` (the resolved recipe), ``history.jsonl``
(losses and validation scores), ``last.pt`` (everything needed to resume:
weights, EMA, optimisers, schedulers, RNG, step) and ``best.safetensors`` /
``last.safetensors`` (EMA generator weights that ``deblur deblur --weights``
loads). Under ``torchrun`` the generator and critics are wrapped in
DistributedDataParallel, each rank reads its own shard of every epoch, and
rank 0 alone validates, logs and writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from deblurcli.device import resolve_training_precision
from deblurcli.errors import UsageError, WeightsError
from deblurcli.models import build_model, get_spec, list_models
from deblurcli.models._builder import load_model, save_weights
from deblurcli.ops.pairs import derived_seed
from deblurcli.train.checkpoint import CHECKPOINT, Stateful, load_run_state, save_run_state
from deblurcli.train.data import (
    Source,
    TrainingPairs,
    check_sizes,
    degrade_config,
    synth_settings,
    validation_set,
)
from deblurcli.train.gan import Adversary
from deblurcli.train.losses import CONTENT_LOSSES, PerceptualLoss, VGG19Conv33
from deblurcli.train.presets import TrainConfig
from deblurcli.train.validation import validation_scores


@dataclass(frozen=True)
class StepReport:
    """What the loop tells its caller after a logged step or a validation."""

    step: int
    total: int
    losses: dict[str, float]
    images_per_second: float
    validation: dict[str, float] | None = None


def _distributed() -> tuple[int, int]:
    """(rank, world size), joining the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _lr_factor(config: TrainConfig) -> Callable[[int], float]:
    start = int(config.decay_start * config.steps)

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, 1 - (step - start) / max(1, config.steps - start))

    return factor


def _follow_schedule(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


# Registered models that deblur train does not train end to end.
UNTRAINABLE = ("deconv",)


def start_as_identity(model: torch.nn.Module) -> torch.nn.Module:
    """Zero the last convolution: the residual generators then start as the identity,
    so training begins from the blurred input instead of from added noise."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    return model


class Trainer:
    """One training run. Build it, then iterate :meth:`run` for progress reports.

    Raises (from the constructor, before any step):
        UsageError: empty or unpaired data, crops larger than images, a run
            folder holding another run, a resume of another architecture.
        WeightsError: the perceptual loss's VGG19 weights are missing.
    """

    def __init__(
        self,
        config: TrainConfig,
        train: Source,
        val: Source | None,
        run_dir: Path,
        device: torch.device,
        resume: bool = False,
        resume_steps: int | None = None,
    ) -> None:
        self.rank, self.world = _distributed()
        self.run_dir, self.device = run_dir, device
        config = self._check_run_folder(config, resume, resume_steps)
        trainable = [name for name in list_models() if name not in UNTRAINABLE]
        if config.model in UNTRAINABLE:
            raise UsageError(
                f"--model {config.model} is not trained end to end: its refiner learns from "
                "the deconvolution's own output (python -m deblurcli.train.deconv_refiner, "
                f"see docs/train.md); deblur train takes {', '.join(trainable)}"
            )
        if config.model not in list_models():
            raise UsageError(f"unknown --model {config.model!r}: use {', '.join(trainable)}")
        self.task = get_spec(config.model).task
        if len(train) < config.batch_size * self.world:
            raise UsageError(
                f"{len(train)} training samples are fewer than one batch of "
                f"{config.batch_size} × {self.world} process(es): lower --batch-size"
            )
        self.config = config
        unknown = set(config.weights) - set(CONTENT_LOSSES) - self.OTHER_LOSSES
        if unknown:
            known = ", ".join([*CONTENT_LOSSES, *sorted(self.OTHER_LOSSES)])
            raise UsageError(f"unknown loss {sorted(unknown)[0]!r} for this recipe: use {known}")
        self.autocast_dtype = resolve_training_precision(config.precision, device)
        self._make_data(train, val)
        self.content = {k: CONTENT_LOSSES[k] for k in config.weights if k in CONTENT_LOSSES}
        self.perceptual = (
            PerceptualLoss(VGG19Conv33.from_torch_cache()).to(device)
            if "perceptual" in config.weights
            else None
        )
        torch.manual_seed(config.seed)
        self._make_networks()
        # Loss scaling is for fp16 only; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.best_psnr = -math.inf
        if config.init is not None and not resume:
            self._warm_start(Path(config.init))
        if resume:
            self._load(run_dir / CHECKPOINT)
            if self.step > config.steps:
                raise UsageError(
                    f"is already at step {self.step}: --steps must be at least that", run_dir
                )
            for optimizer in (self.opt_g, self.opt_d):  # the schedule of the (new) length
                if optimizer is not None:
                    _follow_schedule(optimizer, _lr_factor(config)(self.step))
        elif self.rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(config.as_json() + "\n")

    # -- set-up -------------------------------------------------------------------------

    OTHER_LOSSES = frozenset({"perceptual"})  # loss weights besides the content losses

    def _make_data(self, train: Source, val: Source | None) -> None:
        """The training and validation sets (``train_set``, ``val_set``)."""
        config = self.config
        check_sizes(
            [p for pair in train.pairs for p in pair] or train.sharp_only,
            config.crop,
            config.max_side if not train.pairs else None,
        )
        try:
            synth = synth_settings(config.synth) if self.task == "deblur" else None
            degrade = degrade_config(config.degrade) if self.task == "enhance" else None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"the recipe's degradation options do not work: {exc}") from None
        self.train_set = TrainingPairs(
            train,
            config.crop,
            config.seed,
            synth,
            task=self.task,
            max_side=config.max_side,
            scales=config.scales,
            degrade=degrade,
            identity_share=config.identity_share,
            squash=config.squash,
        )
        self.val_set = validation_set(val, config, self.task, synth, degrade)

    def _warm_start(self, path: Path) -> None:
        """Start the generator and its EMA from a weights file of the same architecture.

        Raises:
            WeightsError: unreadable file, another architecture, or other options.
        """
        loaded, _ = load_model(path, self.config.model)
        try:
            self.model.load_state_dict(loaded.state_dict())
        except RuntimeError as exc:
            raise WeightsError(
                f"does not fit this run's {self.config.model_config} options: "
                f"{str(exc).splitlines()[0]}",
                path,
            ) from None
        self.ema.load_state_dict(self.model.state_dict())

    def _make_networks(self) -> None:
        """Generator (``model``, its ``ema``), critics and their optimisers and schedules."""
        config, device = self.config, self.device
        self.model = start_as_identity(build_model(config.model, config.model_config)).to(device)
        if device.type in ("cpu", "cuda"):  # NHWC: faster convolutions there, most of all in bf16
            self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.adversary = Adversary.from_config(config).to(device) if config.gan_loss else None
        self.generator = self._wrap(self.model)
        self._make_optimisers(self.model.parameters())

    def _make_optimisers(self, generator_parameters) -> None:
        config = self.config
        self.opt_g = torch.optim.Adam(generator_parameters, config.lr, betas=config.betas)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, _lr_factor(config))
        self.opt_d = self.sched_d = None
        if self.adversary is not None:
            self.opt_d = torch.optim.Adam(
                self.adversary.parameters(), config.lr, betas=config.betas
            )
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, _lr_factor(config))

    def _stateful_parts(self) -> dict[str, Stateful]:
        """Everything a checkpoint holds, by its key in ``last.pt`` (subclasses with more
        networks add theirs)."""
        parts: dict[str, Stateful] = {
            "model": self.model,
            "ema": self.ema,
            "opt_g": self.opt_g,
            "sched_g": self.sched_g,
            "scaler": self.scaler,
        }
        if self.adversary is not None:
            assert self.opt_d is not None and self.sched_d is not None
            parts.update(critics=self.adversary, opt_d=self.opt_d, sched_d=self.sched_d)
        return parts

    def _after_load(self) -> None:
        """Re-establish what a checkpoint cannot hold (subclasses sharing parameters)."""

    def _check_run_folder(
        self, config: TrainConfig, resume: bool, resume_steps: int | None
    ) -> TrainConfig:
        """The config to run: ``config`` for a new run; the saved one when resuming,
        with ``resume_steps`` (if given) as its new length, longer or shorter."""
        saved = self.run_dir / "config.json"
        if resume:
            if not (self.run_dir / CHECKPOINT).is_file() or not saved.is_file():
                raise UsageError(f"holds no run to resume (no {CHECKPOINT})", self.run_dir)
            previous = TrainConfig.from_json(saved.read_text())
            if previous.model != config.model:
                raise UsageError(
                    f"holds a {previous.model!r} run, not {config.model!r}: resume with "
                    f"--model {previous.model} or choose another folder",
                    self.run_dir,
                )
            return replace(previous, steps=resume_steps or previous.steps)
        if saved.exists() or (self.run_dir / CHECKPOINT).exists():
            raise UsageError(
                "holds another run: pass --resume to continue it, or choose a new folder",
                self.run_dir,
            )
        return config

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _loader(self, epoch: int, skip: int) -> DataLoader:
        """This rank's batches of ``epoch``, without the first ``skip`` (after a resume)."""
        order = torch.randperm(
            len(self.train_set),
            generator=torch.Generator().manual_seed(derived_seed(self.config.seed, "order", epoch)),
        ).tolist()
        per_batch = self.config.batch_size
        usable = len(order) // (per_batch * self.world) * per_batch * self.world
        shard = order[:usable][self.rank :: self.world]
        self.train_set.set_epoch(epoch)
        return DataLoader(
            self.train_set,
            batch_size=per_batch,
            sampler=shard[skip * per_batch :],
            num_workers=self.config.workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
        )

    def batches_per_epoch(self) -> int:
        return len(self.train_set) // (self.config.batch_size * self.world)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Iterator[StepReport]:
        """Train until ``config.steps``; yields a report per logged step and validation."""
        config = self.config
        if self.step == 0 and self.val_set is not None and self.rank == 0:
            baseline = StepReport(0, config.steps, {}, 0.0, self._validate(keep_best=False))
            self._log(baseline)
            yield baseline
        started, images = time.perf_counter(), 0
        per_epoch = self.batches_per_epoch()
        while self.step < config.steps:
            epoch, position = divmod(self.step, per_epoch)
            for blurred, sharp in self._loader(epoch, position):
                losses = self._train_step(blurred.to(self.device), sharp.to(self.device))
                self.step += 1
                images += blurred.shape[0] * self.world
                rate = images / max(time.perf_counter() - started, 1e-9)
                report = None
                if self.step % config.log_every == 0 or self.step == config.steps:
                    report = StepReport(self.step, config.steps, losses, rate)
                if self.step % config.val_every == 0 or self.step == config.steps:
                    report = StepReport(self.step, config.steps, losses, rate, self._validate())
                    self.save()
                if report is not None and self.rank == 0:
                    self._log(report)
                    yield report
                if self.step >= config.steps:
                    break

    def _zero_backbone_gradients(self) -> None:
        """Freeze the backbone for this step without touching ``requires_grad`` (which
        DistributedDataParallel does not allow): with zero gradients from the start,
        Adam's moments stay zero and the backbone does not move."""
        backbone = getattr(getattr(self.model, "fpn", None), "backbone", None)
        if backbone is not None:
            for parameter in backbone.parameters():
                parameter.grad = None

    def _average_critic_gradients(self) -> None:
        """The critics are not DDP-wrapped (their losses are not ``forward``): average by hand."""
        if self.world == 1:
            return
        for parameter in self.adversary.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= self.world

    def _autocast(self):
        enabled = self.autocast_dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    def _train_step(self, blurred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
        config = self.config
        self.model.train()
        logged: dict[str, float] = {}
        if self.adversary is not None:
            for _ in range(config.critic_steps):
                with torch.no_grad(), self._autocast():
                    fake = self.generator(blurred)
                critic_loss = self.adversary.critic_loss(sharp, fake.float())
                self.opt_d.zero_grad(set_to_none=True)
                critic_loss.backward()
                self._average_critic_gradients()
                self.opt_d.step()
            self.sched_d.step()
            logged["critic"] = critic_loss.item()
            if self.adversary.adaptive is not None:
                logged["gp_weight"] = self.adversary.gp_weight
        with self._autocast():
            restored = self.generator(blurred)
        restored = restored.float()
        total = torch.zeros((), device=self.device)
        for name, loss in self.content.items():
            value = loss(restored, sharp)
            logged[name] = value.item()
            total = total + config.weights[name] * value
        if self.perceptual is not None:
            value = self.perceptual(restored, sharp)
            logged["perceptual"] = value.item()
            total = total + config.weights["perceptual"] * value
        if self.adversary is not None and config.adversarial_weight:
            self.adversary.requires_grad_(False)
            value = self.adversary.generator_loss(sharp, restored)
            self.adversary.requires_grad_(True)
            logged["adversarial"] = value.item()
            total = total + config.adversarial_weight * value
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.step < config.freeze_backbone_steps:
            self._zero_backbone_gradients()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.sched_g.step()
        self._update_ema()
        logged["total"] = total.item()
        return logged

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for averaged, current in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            averaged.lerp_(current, 1 - decay)
        for averaged, current in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            averaged.copy_(current)

    def _validate(self, keep_best: bool = True) -> dict[str, float] | None:
        if self.val_set is None or self.rank != 0:
            return None
        self.ema.eval()
        scores = validation_scores(self.ema, self.val_set, self.device)
        if keep_best and scores["psnr"] > self.best_psnr:
            self.best_psnr = scores["psnr"]
            self._export(self.run_dir / "best.safetensors", scores)
        return scores

    def _log(self, report: StepReport) -> None:
        line = {"step": report.step, "images_per_second": round(report.images_per_second, 3)}
        line.update({k: round(v, 6) for k, v in report.losses.items()})
        if report.validation:
            line.update({f"val_{k}": round(v, 6) for k, v in report.validation.items()})
        with (self.run_dir / "history.jsonl").open("a") as history:
            history.write(json.dumps(line) + "\n")

    # -- checkpoints ---------------------------------------------------------------------

    def _export(self, path: Path, scores: dict[str, float] | None) -> None:
        metadata = {
            "origin": f"trained by deblurcli, run {self.run_dir.name}, step {self.step}",
            "recipe": self.config.as_json(),
        }
        if scores:
            metadata["validation"] = json.dumps({k: round(v, 4) for k, v in scores.items()})
        save_weights(self.ema, path, self.config.model, self.config.model_config, metadata=metadata)

    def save(self) -> None:
        """Write ``last.pt`` (resume state) and ``last.safetensors`` (EMA weights); rank 0 only."""
        if self.rank != 0:
            if self.world > 1:
                dist.barrier()
            return
        save_run_state(
            self.run_dir / CHECKPOINT,
            self.step,
            self.config.model,
            self.best_psnr,
            self._stateful_parts(),
        )
        self._export(self.run_dir / "last.safetensors", None)
        if self.world > 1:
            dist.barrier()

    def _load(self, path: Path) -> None:
        parts = self._stateful_parts()
        self.step, self.best_psnr = load_run_state(path, self.device, self.config.model, parts)
        self._after_load()
