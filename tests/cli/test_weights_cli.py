"""The real ``deblur weights`` commands, and ``deblur deblur --weights URL`` with the
server there the first time and gone the second."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deblurcli import hub
from tests.cli import run_cli
from tests.conftest import save_official_v2


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, *args)


@pytest.fixture(scope="module")
def weights_file(dsc_weights) -> Path:
    return dsc_weights


def test_list_shows_the_manifest_and_what_is_here(monkeypatch, capsys, tmp_path):
    official = save_official_v2(tmp_path / "fpn_mobilenet.h5", "fpn_mobilenet.json")
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "import", str(official))
    assert code == 0 and "official-train-mode" in stdout
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "list")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "cached" in rows["fpn_mobilenet"] and "244.5 MB" in rows["fpn_inception"]
    assert "BSD" in rows["fpn_inception"]
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "path", "fpn_mobilenet")
    assert code == 0 and stdout.strip().endswith("fpn_mobilenet.safetensors")
    code, _, stderr = cli(monkeypatch, capsys, "weights", "path", "fpn_inception")
    assert code == 1 and "deblur weights download fpn_inception" in stderr
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "show", "fpn_inception")
    shown = json.loads(stdout)
    assert code == 0 and shown["size"] == 244_480_361 and shown["here"] is None
    assert shown["urls"][0].startswith("https://drive.google.com/")
    code, _, stderr = cli(monkeypatch, capsys, "weights", "show", "nope")
    assert code == 2 and "no weights named 'nope'" in stderr


def test_download_by_url_with_a_wrong_sha256_caches_nothing(
    monkeypatch, capsys, http_server, weights_file
):
    url = http_server.add("/dsc.safetensors", weights_file.read_bytes())
    code, _, stderr = cli(monkeypatch, capsys, "weights", "download", url, "--sha256", "ab" * 32)
    assert code == 1 and url in stderr and "nothing was cached" in stderr
    assert not any(hub.cache_dir().glob("*.safetensors*"))
    good = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    code, stdout, _ = cli(
        monkeypatch, capsys, "weights", "download", url, "--sha256", good, "--name", "mine"
    )
    assert code == 0 and "mine:" in stdout
    assert hub.cache_index()["mine"].digest == f"sha256:{good}"


def test_verify_reports_and_removes_corrupt_files(monkeypatch, capsys, http_server, weights_file):
    url = http_server.add("/dsc.safetensors", weights_file.read_bytes())
    assert cli(monkeypatch, capsys, "weights", "download", url, "--name", "mine")[0] == 0
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "verify")
    assert code == 0 and "ok mine" in stdout
    cached = hub.cache_dir() / "dsc.safetensors"
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "verify")
    assert code == 1 and "corrupt mine" in stdout and not cached.exists()
    code, stdout, _ = cli(monkeypatch, capsys, "weights", "remove", "mine")
    assert code == 0 and "mine" not in hub.cache_index()


def test_import_refuses_a_pickle_that_runs_code(monkeypatch, capsys, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"weights": Payload()}, evil)
    code, stdout, stderr = cli(monkeypatch, capsys, "weights", "import", str(evil))
    assert code == 2 and "ran" not in stdout
    assert str(evil) in stderr


def test_deblur_with_a_url_twice_the_second_time_without_the_server(
    monkeypatch, capsys, http_server, weights_file, tmp_path, photos
):
    url = http_server.add("/models/dsc.safetensors", weights_file.read_bytes())
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.resize(cv2.imread(str(photos[0])), (96, 64)))
    code, _, stderr = cli(
        monkeypatch, capsys, "deblur", str(folder), "-o", str(tmp_path / "o1"), "-w", url
    )
    assert code == 0, stderr
    http_server.stop()
    code, _, stderr = cli(
        monkeypatch, capsys, "deblur", str(folder), "-o", str(tmp_path / "o2"), "-w", url
    )
    assert code == 0, stderr
    first = cv2.imread(str(tmp_path / "o1" / "a.png"))
    second = cv2.imread(str(tmp_path / "o2" / "a.png"))
    assert first.shape == (64, 96, 3) and np.array_equal(first, second)
