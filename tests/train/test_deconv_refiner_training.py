"""Training the deconvolution's refiner: cached triples, batches, fitting, resuming, export."""

from __future__ import annotations

import json
import random
import shutil
import time

import numpy as np
import pytest
import torch

from deblurcli.models import build_model
from deblurcli.models._builder import load_model, save_weights
from deblurcli.models.blind import BlindDeconvolution
from deblurcli.models.refiner import DeconvRefiner
from deblurcli.train.deconv_refiner import (
    Triple,
    deconvolution_settings,
    export,
    fit,
    main,
    make_triple,
    sample_batch,
)

SMALL = {"kernel_size": 7, "work_size": 128, "iterations": 2}


@pytest.fixture(scope="module")
def deconvolution(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "deconv.safetensors"
    save_weights(build_model("deconv", SMALL), path, "deconv", SMALL)
    return path


def _offset_triples(count: int, seed: int) -> list[Triple]:
    """Triples whose input and 'deconvolution' are the sharp photo made darker by 40
    levels: a fault the refiner can learn to undo in a few steps."""
    rng = np.random.default_rng(seed)
    triples = []
    for index in range(count):
        sharp = rng.integers(60, 250, (48, 64, 3), dtype=np.uint8)
        darker = (sharp.astype(int) - 40).clip(0, 255).astype(np.uint8)
        triples.append(Triple(f"t{index}", darker, (darker,), sharp, 9))
    return triples


def test_a_triple_is_made_once_then_read_from_the_cache(photos, deconvolution, tmp_path):
    photo = tmp_path / "photos" / photos[0].name
    photo.parent.mkdir()
    shutil.copy(photos[0], photo)
    cache = tmp_path / "cache"
    cache.mkdir()
    made = make_triple(photo, 1234, deconvolution, cache)
    (deconvolved,) = made.deconvolutions  # no refiner, so no re-fit
    assert made.blurred.shape == made.sharp.shape == deconvolved.shape
    assert made.blurred.dtype == np.uint8 and made.extent >= 3
    assert np.abs(made.blurred.astype(int) - made.sharp.astype(int)).mean() > 1  # blurred
    photo.unlink()  # the cache alone must do now
    again = make_triple(photo, 1234, deconvolution, cache)
    assert np.array_equal(again.deconvolutions[0], deconvolved)
    assert [p.name for p in cache.iterdir()] == [f"photos_{photo.stem}-s1234.npz"]
    stored = np.load(cache / f"photos_{photo.stem}-s1234.npz")
    (estimate,) = stored["estimates"]  # at the photo's size: larger than 7 px
    assert estimate.shape[0] == estimate.shape[1] > 7
    assert stored["kernel"].sum() == pytest.approx(1, abs=1e-4)


def test_a_cache_from_before_refits_were_kept_reads_as_one_deconvolution(tmp_path):
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for k in ("b", "d", "s")}
    np.savez(tmp_path / "photos_old-s7.npz", blurred=images["b"], deconv=images["d"],
             sharp=images["s"], extent=9)  # fmt: skip
    made = make_triple(tmp_path / "photos" / "old.jpg", 7, tmp_path / "unused", tmp_path)
    assert len(made.deconvolutions) == 1
    assert np.array_equal(made.deconvolutions[0], images["d"])


def test_with_a_refiner_the_triple_holds_the_deconvolution_of_each_refit(
    photos, tmp_path, monkeypatch
):
    monkeypatch.setattr("deblurcli.train.deconv_refiner.WORK_SIDE", 128)  # a fast test
    settings = {**SMALL, "refiner_widths": [8, 8, 8],
                "refiner_blocks": [1, 1, 1], "kernel_refits": 1}  # fmt: skip
    torch.manual_seed(0)
    model = build_model("deconv", settings)
    torch.nn.init.normal_(model.refiner.tail.weight, std=0.05)  # not the identity
    path = tmp_path / "refined.safetensors"
    save_weights(model, path, "deconv", settings)
    made = make_triple(photos[0], 1234, path, tmp_path)
    first, second = made.deconvolutions
    estimates = np.load(next(tmp_path.glob("*.npz")))["estimates"]
    assert not np.array_equal(estimates[0], estimates[1])  # the kernel was fitted again
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.1
    # The search's kernel and deconvolution are those of the model without a re-fit.
    photo = torch.from_numpy(made.blurred).permute(2, 0, 1)[None].float() * (1.0 / 255) * 2 - 1
    # (as Restorer.restore_array feeds the model)
    model.kernel_refits = 0
    with torch.inference_mode():
        features = model.eval().global_features(photo).flatten()
    np.testing.assert_allclose(features[2:].reshape(7, 7).numpy(), estimates[0], atol=1e-6)


def test_wrong_kernel_deconvolutions_are_cached_beside_the_triple(photos, deconvolution, tmp_path):
    made = make_triple(photos[0], 1234, deconvolution, tmp_path, wrong_kernels=2)
    assert len(made.wrong) == 2
    stored = np.load(tmp_path / f"photos_{photos[0].stem}-s1234.npz")
    for image, kernel_name in zip(made.wrong, ("kernel0", "kernel1"), strict=True):
        assert image.shape == made.blurred.shape and image.dtype == np.uint8
        wrong = np.load(tmp_path / f"photos_{photos[0].stem}-s1234-wrong.npz")[kernel_name]
        assert wrong.sum() == pytest.approx(1, abs=1e-4)
        assert wrong.shape != stored["kernel"].shape or not np.allclose(wrong, stored["kernel"])
        # A deconvolution, not the blurred photo, and not the search's.
        assert np.abs(image.astype(int) - made.blurred.astype(int)).mean() > 0.5
        assert not np.array_equal(image, made.deconvolutions[0])
    again = make_triple(photos[0], 1234, deconvolution, tmp_path, wrong_kernels=1)
    assert len(again.wrong) == 1 and np.array_equal(again.wrong[0], made.wrong[0])
    more = make_triple(photos[0], 1234, deconvolution, tmp_path, wrong_kernels=3)
    assert len(more.wrong) == 3  # the file held too few: made again
    assert make_triple(photos[0], 1234, deconvolution, tmp_path).wrong == ()


def test_the_wrong_share_of_a_batch_comes_from_the_wrong_kernel_deconvolutions():
    triples = _offset_triples(2, seed=0)
    for triple in triples:
        triple.wrong = (np.zeros_like(triple.sharp),)
    _, always, _ = sample_batch(triples, 6, 16, random.Random(1), wrong_share=1.0)
    assert torch.all(always == -1)  # black: the wrong ones
    _, never, _ = sample_batch(triples, 6, 16, random.Random(1), wrong_share=0.0)
    assert torch.all(never > -1)


def test_a_batch_turns_and_flips_the_three_images_alike():
    triples = _offset_triples(2, seed=0)
    blurred, deconvolved, sharp = sample_batch(triples, 5, 32, random.Random(1))
    assert blurred.shape == (5, 3, 32, 32) and blurred.is_contiguous(
        memory_format=torch.channels_last
    )
    assert torch.equal(blurred, deconvolved)
    darker = ((sharp + 1) * 127.5 - 40).clamp(0, 255) / 127.5 - 1  # same crop, turn and flip
    torch.testing.assert_close(deconvolved, darker)


def test_fitting_learns_the_fault_and_resumes_where_it_stopped(tmp_path):
    training, validation = _offset_triples(6, seed=1), _offset_triples(2, seed=2)
    torch.manual_seed(0)
    refiner = DeconvRefiner((8, 8, 8), (1, 1, 1))
    lines: list[str] = []
    fit(refiner, training, validation, tmp_path / "run", 20, 4, 32, 3e-3, 10, log=lines.append)
    first = [line for line in lines if "validation" in line]
    assert len(first) == 2 and (tmp_path / "run" / "last.pt").exists()
    lines.clear()
    step, gain = fit(refiner, training, validation, tmp_path / "run", 60, 4, 32, 3e-3, 20,
                     log=lines.append)  # fmt: skip
    assert lines[0] == "resumed at step 20"
    assert step == 60 and gain > 8  # the 40-level offset is worth about 10 dB
    best = DeconvRefiner((8, 8, 8), (1, 1, 1))
    best.load_state_dict(torch.load(tmp_path / "run" / "best.pt"))


def test_export_writes_the_settings_with_the_refiner(deconvolution, tmp_path):
    torch.manual_seed(0)
    refiner = DeconvRefiner((8, 8, 8), (1, 1, 1))
    torch.nn.init.normal_(refiner.tail.weight, std=0.05)
    output = tmp_path / "refined.safetensors"
    export(refiner, deconvolution, output, {"selection": "test"})
    model, info = load_model(output, "deconv")
    assert isinstance(model, BlindDeconvolution) and model.refiner is not None
    assert (model.kernel_size, model.work_size) == (7, 128)
    assert info.metadata["selection"] == "test"
    assert deconvolution_settings(output) == deconvolution_settings(deconvolution)  # seeds again
    for name, value in refiner.state_dict().items():
        torch.testing.assert_close(model.refiner.state_dict()[name], value.half().float())


def test_the_command_trains_validates_and_writes_a_file_that_deblurs(
    photos, deconvolution, tmp_path, capsys
):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:3]:
        shutil.copy(photo, folder / photo.name)
    output = tmp_path / "refined.safetensors"
    main([
        "--photos", str(folder), "--exclude", photos[2].stem, "--validation", photos[1].stem,
        "--copies", "1", "--val-copies", "2", "--deconvolution", str(deconvolution),
        "--cache", str(tmp_path / "cache"), "--run", str(tmp_path / "run"), "--steps", "4",
        "--widths", "8", "8", "8", "--blocks", "1", "1", "1", "--workers", "1", "-o", str(output),
        "--wrong-kernels", "1",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "1 training photos, 1 validation photos" in printed
    assert "step 4: validation gain" in printed and f"wrote {output}" in printed
    assert "step 4: wrong-kernel validation gain" in printed
    assert len(list((tmp_path / "cache").glob("*-wrong.npz"))) == 2
    model, info = load_model(output, "deconv")
    assert isinstance(model, BlindDeconvolution) and model.refiner.widths == (8, 8, 8)
    assert json.loads(info.metadata["training_photos"]) == [photos[0].name]
    assert json.loads(info.metadata["validation_photos"]) == [photos[1].name]


def test_a_run_out_of_time_validates_saves_and_stops(tmp_path):
    training, validation = _offset_triples(3, seed=1), _offset_triples(1, seed=2)
    refiner = DeconvRefiner((8, 8, 8), (1, 1, 1))
    lines: list[str] = []
    step, _ = fit(refiner, training, validation, tmp_path / "run", 1000, 2, 32,
                  log=lines.append, deadline=time.monotonic())  # fmt: skip
    assert step == 1 and lines[-1] == "stopped at step 1: out of time"
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 1
