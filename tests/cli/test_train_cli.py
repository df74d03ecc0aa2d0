"""The real ``deblur train`` and ``deblur train export`` commands."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from deblurcli.models._builder import load_model
from tests.cli import run_cli


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, *args)


def test_train_export_and_deblur_with_the_exported_name(
    monkeypatch, capsys, tmp_path, dataset, private_weights_cache
):
    run_dir = tmp_path / "run"
    args = ["train", "--model", "mobilenet-dsc", "--data", str(dataset / "train"), "-o",
            str(run_dir), "--steps", "4", "--batch-size", "4", "--crop", "64", "--val-every", "2",
            "-j", "0", "--device", "cpu"]  # fmt: skip
    code, stdout, stderr = cli(monkeypatch, capsys, *args)
    assert code == 0, stderr
    assert "before training: val PSNR" in stderr and "best PSNR" in stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "fast" and config["steps"] == 4 and config["crop"] == 64
    code, _, stderr = cli(monkeypatch, capsys, *args)
    assert code == 2 and "--resume" in stderr  # the folder holds a run now
    code, stdout, _ = cli(monkeypatch, capsys, *args[:-8], "--steps", "6", "--resume", "-j", "0")
    assert (
        code == 0
        and json.loads((run_dir / "history.jsonl").read_text().splitlines()[-1])["step"] == 6
    )
    code, stdout, _ = cli(monkeypatch, capsys, "train", "export", str(run_dir), "--name", "mine")
    assert code == 0 and "--weights mine" in stdout
    photos = dataset / "val" / "blur"
    code, _, stderr = cli(
        monkeypatch, capsys, "deblur", str(photos), "-o", str(tmp_path / "out"), "-w", "mine"
    )
    assert code == 0, stderr
    assert len(list((tmp_path / "out").iterdir())) == len(list(photos.iterdir()))

    half = tmp_path / "shipped" / "mine_fp16.safetensors"
    code, stdout, stderr = cli(
        monkeypatch, capsys, "train", "export", str(run_dir), "-o", str(half), "--half"
    )
    assert code == 0, stderr
    assert f"{half.stat().st_size} bytes" in stdout and "sha256:" in stdout
    with safe_open(str(half), "pt") as f:
        assert f.metadata()["validation"]  # the run's scores travel with the weights
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    full, _ = load_model(private_weights_cache / "weights" / "mine.safetensors")
    shrunk, _ = load_model(half)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (full(image) - shrunk(image)).abs().max() < 2e-2
    code, _, stderr = cli(monkeypatch, capsys, "train", "export", str(run_dir))
    assert code == 2 and "--name" in stderr


def test_a_dataset_root_is_read_as_its_train_and_val_split(monkeypatch, capsys, tmp_path, dataset):
    run_dir = tmp_path / "run"
    args = ["train", "--model", "mobilenet-dsc", "--data", str(dataset), "-o", str(run_dir),
            "--steps", "2", "--batch-size", "4", "--crop", "64", "--val-every", "2", "-j", "0",
            "--device", "cpu"]  # fmt: skip
    code, _, stderr = cli(monkeypatch, capsys, *args)
    assert code == 0, stderr
    assert "before training: val PSNR" in stderr  # dataset/val validated the run
    assert (run_dir / "best.safetensors").is_file()


def test_export_of_a_run_without_validation_takes_the_last_weights(
    monkeypatch, capsys, tmp_path, dataset
):
    run_dir = tmp_path / "run"
    args = ["train", "--model", "mobilenet-dsc", "--data", str(dataset / "train" / "blur"),
            "-o", str(run_dir), "--steps", "2", "--batch-size", "4", "--crop", "64",
            "--val-every", "2", "-j", "0", "--device", "cpu"]  # fmt: skip
    code, _, stderr = cli(monkeypatch, capsys, *args)
    assert code == 0, stderr
    assert not (run_dir / "best.safetensors").exists()
    code, stdout, stderr = cli(monkeypatch, capsys, "train", "export", str(run_dir), "--name", "m")
    assert code == 0 and "--weights m" in stdout
    assert "no best.safetensors" in stderr and "last EMA weights" in stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "nope"], "unknown preset"),
        (["--steps", "3", "--epochs", "1"], "exclude each other"),
        (["--model", "enhancer"], "unknown --model"),
        (["--model", "deconv"], "is not trained end to end"),
    ],
)
def test_bad_options_are_usage_errors(monkeypatch, capsys, tmp_path, dataset, extra, message):
    args = ["train", "--data", str(dataset / "train"), "-o", str(tmp_path / "r")]
    if "--model" not in extra:
        args += ["--model", "mobilenet-dsc"]
    code, _, stderr = cli(monkeypatch, capsys, *args, *extra)
    assert code == 2 and message in stderr
    assert not (tmp_path / "r" / "last.pt").exists()


def test_recipe_options_reach_the_run_and_bad_ones_exit_2(monkeypatch, capsys, tmp_path, dataset):
    run_dir = tmp_path / "run"
    base = ["train", "--model", "mobilenet-dsc", "--data", str(dataset / "train"), "-o",
            str(run_dir), "--steps", "2", "--batch-size", "4", "--crop", "64", "--val-every", "2",
            "-j", "0", "--device", "cpu"]  # fmt: skip
    code, _, stderr = cli(monkeypatch, capsys, *base, "--precision", "fp16")
    assert code == 2 and "fp16 training needs a GPU" in stderr
    code, _, stderr = cli(monkeypatch, capsys, *base, "--blur-option", "max_len")
    assert code == 2 and "expected KEY=VALUE" in stderr
    code, _, stderr = cli(
        monkeypatch, capsys, *base, "--precision", "bf16", "--blur-option", "max_len=[20,40]",
        "--val-crop", "0", "--val-max-side", "80",
    )  # fmt: skip
    assert code == 0, stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["precision"] == "bf16" and config["synth"]["max_len"] == [20, 40]
    assert config["synth"]["types"] == ["shake", "shake", "shake", "linear", "defocus"]
    assert config["val_crop"] == 0 and config["val_max_side"] == 80


def test_each_enhancer_trains_with_its_own_preset_by_default():
    from deblurcli.cli.train import _default_preset

    assert _default_preset("curves") == "curves" and _default_preset("dpe") == "dpe"
    assert _default_preset("mobilenet") == "fast"
