"""Blurred/sharp training pairs from sharp photographs, written as a dataset folder.

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

import hashlib
import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from deblurcli._version import __version__
from deblurcli.errors import DeblurError, InputImageError, OutputError, UsageError
from deblurcli.io.images import Photo, encode_image, read_image, write_atomic
from deblurcli.io.output import check_writable_folder
from deblurcli.ops.blur import (
    ShakeDraws,
    defocus_kernels,
    exposure_weights,
    gaussian_kernels,
    linear_kernels,
    rasterize_points,
    shake_trajectories,
)
from deblurcli.ops.color import (
    linear_to_srgb,
    pixels_to_linear,
    pixels_to_tensor,
    tensor_to_pixels,
)
from deblurcli.ops.synthesis import SynthesisConfig, SynthesisDraws, camera_blur, jpeg_roundtrip

KERNEL_TYPES = ("shake", "linear", "defocus", "gaussian")
MANIFEST = "manifest.jsonl"
SETTINGS = "synth-blur.json"
Mode = Literal["new", "append", "overwrite"]


@dataclass(frozen=True)
class Range:
    """A value drawn uniformly from [low, high]; low == high is a fixed value."""

    low: float
    high: float

    @staticmethod
    def parse(text: str) -> Range:
        """``"5"`` or ``"5-30"`` (also ``"0.1-1"``) -> Range.

        Raises:
            ValueError: not one number or two numbers joined by ``-``, or low > high.
        """
        parts = text.strip().split("-")
        if len(parts) not in (1, 2) or not all(parts):
            raise ValueError(f"expected a number or LOW-HIGH, got {text!r}")
        low, high = float(parts[0]), float(parts[-1])
        if low > high:
            raise ValueError(f"{text!r}: the low end is above the high end")
        return Range(low, high)

    def at(self, u: float) -> float:
        """The value at quantile ``u`` in [0, 1)."""
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class KernelOptions:
    """Which kernels to draw and the ranges of their parameters.

    Attributes:
        types: kernel types, one chosen uniformly per pair.
        max_len: camera-shake path length in pixels.
        expl: camera-shake intensity (DeblurGAN draws 0.003 to 0.01).
        exposure: fraction of the shake trajectory exposed.
        iterations: camera-shake trajectory points.
        length: linear-motion length in pixels.
        angle: linear-motion angle in degrees.
        radius: defocus disc radius in pixels.
        sigma: Gaussian standard deviation in pixels.
    """

    types: tuple[str, ...] = ("shake",)
    max_len: Range = Range(60.0, 60.0)
    expl: Range = Range(0.003, 0.01)
    exposure: Range = Range(0.1, 1.0)
    iterations: int = 2000
    length: Range = Range(5.0, 30.0)
    angle: Range = Range(0.0, 180.0)
    radius: Range = Range(1.0, 6.0)
    sigma: Range = Range(0.5, 3.0)


@dataclass(frozen=True)
class SynthSettings:
    """Everything that decides the pairs (and nothing that only decides speed)."""

    per_image: int = 1
    seed: int = 0
    crop: tuple[int, int] | None = None  # (width, height)
    max_side: int | None = None  # photos are first downscaled to this longer side
    val_fraction: float = 0.0
    kernels: KernelOptions = field(default_factory=KernelOptions)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def as_json(self) -> dict:
        """Plain-JSON form for ``synth-blur.json``."""
        return json.loads(json.dumps(asdict(self)))


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


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (run seed, photo, copy, epoch...): SHA-256 of their
    text, so it is the same on every machine, process and Python version."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


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


@dataclass(frozen=True)
class _PairDraws:
    kernel_type: str
    kernel_params: dict[str, float]
    shake: ShakeDraws | None
    crop_u: tuple[float, float]
    synthesis: SynthesisDraws
    generator: torch.Generator


def _kernel_params(kind: str, options: KernelOptions, u: Sequence[float]) -> dict[str, float]:
    if kind == "shake":
        return {
            "max_len": options.max_len.at(u[0]),
            "expl": options.expl.at(u[1]),
            "exposure": options.exposure.at(u[2]),
            "iterations": options.iterations,
        }
    if kind == "linear":
        return {"length": options.length.at(u[0]), "angle": options.angle.at(u[1])}
    if kind == "defocus":
        return {"radius": options.radius.at(u[0])}
    return {"sigma": options.sigma.at(u[0])}


def _draw_pair(seed: int, settings: SynthSettings) -> _PairDraws:
    """All of a pair's random numbers except the noise, in a fixed order."""
    g = torch.Generator().manual_seed(seed)
    options = settings.kernels
    u = torch.rand(4, dtype=torch.float64, generator=g).tolist()
    kernel_type = options.types[min(int(u[0] * len(options.types)), len(options.types) - 1)]
    params = _kernel_params(kernel_type, options, u[1:])
    shake = ShakeDraws.sample(1, options.iterations, g)  # drawn always: fixed stream layout
    crop_u = tuple(torch.rand(2, dtype=torch.float64, generator=g).tolist())
    synthesis = SynthesisDraws.sample(1, settings.synthesis, g)
    return _PairDraws(
        kernel_type, params, shake if kernel_type == "shake" else None, crop_u, synthesis, g
    )


def _kernels(draws: Sequence[_PairDraws]) -> list[torch.Tensor]:
    """(K, K) float64 kernels, one per pair; shake trajectories integrated as one batch."""
    shaken = [d for d in draws if d.shake is not None]
    trajectories: dict[int, torch.Tensor] = {}
    if shaken:
        batch = ShakeDraws.cat([d.shake for d in shaken])
        max_len = torch.tensor([d.kernel_params["max_len"] for d in shaken])
        expl = torch.tensor([d.kernel_params["expl"] for d in shaken])
        points = shake_trajectories(batch, max_len, expl)
        trajectories = {id(d): points[i : i + 1] for i, d in enumerate(shaken)}
    kernels = []
    for d in draws:
        p = d.kernel_params
        if d.kernel_type == "shake":
            points = trajectories[id(d)]
            weights = exposure_weights(points.shape[1], p["exposure"], 1)
            kernels.append(rasterize_points(points, weights)[0])
        elif d.kernel_type == "linear":
            kernels.append(linear_kernels(p["length"], p["angle"])[0])
        elif d.kernel_type == "defocus":
            kernels.append(defocus_kernels(p["radius"])[0])
        else:
            kernels.append(gaussian_kernels(p["sigma"])[0])
    return kernels


def _crop_box(
    width: int, height: int, crop: tuple[int, int] | None, u: tuple[float, float]
) -> tuple[int, int, int, int]:
    if crop is None:
        return 0, 0, width, height
    crop_w, crop_h = crop
    x = min(int(u[0] * (width - crop_w + 1)), width - crop_w)
    y = min(int(u[1] * (height - crop_h + 1)), height - crop_h)
    return x, y, crop_w, crop_h


def _with_context(pixels: np.ndarray, box: tuple[int, int, int, int], margin: int) -> np.ndarray:
    """The box plus ``margin`` px of real surroundings, mirrored where the photo ends."""
    x, y, w, h = box
    height, width = pixels.shape[:2]
    top, left = max(0, y - margin), max(0, x - margin)
    bottom, right = min(height, y + h + margin), min(width, x + w + margin)
    region = pixels[top:bottom, left:right]
    pad = (
        (margin - (y - top), margin - (bottom - y - h)),
        (margin - (x - left), margin - (right - x - w)),
        (0, 0),
    )
    return np.pad(region, pad, mode="reflect") if any(sum(p) for p in pad) else region


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


@dataclass(frozen=True)
class SynthesizedPair:
    """One blurred/sharp pair made from a photo, with what was drawn for it.

    Attributes:
        blurred, sharp: (h, w, C) pixels of the photo's dtype.
        kernel: (K, K) float64, summing to 1.
        box: (x, y, w, h) of the crop in the photo.
        draws: the kernel type, its parameters and the camera-model values.
        values: the camera-model values as plain numbers (``jpeg_quality`` None
            when it could not apply).
    """

    blurred: np.ndarray
    sharp: np.ndarray
    kernel: torch.Tensor
    box: tuple[int, int, int, int]
    draws: _PairDraws
    values: dict


def synthesize_pairs(
    pixels: np.ndarray, seeds: Sequence[int], settings: SynthSettings
) -> list[SynthesizedPair]:
    """Make one pair per seed from (H, W, C) pixels: crop, kernel, camera model, quantisation.

    Used for datasets on disk and for blurring sharp photos on the fly in
    training; the same seed and settings give the same pair.
    """
    all_draws = [_draw_pair(seed, settings) for seed in seeds]
    height, width = pixels.shape[:2]
    made = []
    for draws, kernel in zip(all_draws, _kernels(all_draws), strict=True):
        margin = kernel.shape[-1] // 2
        box = _crop_box(width, height, settings.crop, draws.crop_u)
        surroundings = _with_context(pixels, box, margin)
        linear = settings.synthesis.linear_light
        light = pixels_to_linear(surroundings) if linear else pixels_to_tensor(surroundings)
        blurred = camera_blur(
            light[None],
            kernel[None].float(),
            settings.synthesis,
            draws.synthesis,
            context=True,
            generator=draws.generator,
        )[0]
        if linear:
            blurred = linear_to_srgb(blurred)
        blurred_pixels = tensor_to_pixels(blurred, pixels.dtype)
        values = draws.synthesis.row(0)
        if values["jpeg_quality"] is not None:
            if pixels.dtype == np.uint8:
                blurred_pixels = jpeg_roundtrip(blurred_pixels, int(values["jpeg_quality"]))
            else:
                values["jpeg_quality"] = None  # JPEG holds 8 bits only: 16-bit pairs stay exact
        x, y, w, h = box
        sharp = np.ascontiguousarray(pixels[y : y + h, x : x + w])
        made.append(SynthesizedPair(blurred_pixels, sharp, kernel, box, draws, values))
    return made


def downscale(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """(H, W, C) pixels shrunk with area averaging so the longer side is at most
    ``max_side`` (aspect kept, never enlarged; ``None`` keeps them as they are).

    Large photos hold little detail per pixel; shrinking them first gives
    training crops with the texture density of the images a model will meet.
    """
    height, width = pixels.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return pixels
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return shrunk.reshape(size[1], size[0], *pixels.shape[2:])


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
