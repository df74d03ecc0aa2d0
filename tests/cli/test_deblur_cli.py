"""The real ``deblur deblur`` command: outputs, skipping, JSON, exit codes, bad input, Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from deblurcli.models import build_model
from deblurcli.models._builder import save_weights
from tests.cli import run_cli
from tests.conftest import save_official_v2


def deblur(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "deblur", *args)


@pytest.fixture(scope="module")
def eval_weights(tmp_path_factory) -> Path:
    """Eval-mode (tile-exact) mobilenet-dsc weights in our own format."""
    torch.manual_seed(3)
    model = build_model("mobilenet-dsc", {"norm": "batch"})
    with torch.no_grad():
        model.final.weight.mul_(30)
    path = tmp_path_factory.mktemp("w") / "dsc.safetensors"
    save_weights(model, path, "mobilenet-dsc", {"norm": "batch"})
    return path


@pytest.fixture
def inputs(tmp_path, photos) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(("a.jpg", "sub/b.png")):
        with Image.open(photos[i]) as photo:
            photo.convert("RGB").resize((160, 112)).save(folder / name)
    (folder / "broken.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, deblurcli.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_python_m_deblurcli_prints_the_version():
    from deblurcli import __version__

    out = subprocess.run(
        [sys.executable, "-m", "deblurcli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"deblurcli {__version__}"


def test_default_weights_offline_say_where_to_get_them(monkeypatch, capsys, inputs, tmp_path):
    """Inception's default names official weights; offline, the message gives the URL and
    the import command instead of deblurring with random weights."""
    code, _, err = deblur(
        monkeypatch, capsys, str(inputs), "-o", str(tmp_path / "out"), "-b", "inception"
    )
    assert code == 1
    assert "'fpn_inception' is not in the cache and DEBLURCLI_OFFLINE is set" in err
    assert "drive.google.com" in err and "deblur weights import" in err
    assert not (tmp_path / "out").exists()


def test_a_backbone_without_default_weights_is_refused(monkeypatch, capsys, inputs, tmp_path):
    code, _, err = deblur(
        monkeypatch, capsys, str(inputs), "-o", str(tmp_path / "out"), "-b", "resnet"
    )
    assert code == 2
    assert "'resnet' has no default weights" in err


def test_a_batch_with_bad_files_processes_the_rest_and_exits_1(
    monkeypatch, capsys, inputs, tmp_path, eval_weights
):
    out_dir = tmp_path / "out"
    code, out, err = deblur(
        monkeypatch,
        capsys,
        str(inputs),
        "-r",
        "-o",
        str(out_dir),
        "-w",
        str(eval_weights),
        "--json",
    )
    assert code == 1
    document = json.loads(out)  # stdout holds the JSON document and nothing else
    status = {Path(r["input"]).name: r["status"] for r in document["results"]}
    assert status == {"a.jpg": "ok", "b.png": "ok", "broken.jpg": "failed", "empty.png": "failed"}
    errors = [r["error"] for r in document["results"] if r["status"] == "failed"]
    assert any("broken.jpg: is not an image" in e for e in errors)
    assert document["summary"]["ok"] == 2 and document["summary"]["failed"] == 2
    assert (out_dir / "a.jpg").is_file() and (out_dir / "sub" / "b.png").is_file()
    restored = np.asarray(Image.open(out_dir / "sub" / "b.png")).astype(int)
    original = np.asarray(Image.open(inputs / "sub" / "b.png")).astype(int)
    assert restored.shape == original.shape and np.abs(restored - original).mean() > 1
    assert f"error: {inputs / 'broken.jpg'}: is not an image" in err
    # Not a terminal: a plain line per finished file stands in for the progress bar.
    assert f"done {inputs / 'a.jpg'} -> {out_dir / 'a.jpg'} (" in err
    assert f"done {inputs / 'sub' / 'b.png'} -> {out_dir / 'sub' / 'b.png'} (" in err


def test_tables_in_a_log_keep_their_natural_width(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "weights", "list")
    assert code == 0
    rows = [line for line in out.splitlines() if "deblurcli-curves" in line]
    assert len(rows) == 1 and "shipped" in rows[0]  # one line, not wrapped into 20
    assert "8 more photos held out for validation" in rows[0]


def test_existing_outputs_are_skipped_unless_overwrite(
    monkeypatch, capsys, inputs, tmp_path, eval_weights
):
    out_dir = tmp_path / "out"
    args = (str(inputs / "a.jpg"), "-o", str(out_dir), "-w", str(eval_weights))
    assert deblur(monkeypatch, capsys, *args)[0] == 0
    (out_dir / "a.jpg").write_bytes(b"marker")
    code, _, err = deblur(monkeypatch, capsys, *args)
    assert code == 0 and "skipped" in err and (out_dir / "a.jpg").read_bytes() == b"marker"
    assert deblur(monkeypatch, capsys, *args, "--overwrite")[0] == 0
    assert (out_dir / "a.jpg").read_bytes() != b"marker"


def test_format_suffix_and_side_by_side(monkeypatch, capsys, inputs, tmp_path, eval_weights):
    out_dir = tmp_path / "out"
    code, _, _ = deblur(
        monkeypatch,
        capsys,
        str(inputs / "a.jpg"),
        "-o",
        str(out_dir),
        "-w",
        str(eval_weights),
        "--format",
        "png",
        "--suffix",
        "_sharp",
        "--side-by-side",
    )
    assert code == 0
    with Image.open(out_dir / "a_sharp.png") as result:
        assert result.size == (320, 112)
        pair = np.asarray(result.convert("RGB")).astype(int)
    with Image.open(inputs / "a.jpg") as source:
        original = np.asarray(source.convert("RGB")).astype(int)
    code, _, _ = deblur(
        monkeypatch, capsys, str(inputs / "a.jpg"), "-o", str(tmp_path / "plain"),
        "-w", str(eval_weights), "--format", "png",
    )  # fmt: skip
    with Image.open(tmp_path / "plain" / "a.png") as plain:
        restored = np.asarray(plain.convert("RGB")).astype(int)
    assert np.array_equal(pair[:, :160], original)  # the input on the left, untouched
    assert np.array_equal(pair[:, 160:], restored)  # the result on the right
    assert np.abs(restored - original).mean() > 1  # and they differ


def test_tiled_run_equals_untiled_run(monkeypatch, capsys, tmp_path, photos, eval_weights):
    with Image.open(photos[3]) as photo:
        photo.convert("RGB").resize((333, 250)).save(tmp_path / "p.png")
    for tile, folder in (("0", "whole"), ("96", "tiled")):
        code, _, _ = deblur(
            monkeypatch,
            capsys,
            str(tmp_path / "p.png"),
            "-o",
            str(tmp_path / folder),
            "-w",
            str(eval_weights),
            "--tile",
            tile,
            "--tile-overlap",
            "32",
        )
        assert code == 0
    whole = np.asarray(Image.open(tmp_path / "whole" / "p.png")).astype(float)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "p.png")).astype(float)
    mse = ((whole - tiled) ** 2).mean()
    assert mse == 0 or 10 * math.log10(255**2 / mse) >= 50


def test_alpha_16_bit_and_gray_survive_the_command(
    monkeypatch, capsys, tmp_path, rng, eval_weights
):
    rgba = rng.integers(0, 65536, (64, 80, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), rgba)
    gray = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    code, _, _ = deblur(
        monkeypatch,
        capsys,
        str(tmp_path / "deep.png"),
        str(tmp_path / "gray.png"),
        "-o",
        str(tmp_path / "out"),
        "-w",
        str(eval_weights),
    )
    assert code == 0
    deep = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (64, 80, 4)
    np.testing.assert_array_equal(deep[:, :, 3], rgba[:, :, 3])
    with Image.open(tmp_path / "out" / "gray.png") as out:
        assert out.mode == "L"


def test_weights_of_another_backbone_exit_2_naming_the_file(monkeypatch, capsys, inputs, tmp_path):
    weights = save_official_v2(tmp_path / "fpn_mobilenet.h5", "fpn_mobilenet.json")
    code, _, err = deblur(
        monkeypatch,
        capsys,
        str(inputs),
        "-o",
        str(tmp_path / "o"),
        "-w",
        str(weights),
        "--backbone",
        "inception",
    )
    assert code == 2
    assert f"{weights}: holds 'mobilenet' weights but 'inception'" in err
    assert len(err.strip().splitlines()) == 1


def test_output_path_that_is_a_file_is_a_usage_error(
    monkeypatch, capsys, inputs, tmp_path, eval_weights
):
    target = tmp_path / "taken.jpg"
    target.write_bytes(b"x")
    code, _, err = deblur(
        monkeypatch, capsys, str(inputs), "-o", str(target), "-w", str(eval_weights)
    )
    assert code == 2 and "is not a folder" in err


def test_an_input_folder_that_is_the_output_folder_says_so(monkeypatch, capsys, inputs):
    code, _, err = deblur(monkeypatch, capsys, str(inputs), "-o", str(inputs))
    assert code == 2 and f"{inputs}: is inside the output folder" in err


def test_an_unwritable_output_folder_stops_the_run_before_any_image(
    monkeypatch, capsys, inputs, tmp_path, eval_weights
):
    # Tests run as root, where permissions do not stop writes: fail the probe instead,
    # as a read-only file system does.
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("deblurcli.io.output.tempfile.TemporaryFile", read_only)
    started = []
    monkeypatch.setattr(
        "deblurcli.cli.deblur.load_restorer", lambda **kw: started.append(kw) or None
    )
    out = tmp_path / "out"
    code, _, err = deblur(monkeypatch, capsys, str(inputs), "-o", str(out), "-w", str(eval_weights))
    assert code == 2 and not started
    assert f"{out}: cannot be written to (Read-only file system)" in err
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_leaves_no_partial_file_and_a_rerun_resumes(tmp_path, photos, eval_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        with Image.open(photos[i]) as photo:
            photo.convert("RGB").resize((640, 448)).save(folder / f"{i}.png")
    out_dir = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "deblurcli",
        "deblur",
        str(folder),
        "-o",
        str(out_dir),
        "-w",
        str(eval_weights),
        "--tile",
        "128",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell's background jobs ignore SIGINT, and so would the child: restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(out_dir.glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert b"run the same command again" in err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written and all(name.endswith(".png") and not name.startswith(".") for name in written)
    assert len(written) < 6
    for name in written:  # every file present is a complete image
        with Image.open(out_dir / name) as image:
            image.load()
    rerun = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}
    )
    assert rerun.returncode == 0, rerun.stderr
    statuses = [r["status"] for r in json.loads(rerun.stdout)["results"]]
    assert statuses.count("skipped") == len(written) and statuses.count("ok") == 6 - len(written)


def test_model_choices_come_from_the_registry(monkeypatch, capsys, tmp_path, photos):
    from deblurcli.models import list_models

    out = str(tmp_path / "o")
    code, _, stderr = run_cli(monkeypatch, capsys, "deblur", str(photos[0]), "-o", out,
                              "--backbone", "curves")  # fmt: skip
    assert code == 2 and "curves is for deblur enhance" in stderr
    assert ", ".join(list_models("deblur")) in stderr.replace("\n", "")
    code, _, stderr = run_cli(monkeypatch, capsys, "enhance", str(photos[0]), "-o", out,
                              "--model", "mobilenet")  # fmt: skip
    assert code == 2 and "mobilenet is for deblur deblur" in stderr
    code, _, stderr = run_cli(monkeypatch, capsys, "enhance", str(photos[0]), "-o", out,
                              "--model", "nafnet")  # fmt: skip
    assert code == 2 and "unknown --model 'nafnet'" in stderr and "curves" in stderr


def test_four_shard_processes_do_every_file_exactly_once(tmp_path, photos, eval_weights):
    folder = tmp_path / "in"
    for i in range(16):
        (folder / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        with Image.open(photos[i % len(photos)]) as photo:
            photo.convert("RGB").resize((64, 48)).save(folder / f"d{i % 3}" / f"p{i:02d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "deblurcli", "deblur", str(folder), "-o", str(out), "-r"]
    command += ["-w", str(eval_weights), "--json", "--shard"]
    runs = [
        subprocess.Popen([*command, f"{k}/4"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for k in range(1, 5)
    ]
    documents = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    done = [result["input"] for document in documents for result in document["results"]]
    assert sorted(done) == sorted(str(p) for p in folder.rglob("*.png"))  # each exactly once
    assert all(document["summary"]["inputs_found"] == 16 for document in documents)
    assert len(list(out.rglob("*.png"))) == 16
    assert sum(bool(document["results"]) for document in documents) >= 2  # really split


def test_a_heic_photo_comes_back_as_heic_or_as_png_with_a_note(
    monkeypatch, capsys, tmp_path, photos, eval_weights
):
    from deblurcli.io import discovery
    from deblurcli.io.images import _register_heif

    _register_heif()
    folder = tmp_path / "phone"
    folder.mkdir()
    with Image.open(photos[0]) as photo:
        photo.convert("RGB").resize((96, 64)).save(folder / "IMG_0001.heic", quality=90)
    code, _, _ = deblur(
        monkeypatch, capsys, str(folder), "-o", str(tmp_path / "a"), "-w", str(eval_weights)
    )
    assert code == 0
    with Image.open(tmp_path / "a" / "IMG_0001.heic") as result:
        assert result.format == "HEIF" and result.size == (96, 64)
    monkeypatch.setattr(discovery, "can_write", lambda fmt: fmt != "heic")
    code, _, err = deblur(
        monkeypatch, capsys, str(folder), "-o", str(tmp_path / "b"), "-w", str(eval_weights)
    )
    assert code == 0 and (tmp_path / "b" / "IMG_0001.png").is_file()
    assert "no HEIC encoder on this machine: written as PNG" in err


def test_videos_in_a_folder_are_restored_with_their_sound(
    monkeypatch, capsys, tmp_path, photos, eval_weights
):
    from tests.pipelines.test_video import FRAMES, _audio_packets, _frames, make_clip

    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mov")
    with Image.open(photos[0]) as photo:
        photo.convert("RGB").resize((96, 64)).save(folder / "still.jpg")
    out = tmp_path / "out"
    args = (str(folder), "-o", str(out), "-w", str(eval_weights), "--json", "--format", "png")
    code, stdout, _ = deblur(monkeypatch, capsys, *args)
    results = {Path(r["input"]).name: r for r in json.loads(stdout)["results"]}
    assert code == 0 and results["clip.mov"]["status"] == "ok"
    assert f"{FRAMES} frames" in results["clip.mov"]["notes"]
    assert (out / "still.png").is_file() and (out / "clip.mov").is_file()  # a video keeps .mov
    assert _audio_packets(out / "clip.mov") == _audio_packets(folder / "clip.mov")
    changes = [
        np.abs(a.astype(int) - b.astype(int)).mean()
        for a, b in zip(_frames(folder / "clip.mov"), _frames(out / "clip.mov"), strict=True)
    ]
    assert len(changes) == FRAMES and min(changes) > 1  # the network ran on every frame
    code, stdout, _ = deblur(monkeypatch, capsys, *args)
    results = {Path(r["input"]).name: r for r in json.loads(stdout)["results"]}
    assert code == 0 and results["clip.mov"]["status"] == "skipped"


def test_a_video_another_live_run_has_claimed_is_left_to_it(
    monkeypatch, capsys, tmp_path, eval_weights
):
    import os
    import socket

    from tests.pipelines.test_video import make_clip

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    make_clip(folder / "clip.mp4")
    (out / ".clip.mp4.deblurcli-claim").write_text(f"{socket.gethostname()} {os.getppid()}\n")
    args = (str(folder), "-o", str(out), "-w", str(eval_weights), "--json")
    code, stdout, _ = deblur(monkeypatch, capsys, *args)
    (result,) = json.loads(stdout)["results"]
    assert code == 0 and result["status"] == "skipped"
    assert "another run is computing this output" in result["notes"]
    assert not (out / "clip.mp4").exists()
