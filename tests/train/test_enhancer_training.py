"""Training the enhancer: degraded pairs, the supervised and 1-way GAN recipes, the 2-way GAN."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from deblurcli.errors import UsageError
from deblurcli.models._builder import load_model
from deblurcli.ops.degrade import DegradeConfig, apply_degradation, draw_degradation
from deblurcli.ops.pairs import derived_seed
from deblurcli.train.data import TrainingPairs, ValidationPairs, find_data
from deblurcli.train.loop import Trainer
from deblurcli.train.presets import resolve
from deblurcli.train.unpaired import UnpairedTrainer
from tests.cli import run_cli

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def good_photos(tmp_path_factory, small_photos) -> Path:
    folder = tmp_path_factory.mktemp("good")
    for photo in sorted(small_photos.iterdir())[:8]:
        shutil.copy(photo, folder / photo.name)
    return folder


def _config(preset: str = "dpe", **overrides):
    base = {"model_config": {"global_size": 64}, "steps": 3, "batch_size": 2, "crop": 64,
            "val_crop": 64, "max_side": 128, "val_every": 3, "log_every": 1,
            "workers": 0}  # fmt: skip
    return resolve(preset, **{**base, **overrides})


def test_good_photos_become_seeded_degraded_pairs(good_photos):
    source = find_data(good_photos)
    assert source.sharp_only and not source.pairs
    pairs = TrainingPairs(source, 64, seed=3, task="enhance", max_side=128)
    degraded, good = pairs[2]
    again, _ = pairs[2]
    assert degraded.shape == good.shape == (3, 64, 64) and torch.equal(degraded, again)
    assert (degraded - good).abs().mean() > 0.01
    val = ValidationPairs(source, 64, seed=3, task="enhance", max_side=128)
    v_degraded, v_good = val[0]
    g = torch.Generator().manual_seed(derived_seed(3, "val", 0))
    expected = apply_degradation((v_good + 1) / 2, draw_degradation(DegradeConfig(), g)) * 2 - 1
    assert torch.allclose(v_degraded, expected, atol=1e-6)


def test_shrunk_photos_are_read_once_when_the_dataset_is_made(tmp_path, good_photos):
    """The loader's workers are forked anew every epoch: the shrunk photos must already be
    in the parent's memory, or every epoch decodes them all again."""
    folder = tmp_path / "photos"
    shutil.copytree(good_photos, folder)
    pairs = TrainingPairs(find_data(folder), 64, seed=3, task="enhance", max_side=128)
    shutil.rmtree(folder)  # from here on, only what was read at construction is there
    samples = [pairs[index] for index in range(len(pairs))]
    assert len(samples) == 8 and all(good.shape == (3, 64, 64) for _, good in samples)


def test_input_target_folders_are_enhancement_pairs(tmp_path, good_photos):
    for name in ("input", "target"):
        (tmp_path / "fivek" / name).mkdir(parents=True)
        for photo in sorted(good_photos.iterdir())[:3]:
            shutil.copy(photo, tmp_path / "fivek" / name / photo.name)
    source = find_data(tmp_path / "fivek")
    assert len(source.pairs) == 3 and source.pairs[0][0].parent.name == "input"
    (tmp_path / "fivek" / "target" / source.pairs[0][1].name).unlink()
    with pytest.raises(UsageError, match="every input/NAME needs a target/NAME"):
        find_data(tmp_path / "fivek")


def test_supervised_curves_run_improves_and_exports_an_enhancer(tmp_path, good_photos):
    source = find_data(good_photos)
    config = _config("curves", model_config={}, steps=40, val_every=20, batch_size=4)
    trainer = Trainer(config, source, source, tmp_path / "r", CPU)
    before = next(iter(trainer.run())).validation  # the auto-levels start
    list(trainer.run())
    assert trainer.best_psnr > before["psnr"] + 1.0, (before, trainer.best_psnr)  # 1.7 dB
    _, info = load_model(tmp_path / "r" / "best.safetensors")
    assert info.architecture == "curves"


def test_supervised_dpe_run_exports_a_dpe_of_its_options(tmp_path, good_photos):
    """DPE learns far slower than the curves (40 steps here do not improve it), so this
    checks only that its supervised recipe runs and exports what it trained."""
    source = find_data(good_photos)
    list(Trainer(_config(), source, source, tmp_path / "r", CPU).run())
    model, info = load_model(tmp_path / "r" / "best.safetensors")
    assert info.architecture == "dpe" and model.global_size == 64


def test_the_1_way_gan_adapts_lambda_and_logs_it(tmp_path, good_photos):
    source = find_data(good_photos)
    config = _config("dpe-gan", gp_window=1, gp_band=(0.001, 0.002))  # any real norm is above
    reports = list(Trainer(config, source, None, tmp_path / "r", CPU).run())
    assert [r.losses["gp_weight"] for r in reports] == [20.0, 40.0, 80.0]


def test_the_2_way_gan_shares_convolutions_keeps_its_own_norms_and_resumes(
    tmp_path, good_photos, small_photos
):
    source = find_data(good_photos)
    target = find_data(small_photos)
    config = _config("dpe-2way", steps=4, val_every=2)
    trainer = UnpairedTrainer(config, source, source, tmp_path / "r", CPU, target=target)
    twin = trainer.twins[0]
    assert twin.enc1[0].weight is trainer.model.enc1[0].weight
    assert twin.enc1[1] is not trainer.model.enc1[1]
    reports = {r.step: r for r in trainer.run() if r.step == 2}
    assert set(reports[2].losses) >= {"critic", "adversarial", "identity", "cycle", "gp_weight"}
    # individual batch norm: the twin saw generated images, so its statistics differ
    assert not torch.allclose(twin.enc1[1].running_mean, trainer.model.enc1[1].running_mean)
    resumed = UnpairedTrainer(config, source, None, tmp_path / "r", CPU, resume=True, target=target)
    assert resumed.step == 4
    assert resumed.twins[1].dec0[0].weight is resumed.backward_model.dec0[0].weight
    assert torch.equal(resumed.twins[0].enc1[1].running_mean, twin.enc1[1].running_mean)
    _, info = load_model(tmp_path / "r" / "last.safetensors")
    assert info.architecture == "dpe"


def test_the_cli_trains_the_enhancer_and_checks_its_folders(
    monkeypatch, capsys, tmp_path, good_photos, small_photos
):
    run = tmp_path / "run"
    code, _, stderr = run_cli(
        monkeypatch, capsys, "train", "--model", "dpe", "--data", str(good_photos), "-o",
        str(run), "--steps", "2", "--batch-size", "2", "--crop", "64", "--max-side", "128",
        "--model-option", "global_size=64", "-j", "0", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, stderr
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "dpe" and config["weights"] == {"l2": 1.0}
    assert config["model_config"] == {"global_size": 64} and config["max_side"] == 128
    code, _, stderr = run_cli(
        monkeypatch, capsys, "train", "--model", "dpe", "--data", str(good_photos), "-o",
        str(tmp_path / "r4"), "--model-option", "global_size=100", "--crop", "64",
    )  # fmt: skip
    assert code == 2 and "multiple of 64" in stderr
    code, _, stderr = run_cli(
        monkeypatch, capsys, "train", "--preset", "dpe-2way", "--data", str(good_photos),
        "-o", str(tmp_path / "r2"),
    )  # fmt: skip
    assert code == 2 and "--source DIR and --target DIR" in stderr
    code, _, stderr = run_cli(
        monkeypatch, capsys, "train", "--preset", "dpe-gan", "--data", str(good_photos),
        "-o", str(tmp_path / "r3"), "--gp-band", "1.1-0.9",
    )  # fmt: skip
    assert code == 2 and "low end is above the high end" in stderr


def test_the_2_way_gan_validates_at_the_recipes_val_max_side(tmp_path, good_photos, small_photos):
    source, target = find_data(good_photos), find_data(small_photos)
    config = _config("dpe-2way", val_max_side=48, max_side=512)
    trainer = UnpairedTrainer(config, source, source, tmp_path / "r", CPU, target=target)
    assert trainer.val_set.max_side == 48  # it used max_side (512) before
