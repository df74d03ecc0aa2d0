"""Downloads against a real HTTP server on 127.0.0.1: hashes, resume, errors, time-outs,
mirrors, Google Drive's confirmation page, concurrent fetches and unwritable caches."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deblurcli import download
from deblurcli.download import Target, fetch, file_digest
from deblurcli.errors import DownloadError

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
SHA256 = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
SHA384 = "sha384:" + hashlib.sha384(PAYLOAD).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks")


def test_a_good_download_is_verified_and_placed(http_server, tmp_path):
    url = http_server.add("/w.bin", PAYLOAD)
    seen = []
    digest = fetch(
        Target([url], tmp_path / "w.bin", SHA384, len(PAYLOAD)),
        lambda done, total: seen.append((done, total)),
    )
    assert digest == SHA384
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["w.bin"]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    fetch(Target([url], tmp_path / "w.bin", SHA384, len(PAYLOAD)))  # already there
    assert len(http_server.routes["/w.bin"].requests) == 1


def test_a_wrong_hash_leaves_nothing_behind(http_server, tmp_path):
    url = http_server.add("/w.bin", PAYLOAD)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DownloadError, match="expected") as error:
        fetch(Target([url], tmp_path / "w.bin", wrong))
    assert url in str(error.value) and error.value.exit_code == 1
    assert _leftovers(tmp_path) == []


def test_a_dropped_connection_is_resumed_with_a_range_request(http_server, tmp_path):
    url = http_server.add("/w.bin", PAYLOAD, "drop-once")
    assert fetch(Target([url], tmp_path / "w.bin", SHA256, len(PAYLOAD))) == SHA256
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    requests = http_server.routes["/w.bin"].requests
    assert requests[0]["range"] is None
    resumed_at = int(requests[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(PAYLOAD) // 2  # what had arrived, in whole chunks


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (500, download.RETRIES + 1)])
def test_http_errors_name_the_url(http_server, tmp_path, status, attempts):
    url = http_server.add("/w.bin", PAYLOAD, status)
    with pytest.raises(DownloadError, match=f"HTTP {status}") as error:
        fetch(Target([url], tmp_path / "w.bin", SHA256))
    assert url in str(error.value)
    assert len(http_server.routes["/w.bin"].requests) == attempts  # 404 is not retried
    assert not (tmp_path / "w.bin").exists()


def test_a_stalled_server_times_out_with_a_clear_error(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURCLI_TIMEOUT", "0.3")
    monkeypatch.setattr(download, "RETRIES", 1)
    url = http_server.add("/w.bin", PAYLOAD, "stall")
    with pytest.raises(DownloadError, match="gave up after 2 attempts") as error:
        fetch(Target([url], tmp_path / "w.bin", SHA256))
    assert url in str(error.value)
    assert "timed out" in str(error.value) or "dropped" in str(error.value)
    assert not (tmp_path / "w.bin").exists()


def test_mirrors_are_tried_in_order(http_server, tmp_path):
    dead = http_server.add("/gone.bin", b"", 404)
    good = http_server.add("/w.bin", PAYLOAD)
    assert fetch(Target([dead, good], tmp_path / "w.bin", SHA256)) == SHA256


@pytest.mark.parametrize("wrong", [PAYLOAD[:-1] + b"?", PAYLOAD[:1000]], ids=["hash", "size"])
def test_a_mirror_with_another_file_is_skipped_for_the_next(http_server, tmp_path, wrong):
    other = http_server.add("/other.bin", wrong)
    good = http_server.add("/w.bin", PAYLOAD)
    target = Target([other, good], tmp_path / "w.bin", SHA256, len(PAYLOAD))
    assert fetch(target) == SHA256
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["w.bin"]


def test_the_hash_is_taken_while_streaming_not_by_reading_the_file_again(
    http_server, tmp_path, monkeypatch
):
    url = http_server.add("/w.bin", PAYLOAD, "drop-once")  # resumed: kept bytes hashed first
    reads = []
    monkeypatch.setattr(download, "file_digest", lambda *args: reads.append(args) or "")
    assert fetch(Target([url], tmp_path / "w.bin", SHA256, len(PAYLOAD))) == SHA256
    assert reads == []


def test_google_drive_confirmation_page_is_followed(http_server, tmp_path):
    url = http_server.add("/uc", PAYLOAD, "html-confirm")
    assert fetch(Target([url + "?export=download&id=X"], tmp_path / "w.bin", SHA256)) == SHA256
    queries = [r["query"] for r in http_server.routes["/uc"].requests]
    assert "confirm=t" not in queries[0] and "confirm=t&uuid=abc-123" in queries[1]


def test_a_web_page_instead_of_the_file_is_an_error(http_server, tmp_path):
    url = http_server.add("/quota", PAYLOAD, "html")
    with pytest.raises(DownloadError, match="web page, not the file") as error:
        fetch(Target([url], tmp_path / "w.bin", SHA256, len(PAYLOAD)))
    assert url in str(error.value)
    assert len(http_server.routes["/quota"].requests) == 1  # not retried: it will not change
    assert _leftovers(tmp_path) == []


def test_two_processes_fetching_one_file_end_with_one_good_copy(http_server, tmp_path):
    url = http_server.add("/w.bin", PAYLOAD, "slow")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from deblurcli.download import Target, fetch
        print(fetch(Target([{url!r}], Path({str(tmp_path / "w.bin")!r}), {SHA256!r})))
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert outputs == [SHA256, SHA256]
    assert file_digest(tmp_path / "w.bin") == SHA256
    assert _leftovers(tmp_path) == ["w.bin"]
    assert len(http_server.routes["/w.bin"].requests) == 1  # the second waited, then reused


def test_an_unwritable_cache_is_a_clear_error(http_server, tmp_path):
    url = http_server.add("/w.bin", PAYLOAD)
    if os.geteuid() == 0:  # root writes through permissions: put a file where the folder goes
        (tmp_path / "cache").write_text("a file, not a folder")
        dest = tmp_path / "cache" / "weights" / "w.bin"
    else:
        (tmp_path / "cache").mkdir(mode=0o500)
        dest = tmp_path / "cache" / "w.bin"
    with pytest.raises(DownloadError, match="DEBLURCLI_HOME to a writable folder"):
        fetch(Target([url], dest, SHA256))
