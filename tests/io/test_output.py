"""One way to replace a file atomically, used by images, weights and checkpoints."""

from __future__ import annotations

import stat

import pytest
import torch

from deblurcli.io.output import atomic_path
from deblurcli.train import checkpoint


def test_success_renames_into_place_with_shared_permissions(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".out.bin.")
        temporary.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failed_checkpoint_save_keeps_the_previous_one_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save_run_state(path, 1, "mobilenet", 20.0, {})

    def disk_full(obj, file):
        file.write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save_run_state(path, 2, "mobilenet", 21.0, {})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
