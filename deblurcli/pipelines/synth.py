"""Blurred/sharp training pairs from sharp photographs, written as a dataset folder.

The pairs themselves are made by :mod:`deblurcli.ops.pairs`; this module plans
them (names, splits, seeds), writes them and keeps the manifest.

Layout::

    DIR/train/blur/NAME.png   DIR/train/sharp/NAME.png   DIR/train/kernels/NAME.npy
    DIR/val/...               (the same, for the validation sources)
    DIR/manifest.jsonl        one JSON object per pair, sorted by name
    DIR/synth-blur.json       the settings of each run that wrote to DIR

Reproducible by construction: every pair draws all its random numbers from
its own generator, seeded from ``(seed, source path, copy number)``, so the
result does not depend on worker count, batching or which other photographs
are in the run, and ``--append`` can regenerate exactly what an interrupted
run left out.
"""

from __future__ import annotations

import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from deblurcli._version import __version__
from deblurcli.errors import DeblurError, InputImageError, OutputError, UsageError
from deblurcli.io.images import Photo, encode_image, read_image, write_atomic
from deblurcli.io.output import check_writable_folder
from deblurcli.ops.pairs import SynthSettings, derived_seed, downscale, synthesize_pairs

MANIFEST = "manifest.jsonl"
SETTINGS = "synth-blur.json"
Mode = Literal["new", "append", "overwrite"]


@dataclass(frozen=True)
class PairPlan:
    """One pair to make: its name, copy number and private seed."""

    name: str
    copy: int
    seed: int


@dataclass(frozen=True)
class SourcePlan:
    """One source photograph, its split, and the pairs to make from it."""

    source: Path
    relative: str
    split: str
    pairs: tuple[PairPlan, ...]


@dataclass
class SynthSummary:
    """What a run did."""

    written: int = 0
    kept: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    split_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def pair_name(relative: str, copy: int) -> str:
    """``holiday/IMG_1.jpg``, copy 2 -> ``holiday__IMG_1-002``."""
    return f"{Path(relative).with_suffix('').as_posix().replace('/', '__')}-{copy:03d}"


def plan_sources(
    sources: Sequence[tuple[Path, str]],
    settings: SynthSettings,
    known_splits: dict[str, str] | None = None,
) -> list[SourcePlan]:
    """Assign each source to train or val and name its pairs.

    The validation sources are the first ``round(val_fraction * n)`` (at least
    one when the fraction is positive and there are two sources or more) in an
    order shuffled by the seed, so a rerun over the same photos assigns them
    the same way. Sources in ``known_splits`` (from an existing manifest) keep
    their split whatever the order says.
    """
    relatives = [rel for _, rel in sources]
    order = sorted(relatives, key=lambda rel: derived_seed(settings.seed, "split", rel))
    n_val = 0
    if settings.val_fraction > 0 and len(order) >= 2:
        n_val = min(len(order) - 1, max(1, round(settings.val_fraction * len(order))))
    splits = {rel: ("val" if i < n_val else "train") for i, rel in enumerate(order)}
    splits.update({rel: split for rel, split in (known_splits or {}).items() if rel in splits})
    plans = []
    for source, rel in sources:
        pairs = tuple(
            PairPlan(pair_name(rel, copy), copy, derived_seed(settings.seed, rel, copy))
            for copy in range(settings.per_image)
        )
        plans.append(SourcePlan(source, rel, splits[rel], pairs))
    return plans


def pair_paths(split: str, name: str) -> dict[str, str]:
    """Dataset-relative paths of a pair's three files."""
    return {
        "blur": f"{split}/blur/{name}.png",
        "sharp": f"{split}/sharp/{name}.png",
        "kernel": f"{split}/kernels/{name}.npy",
    }


def _png(pixels: np.ndarray) -> bytes:
    return encode_image(Photo(pixels=pixels, alpha=None, format="png"), "png", fast_png=True)


def _npy(kernel: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, kernel, allow_pickle=False)
    return buffer.getvalue()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded: how element-wise kernels split work between
    threads changes the last bit of some results (vectorised and scalar ``pow``
    differ), which would make datasets depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def render_source(plan: SourcePlan, settings: SynthSettings, out_dir: Path) -> list[dict]:
    """Make and write every pair of one source photograph; returns their manifest records.

    The bytes written depend only on the plan and settings when torch runs
    single-threaded, as :func:`build_dataset` arranges (it uses one thread
    per worker instead).

    Raises:
        DeblurError: the photo cannot be read, is smaller than the crop, or a
            file cannot be written.
    """
    pixels = downscale(read_image(plan.source).pixels, settings.max_side)
    height, width = pixels.shape[:2]
    if settings.crop is not None and (width < settings.crop[0] or height < settings.crop[1]):
        raise InputImageError(
            f"is {width}×{height} px{' after --max-side' if settings.max_side else ''}, "
            f"smaller than the {settings.crop[0]}x{settings.crop[1]} crop: "
            "use a smaller --crop or leave this photo out",
            plan.source,
        )
    records = []
    made = synthesize_pairs(pixels, [pair.seed for pair in plan.pairs], settings)
    for pair, result in zip(plan.pairs, made, strict=True):
        draws, kernel, box, values = result.draws, result.kernel, result.box, result.values
        blurred_pixels = result.blurred
        x, y, w, h = box
        paths = pair_paths(plan.split, pair.name)
        write_atomic(out_dir / paths["blur"], _png(blurred_pixels))
        write_atomic(out_dir / paths["sharp"], _png(result.sharp))
        write_atomic(out_dir / paths["kernel"], _npy(kernel.float().numpy()))
        records.append(
            {
                "name": pair.name,
                "split": plan.split,
                **paths,
                "source": plan.relative,
                "copy": pair.copy,
                "size": [width, height],
                "crop": [x, y, w, h],
                "kernel_type": draws.kernel_type,
                "kernel_params": draws.kernel_params,
                "kernel_size": kernel.shape[-1],
                "linear_light": settings.synthesis.linear_light,
                "saturation_gain": values["saturation_gain"],
                "noise": None
                if values["shot_noise"] is None
                else {"shot": values["shot_noise"], "read": values["read_noise"]},
                "jpeg_quality": values["jpeg_quality"],
                "bit_depth": 8 * pixels.dtype.itemsize,
                "seed": pair.seed,
            }
        )
    return records


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """Records of an existing dataset by pair name ({} when there is none).

    Raises:
        UsageError: the manifest is not valid JSON lines.
    """
    path = out_dir / MANIFEST
    if not path.exists():
        return {}
    records = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[record["name"]] = record
        except (ValueError, KeyError, TypeError):
            raise UsageError(
                f"line {number} is not a pair record: fix or delete the manifest", path
            ) from None
    return records


def _is_complete(out_dir: Path, record: dict) -> bool:
    return all((out_dir / record[kind]).is_file() for kind in ("blur", "sharp", "kernel"))


def _write_manifest(out_dir: Path, records: dict[str, dict]) -> None:
    lines = [json.dumps(records[name]) + "\n" for name in sorted(records)]
    write_atomic(out_dir / MANIFEST, "".join(lines).encode())


def _write_settings(out_dir: Path, settings: SynthSettings, mode: Mode) -> None:
    path = out_dir / SETTINGS
    runs = []
    if mode == "append" and path.exists():
        try:
            runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
        except ValueError:
            runs = []
    runs.append({"deblurcli": __version__, **settings.as_json()})
    write_atomic(path, (json.dumps({"runs": runs}, indent=2) + "\n").encode())


def check_output_folder(out_dir: Path, mode: Mode) -> None:
    """Refuse a file, an unwritable folder (:func:`~deblurcli.io.output.check_writable_folder`)
    or a non-empty folder unless appending or overwriting (usage errors)."""
    check_writable_folder(out_dir)
    if mode == "new" and out_dir.is_dir() and any(out_dir.iterdir()):
        raise UsageError(
            "is not empty: pass --append to add pairs to it, or --overwrite to replace them",
            out_dir,
        )


def _run_tasks(
    plans: Sequence[SourcePlan], settings: SynthSettings, out_dir: Path, workers: int
) -> Iterator[tuple[SourcePlan, list[dict] | DeblurError]]:
    """Render sources on ``workers`` threads, yielding results in plan order.

    Threads rather than processes: decoding, the FFTs and PNG encoding all
    release the GIL, and threads start instantly. At most two sources per
    worker are in flight, so memory does not grow with the number of photos.
    """

    def render(plan: SourcePlan) -> list[dict] | DeblurError:
        try:
            return render_source(plan, settings, out_dir)
        except DeblurError as exc:
            return exc

    with _one_thread(), ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque[tuple[SourcePlan, Future]] = deque()
        for plan in plans:
            pending.append((plan, pool.submit(render, plan)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def build_dataset(
    sources: Sequence[tuple[Path, str]],
    out_dir: Path,
    settings: SynthSettings,
    *,
    mode: Mode = "new",
    workers: int = 1,
    on_source: Callable[[int, str | None], None] | None = None,
) -> SynthSummary:
    """Write the pairs of every source into ``out_dir`` and its manifest.

    Args:
        sources: (photo path, its relative path) pairs; the relative path names the pairs.
        out_dir: dataset folder.
        settings: what pairs to make.
        mode: ``new`` (folder must be empty), ``append`` (keep finished pairs,
            make the missing ones) or ``overwrite`` (remake everything, drop
            the files of pairs the new run does not make).
        workers: threads, each rendering one source at a time.
        on_source: called after each source with (pairs finished, error message or None).

    Returns:
        Counts of written and kept pairs, failures, pairs per split, seconds.
    """
    started = time.perf_counter()
    check_output_folder(out_dir, mode)
    old = read_manifest(out_dir) if mode != "new" else {}
    known_splits = {r["source"]: r["split"] for r in old.values()} if mode == "append" else {}
    plans = plan_sources(sources, settings, known_splits)
    records = dict(old) if mode == "append" else {}
    summary = SynthSummary()
    todo = []
    for plan in plans:
        missing = [
            p
            for p in plan.pairs
            if not (p.name in records and _is_complete(out_dir, records[p.name]))
        ]
        summary.kept += len(plan.pairs) - len(missing)
        if missing:
            todo.append(replace(plan, pairs=tuple(missing)))
        elif on_source:
            on_source(len(plan.pairs), None)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the dataset folder ({exc.strerror})", out_dir) from None
    try:
        for plan, result in _run_tasks(todo, settings, out_dir, workers):
            if isinstance(result, DeblurError):
                summary.failures.append((str(plan.source), str(result)))
                if on_source:
                    on_source(len(plan.pairs), str(result))
                continue
            records.update({r["name"]: r for r in result})
            summary.written += len(result)
            if on_source:
                on_source(len(result), None)
    finally:
        if mode == "overwrite":
            planned = {pair.name for plan in plans for pair in plan.pairs}
            _remove_stale(out_dir, old, planned)
        _write_manifest(out_dir, records)
        _write_settings(out_dir, settings, mode)
    for record in records.values():
        summary.split_counts[record["split"]] = summary.split_counts.get(record["split"], 0) + 1
    summary.seconds = time.perf_counter() - started
    return summary


def _remove_stale(out_dir: Path, old: dict[str, dict], planned: set[str]) -> None:
    """Delete the files of old pairs that the new run does not make."""
    for name, record in old.items():
        if name in planned:
            continue
        for kind in ("blur", "sharp", "kernel"):
            (out_dir / record[kind]).unlink(missing_ok=True)
