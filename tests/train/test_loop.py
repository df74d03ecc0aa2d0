"""Training runs: a short run that lowers the validation loss, resume, export,
data layouts, bad input caught before any step, and a 2-process torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deblurcli import hub
from deblurcli.errors import InputImageError, UsageError
from deblurcli.models._builder import load_model
from deblurcli.train.data import TrainingPairs, find_data
from deblurcli.train.loop import CHECKPOINT, Trainer
from deblurcli.train.presets import PRESETS, resolve

CPU = torch.device("cpu")


def _config(**overrides):
    # fp32: these tests check the loop's arithmetic exactly (bf16: tests/train/test_recipe.py)
    base = {"model": "mobilenet-dsc", "steps": 40, "batch_size": 8, "crop": 64, "val_crop": 96,
            "lr": 1e-3, "val_every": 20, "log_every": 10, "workers": 0,
            "precision": "fp32"}  # fmt: skip
    return resolve("fast", **{**base, **overrides})


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_a_short_run_lowers_the_validation_loss_and_its_weights_deblur(dataset, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(_config(), find_data(dataset / "train"), find_data(dataset / "val"), run, CPU)
    reports = list(trainer.run())
    before, after = reports[0].validation, reports[-1].validation
    assert reports[0].step == 0 and reports[-1].step == 40
    assert after["l1"] < before["l1"] and after["psnr"] > before["psnr"]
    assert {p.name for p in run.iterdir()} >= {
        "config.json", "history.jsonl", CHECKPOINT, "best.safetensors", "last.safetensors"
    }  # fmt: skip
    _, info = load_model(run / "best.safetensors")
    assert info.architecture == "mobilenet-dsc" and info.statistics == "running"
    assert json.loads(info.metadata["recipe"])["steps"] == 40
    entry = hub.import_weights(run / "best.safetensors", "my-dsc", origin="trained in a test")
    assert hub.resolve_weights("my-dsc") == hub.cache_dir() / "my-dsc.safetensors"
    assert entry.origin == "trained in a test"
    _, exported = load_model(hub.cache_dir() / "my-dsc.safetensors")
    assert exported.metadata["recipe"] == info.metadata["recipe"]  # the recipe travels along


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_resume_continues_at_the_saved_step(dataset, tmp_path):
    """The first step after a resume computes the uninterrupted run's loss exactly. Later
    steps agree only approximately: the first backward pass after loading differs in the
    last bits (even on one thread; oneDNN's kernels on freshly allocated weights), and Adam
    magnifies that on near-zero gradients. So the resumed weights must be much closer to
    the uninterrupted run's than the last ten steps moved them."""
    train = find_data(dataset / "train")
    config = _config(steps=20, val_every=10, log_every=1)
    straight = Trainer(config, train, None, tmp_path / "a", CPU)
    straight_losses, at_step_10 = {}, None
    for report in straight.run():
        straight_losses[report.step] = report.losses
        if report.step == 10:
            at_step_10 = _flat(straight.model).clone()
    first = Trainer(config, train, None, tmp_path / "b", CPU)
    for report in first.run():  # stopped after the checkpoint at step 10
        if report.step == 10:
            break
    resumed = Trainer(config, train, None, tmp_path / "b", CPU, resume=True)
    assert resumed.step == 10
    assert torch.equal(_flat(resumed.model), at_step_10)
    resumed_losses = {r.step: r.losses for r in resumed.run()}
    assert min(resumed_losses) == 11 and resumed.step == 20
    assert resumed_losses[11] == straight_losses[11]
    assert [h["step"] for h in _history(tmp_path / "b")] == list(range(1, 21))
    moved = float((_flat(straight.model) - at_step_10).norm())
    apart = float((_flat(resumed.model) - _flat(straight.model)).norm())
    assert apart < 0.15 * moved, (apart, moved)  # measured: about 6 %


def test_bad_input_is_refused_before_any_step(dataset, tmp_path):
    train = find_data(dataset / "train")
    run = tmp_path / "run"
    list(Trainer(_config(steps=2, val_every=2), train, None, run, CPU).run())
    with pytest.raises(UsageError, match="--resume"):
        Trainer(_config(), train, None, run, CPU)  # a folder holding another run
    with pytest.raises(UsageError, match="holds a 'mobilenet-dsc' run"):
        Trainer(_config(model="mobilenet"), train, None, run, CPU, resume=True)
    with pytest.raises(InputImageError, match="smaller than the 128 px training crop"):
        Trainer(_config(crop=128), train, None, tmp_path / "big", CPU)
    with pytest.raises(UsageError, match="fewer than one batch"):
        Trainer(_config(batch_size=10_000), train, None, tmp_path / "b2", CPU)
    assert not (tmp_path / "big").exists() and torch.load(run / CHECKPOINT)["step"] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no images"):
        find_data(empty)
    broken = tmp_path / "broken"
    shutil.copytree(dataset / "train", broken)
    next((broken / "sharp").iterdir()).unlink()
    with pytest.raises(UsageError, match="do not pair up"):
        find_data(broken)


def test_gopro_layout_and_sharp_only_folders(tmp_path, small_photos):
    photos = sorted(small_photos.glob("*.png"))[:3]
    for scene in ("GOPR0001", "GOPR0002"):
        for kind in ("blur", "sharp"):
            (tmp_path / "gopro" / scene / kind).mkdir(parents=True)
            for i, photo in enumerate(photos):
                shutil.copy(photo, tmp_path / "gopro" / scene / kind / f"{i:06d}.png")
    source = find_data(tmp_path / "gopro")
    assert len(source.pairs) == 6 and not source.sharp_only
    assert all(b.parent.name == "blur" and s.parent.name == "sharp" for b, s in source.pairs)
    assert all(b.name == s.name and b.parents[1] == s.parents[1] for b, s in source.pairs)
    sharp_only = find_data(small_photos)
    assert len(sharp_only.sharp_only) == len(list(small_photos.glob("*.png")))
    dataset = TrainingPairs(sharp_only, 64, seed=3)
    blurred, sharp = dataset[0]
    assert blurred.shape == sharp.shape == (3, 64, 64)
    assert float((blurred - sharp).abs().mean()) > 0.005  # blurred on the fly
    again = dataset[0]
    assert torch.equal(again[0], blurred)  # same seed, epoch and index: same sample
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][1], sharp)  # another epoch: another crop


def test_presets_hold_the_papers_settings():
    v1 = resolve("deblurgan", steps=1000)
    assert (v1.gan_loss, v1.critic_steps, v1.gp_weight, v1.lr, v1.betas) == (
        "wgan-gp", 5, 10.0, 1e-4, (0.5, 0.999)
    )  # fmt: skip
    assert v1.weights == {"perceptual": 100.0} and v1.decay_start == 0.5
    v2 = resolve("deblurgan-v2", steps=1000)
    assert (v2.gan_loss, v2.critic, v2.adversarial_weight) == ("ragan-ls", "double", 0.01)
    assert v2.weights == {"l1": 0.5, "perceptual": 0.006} and v2.freeze_backbone_steps == 30
    assert resolve("deblurgan", lr=3e-4).lr == 3e-4  # every value overridable
    dpe = resolve("dpe")
    assert (dpe.model, dpe.weights, dpe.gan_loss) == ("dpe", {"l2": 1.0}, None)  # 23.8 dB setting
    two_way = resolve("dpe-2way")
    assert (two_way.gan_loss, two_way.gp_band) == ("wgan-gp", (0.95, 1.05))
    assert set(two_way.weights) == {"identity", "cycle"}
    assert set(PRESETS) == {
        "fast", "deblurgan", "deblurgan-v2", "curves", "dpe", "dpe-gan", "dpe-2way"
    }  # fmt: skip
    curves = resolve("curves")
    assert (curves.model, curves.identity_share, curves.squash) == ("curves", 0.2, True)


def test_a_gan_recipe_runs_steps_on_the_cpu(dataset, tmp_path):
    config = _config(steps=2, batch_size=2, gan_loss="wgan-gp", critic="double", critic_steps=2,
                     adversarial_weight=0.01, val_every=2)  # fmt: skip
    trainer = Trainer(config, find_data(dataset / "train"), None, tmp_path / "gan", CPU)
    report = list(trainer.run())[-1]
    assert {"critic", "adversarial", "l1"} <= set(report.losses)
    assert (tmp_path / "gan" / CHECKPOINT).is_file()


def test_two_processes_with_torchrun_and_gloo(dataset, tmp_path):
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "deblurcli", "train", "--model", "mobilenet-dsc",
        "--data", str(dataset / "train"), "-o", str(run), "--steps", "6", "--batch-size", "2",
        "--crop", "64", "--val-every", "3", "-j", "0", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    history = _history(run)
    assert [h["step"] for h in history] == [0, 3, 6]  # rank 0 alone logs (ds/val found)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    assert state["step"] == 6
    model, _ = load_model(run / "last.safetensors")
    image = torch.from_numpy(cv2.imread(str(next((dataset / "val" / "blur").iterdir()))))
    assert np.isfinite(
        model(image.permute(2, 0, 1)[None].float() / 127.5 - 1).detach().numpy()
    ).all()


def test_resume_can_shorten_or_extend_the_run_but_not_below_its_step(dataset, tmp_path):
    train = find_data(dataset / "train")
    run = tmp_path / "run"
    first = Trainer(_config(steps=40, val_every=4), train, None, run, CPU)
    for report in first.run():  # stopped after the checkpoint at step 4
        if report.step == 4:
            break
    kept = Trainer(_config(), train, None, run, CPU, resume=True)
    assert kept.config.steps == 40
    shorter = Trainer(_config(), train, None, run, CPU, resume=True, resume_steps=6)
    assert shorter.config.steps == 6
    assert shorter.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 1 / 3))  # new decay
    list(shorter.run())
    assert shorter.step == 6
    with pytest.raises(UsageError, match="already at step 6"):
        Trainer(_config(), train, None, run, CPU, resume=True, resume_steps=5)
