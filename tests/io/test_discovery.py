"""Inputs -> work items: files, folders, globs, mirrored outputs, clashes, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deblurcli.io import discovery
from deblurcli.io.discovery import discover


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folders_mirror_relative_paths_and_skip_other_files(tmp_path):
    src = tmp_path / "shots"
    _touch(
        src / "a.jpg", src / "b.PNG", src / "notes.txt", src / ".hidden.jpg", src / "day2" / "c.tif"
    )
    out = tmp_path / "out"
    flat = discover([str(src)], out)
    assert [i.output for i in flat] == [out / "a.jpg", out / "b.PNG"]
    deep = discover([str(src)], out, recursive=True)
    assert [i.output for i in deep] == [out / "a.jpg", out / "b.PNG", out / "day2" / "c.tif"]


def test_format_and_suffix_shape_output_names(tmp_path):
    _touch(tmp_path / "in" / "a.jpeg")
    items = discover([str(tmp_path / "in")], tmp_path / "o", fmt="png", suffix="_sharp")
    assert items[0].output == tmp_path / "o" / "a_sharp.png"


def test_globs_are_expanded_relative_to_their_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(Path("p/x/1.jpg"), Path("p/y/2.jpg"), Path("p/y/3.png"))
    items = discover(["p/**/*.jpg"], Path("out"))
    assert [i.output for i in items] == [Path("out/x/1.jpg"), Path("out/y/2.jpg")]
    (missing,) = discover(["p/*.webp"], Path("out"))
    assert missing.error is not None and "no files match" in str(missing.error)


def test_missing_inputs_clashes_and_duplicates(tmp_path):
    _touch(tmp_path / "a" / "same.jpg", tmp_path / "b" / "same.jpg")
    items = discover(
        [
            str(tmp_path / "nope.jpg"),
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            str(tmp_path / "a" / "same.jpg"),
        ],
        tmp_path / "out",
    )
    assert "does not exist" in str(items[0].error)
    assert items[1].error is None
    assert "would write" in str(items[2].error)
    assert len(items) == 3  # a/same.jpg named twice is processed once


def test_outputs_inside_an_input_folder_are_not_inputs(tmp_path):
    _touch(tmp_path / "a.jpg", tmp_path / "sharp" / "a.jpg")
    items = discover([str(tmp_path)], tmp_path / "sharp", recursive=True)
    assert [i.source for i in items] == [tmp_path / "a.jpg"]


def test_an_unreadable_folder_is_an_error_item(tmp_path, monkeypatch):
    # Tests run as root in CI, where chmod cannot make a folder unreadable.
    locked = tmp_path / "locked"
    locked.mkdir()

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(discovery.os, "scandir", denied)
    (item,) = discover([str(locked)], tmp_path / "out")
    assert "cannot be listed (Permission denied)" in str(item.error)
    assert str(locked) in str(item.error)


def test_unreadable_subfolder_in_recursive_walk(tmp_path, monkeypatch):
    _touch(tmp_path / "in" / "ok.jpg")
    real_walk = os.walk

    def walk(top, onerror=None):
        onerror(PermissionError(13, "Permission denied", str(Path(top) / "private")))
        yield from real_walk(top)

    monkeypatch.setattr(discovery.os, "walk", walk)
    items = discover([str(tmp_path / "in")], tmp_path / "out", recursive=True)
    assert [i.error is None for i in items] == [True, False]


@pytest.mark.parametrize("recursive", [False, True])
def test_a_symlink_loop_is_one_warning_and_the_rest_is_processed(tmp_path, recursive):
    folder = tmp_path / "in"
    _touch(folder / "a.jpg", folder / "sub" / "b.png")
    (folder / "x1").symlink_to("x2")
    (folder / "x2").symlink_to("x1")
    (folder / "gone.jpg").symlink_to("nowhere.jpg")
    skipped = []
    items = discover([str(folder)], tmp_path / "out", recursive=recursive,
                     on_skip=lambda path, reason: skipped.append((path.name, reason)))  # fmt: skip
    sources = [i.source.relative_to(folder).as_posix() for i in items if i.error is None]
    assert sources == (["a.jpg", "sub/b.png"] if recursive else ["a.jpg"])
    reasons = dict(skipped)
    assert set(reasons) == {"x1", "x2", "gone.jpg"}
    assert "symbolic link loop" in reasons["x1"] and "broken symbolic link" in reasons["gone.jpg"]


def test_notes_and_sidecars_are_skipped_quietly_other_files_with_a_warning(tmp_path):
    folder = tmp_path / "in"
    _touch(folder / "a.jpg", folder / "README.md", folder / "notes.txt", folder / "a.xmp",
           folder / "meta.json", folder / ".DS_Store", folder / "clip.mov")  # fmt: skip
    skipped = []
    items = discover([str(folder)], tmp_path / "out",
                     on_skip=lambda path, reason: skipped.append((path.name, reason)))  # fmt: skip
    assert [i.source.name for i in items] == ["a.jpg"]
    assert skipped == [("clip.mov", discovery.NOT_AN_IMAGE)]


def test_one_listing_rule_for_deblur_score_and_train(tmp_path):
    from deblurcli.pipelines.scoring import _image_files
    from deblurcli.train.data import find_data

    for name in ("a.png", "sub/b.jpg", ".hidden.png", ".thumbnails/c.png", "sub/.cache/d.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo")
    wanted = [tmp_path / "a.png", tmp_path / "sub" / "b.jpg"]
    assert discovery.list_images(tmp_path) == wanted
    items = discover([str(tmp_path)], tmp_path / "out", recursive=True)
    assert [item.source for item in items] == wanted
    assert list(_image_files(tmp_path).values()) == wanted
    assert find_data(tmp_path).sharp_only == wanted


@pytest.mark.parametrize("count", [1, 3, 8])
def test_shards_split_paths_once_each_and_stably(count):
    paths = [Path(f"day{i % 4}/IMG_{i:04d}.jpg") for i in range(200)]
    owners = [[k for k in range(1, count + 1) if discovery.Shard(k, count).holds(p)] for p in paths]
    assert all(len(owner) == 1 for owner in owners)
    sizes = [sum(owner == [k] for owner in owners) for k in range(1, count + 1)]
    assert min(sizes) > 200 / count / 2  # roughly even
    # SHA-256 of the POSIX path, pinned: the same split on every machine and Python.
    assert discovery.Shard(1, 8).holds(Path("day1/IMG_0001.jpg"))


@pytest.mark.parametrize("text", ["3", "0/4", "5/4", "a/b", "1/2/3"])
def test_bad_shards_are_refused_with_the_form_to_use(text):
    with pytest.raises(ValueError, match="--shard"):
        discovery.Shard.parse(text)


def test_read_only_commands_get_items_without_outputs(tmp_path):
    src = tmp_path / "shots"
    _touch(src / "a.jpg", src / "same" / "a.jpg", src / "b.png")
    inputs = [str(src), str(src / "b.png"), str(tmp_path / "gone.jpg")]
    items = discover(inputs, None, recursive=True)
    assert [(i.relative.as_posix(), i.output, i.error is None) for i in items] == [
        ("a.jpg", None, True),
        ("b.png", None, True),
        ("same/a.jpg", None, True),  # no output, so no clash with a.jpg
        ("gone.jpg", None, False),  # b.png, named twice, comes once; a missing file fails
    ]
