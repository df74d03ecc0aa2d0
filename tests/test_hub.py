"""Weights by name: manifest, cache, downloads from a loopback server, imports, verify."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from deblurcli import hub
from deblurcli.download import file_digest
from deblurcli.errors import DownloadError, WeightsError
from deblurcli.models import list_models
from deblurcli.models._builder import load_model
from deblurcli.models.blur_detector import ARCHITECTURE
from tests.conftest import save_official_v2

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights_bytes(dsc_weights) -> bytes:
    return dsc_weights.read_bytes()


@pytest.fixture
def served(http_server, weights_bytes, tmp_path, monkeypatch) -> hub.WeightsEntry:
    """A manifest entry whose file is served by the loopback server."""
    url = http_server.add("/dsc.safetensors", weights_bytes)
    digest_file = tmp_path / "copy"
    digest_file.write_bytes(weights_bytes)
    entry = hub.WeightsEntry(
        name="test-dsc",
        architecture="mobilenet-dsc",
        file="test-dsc.safetensors",
        urls=(url,),
        digest=file_digest(digest_file),
        size=len(weights_bytes),
    )
    real_manifest = hub.manifest()
    monkeypatch.setattr(hub.store, "manifest", lambda: {**real_manifest, entry.name: entry})
    return entry


def test_shipped_manifest_entries_are_complete_and_name_registered_models():
    entries = hub.manifest()
    assert {"fpn_mobilenet", "fpn_inception"} <= set(entries)
    for entry in entries.values():
        assert entry.architecture in (*list_models(), ARCHITECTURE)  # restorers, the detector
        assert entry.size and entry.license and entry.origin
        assert entry.urls or (hub.shipped_dir() / entry.file).is_file()  # fetched or shipped
        assert entry.digest.split(":")[0] in ("sha256", "sha384")
        assert len(entry.digest.split(":")[1]) in (64, 96)
        assert entry.normalization in (hub.OFFICIAL, hub.EVAL_MODE)
    shipped = {p.name for p in hub.shipped_dir().glob("*.safetensors")}
    assert shipped <= {e.file for e in entries.values()}  # every shipped file has an entry
    official = entries["fpn_inception"]
    assert official.size == 244_480_361 and official.digest.startswith("sha256:0ab85a04")


def test_official_files_have_mirrors_beyond_google_drive():
    for name in ("fpn_mobilenet", "fpn_inception"):
        urls = hub.manifest()[name].urls
        assert len(urls) >= 2 and all(url.startswith("https://") for url in urls)
        assert any("drive.google.com" not in url for url in urls)


def test_mirrors_fall_back_past_a_404_a_web_page_and_a_wrong_file(
    http_server, served, weights_bytes, monkeypatch
):
    dead = http_server.add("/gone", b"", 404)
    page = http_server.add("/page", b"<html>quota exceeded</html>", "html")
    wrong = http_server.add("/wrong", weights_bytes[::-1])
    good = served.urls[0]
    entry = replace(served, urls=(dead, page, wrong, good))
    monkeypatch.setattr(hub.store, "manifest", lambda: {entry.name: entry})
    path = hub.resolve_weights(entry.name)
    assert path.read_bytes() == weights_bytes
    hub.location(entry).unlink()
    failing = replace(entry, urls=(dead, page, wrong))
    monkeypatch.setattr(hub.store, "manifest", lambda: {failing.name: failing})
    with pytest.raises(DownloadError) as error:
        hub.resolve_weights(failing.name)
    assert all(url in str(error.value) for url in (dead, page, wrong))


def test_the_wheel_packages_every_subpackage_and_the_weights_folder():
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib needs Python 3.11)
    listed = re.search(r"^packages = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "deblurcli").rglob("__init__.py")
    }
    assert on_disk | {"deblurcli.weights"} == set(re.findall(r'"([\w.]+)"', listed))
    assert 'package-dir = { "deblurcli.weights" = "weights" }' in pyproject
    assert '"deblurcli.weights" = ["manifest.json", "*.safetensors"]' in pyproject


def test_cache_root_follows_deblurcli_home(private_weights_cache):
    assert hub.cache_dir() == private_weights_cache / "weights"


def test_a_name_downloads_once_then_comes_from_the_cache(http_server, served):
    path = hub.resolve_weights("test-dsc")
    assert path == hub.cache_dir() / "test-dsc.safetensors"
    assert hub.resolve_weights("test-dsc.safetensors") == path  # by file name too
    assert hub.resolve_weights(served.urls[0]) == path  # and by its URL
    assert len(http_server.routes["/dsc.safetensors"].requests) == 1
    _, info = load_model(path)
    assert info.architecture == "mobilenet-dsc"


def test_offline_a_missing_name_says_what_to_fetch_by_hand(served, monkeypatch):
    monkeypatch.setenv("DEBLURCLI_OFFLINE", "1")
    with pytest.raises(DownloadError) as error:
        hub.resolve_weights("test-dsc")
    message = str(error.value)
    assert served.urls[0] in message and "deblur weights import" in message
    assert "--name test-dsc" in message


def test_verify_removes_a_corrupt_file_and_the_next_use_downloads_again(http_server, served):
    path = hub.resolve_weights("test-dsc")
    path.write_bytes(b"x" * served.size)  # same size, wrong bytes
    results = {r.entry.name: r for r in hub.verify()}
    assert not results["test-dsc"].ok and "expected" in results["test-dsc"].problem
    assert not path.exists()
    assert hub.resolve_weights("test-dsc") == path
    assert file_digest(path) == served.digest
    assert len(http_server.routes["/dsc.safetensors"].requests) == 2
    assert all(r.ok for r in hub.verify())


def test_an_unknown_url_is_fetched_once_recorded_and_reused(http_server, weights_bytes):
    url = http_server.add("/files/mine.safetensors", weights_bytes)
    path = hub.resolve_weights(url)
    index = json.loads((hub.cache_dir() / "index.json").read_text())["weights"]
    assert [(e["name"], e["architecture"], e["urls"]) for e in index] == [
        ("mine", "mobilenet-dsc", [url])
    ]
    assert index[0]["digest"] == file_digest(path)
    http_server.stop()
    assert hub.resolve_weights(url) == path  # the server is gone: the cache answers
    assert hub.resolve_weights("mine") == path


def test_a_url_that_is_not_weights_is_not_kept(http_server):
    url = http_server.add("/junk.bin", b"not weights at all" * 100)
    with pytest.raises(WeightsError):
        hub.resolve_weights(url)
    assert not (hub.cache_dir() / "junk.bin").exists()
    assert hub.cache_index() == {}


def test_import_of_an_official_checkpoint_keeps_its_semantics(tmp_path):
    official = save_official_v2(tmp_path / "fpn_mobilenet.h5", "fpn_mobilenet.json")
    entry = hub.import_weights(official, "fpn_mobilenet")
    assert entry.architecture == "mobilenet" and entry.normalization == hub.OFFICIAL
    stored = hub.cache_dir() / "fpn_mobilenet.safetensors"
    assert entry.digest == file_digest(stored)
    assert hub.resolve_weights("fpn_mobilenet") == stored  # the manifest name finds the import
    original, original_info = load_model(official)
    imported, imported_info = load_model(stored)
    assert imported_info.official and imported_info.statistics == original_info.statistics
    assert imported.padding == original.padding
    image = torch.rand(1, 3, 70, 90) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(imported(image), original(image))


def test_import_refuses_a_manifest_name_of_another_architecture(tmp_path):
    official = save_official_v2(tmp_path / "mobile.h5", "fpn_mobilenet.json")
    with pytest.raises(WeightsError, match="choose another --name"):
        hub.import_weights(official, "fpn_inception")


def test_remove_deletes_the_file_and_the_record(http_server, weights_bytes):
    url = http_server.add("/files/mine.safetensors", weights_bytes)
    path = hub.resolve_weights(url)
    assert hub.remove("mine") == [path]
    assert not path.exists() and hub.cache_index() == {}
    with pytest.raises(WeightsError, match="no weights named"):
        hub.remove("mine")


def test_unknown_values_list_the_known_names():
    with pytest.raises(WeightsError, match="fpn_inception, fpn_mobilenet"):
        hub.resolve_weights("nonsense")


def test_plain_http_from_another_host_needs_a_hash(monkeypatch):
    monkeypatch.delenv("DEBLURCLI_OFFLINE")  # refused before any connection is tried
    url = "http://weights.example/model.safetensors"
    with pytest.raises(WeightsError, match="plain http can be altered on the way"):
        hub.resolve_weights(url)

    def fetch(target, on_progress):  # with a hash, the download is tried
        raise DownloadError(f"tried {target.urls[0]}")

    monkeypatch.setattr(hub.resolve, "fetch", fetch)
    with pytest.raises(DownloadError, match=f"tried {url}"):
        hub.download_url(url, "sha256:" + "0" * 64)


def test_no_network_gives_the_url_and_the_import_command(served, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/fpn.h5"
    unreachable = hub.WeightsEntry(**{**served.as_json(), "urls": (closed,), "name": "gone"})
    real_manifest = hub.manifest()
    monkeypatch.setattr(hub.store, "manifest", lambda: {**real_manifest, "gone": unreachable})
    with pytest.raises(DownloadError) as error:
        hub.resolve_weights("gone")
    message = str(error.value)
    assert "connection failed" in message and closed in message
    assert "deblur weights import" in message and "--name gone" in message
