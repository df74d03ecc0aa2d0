"""Pairs per second of ``deblur synth-blur`` against DeblurGAN v1's blur scripts, and memory.

Both sides get the same photographs from ../shared/datasets/photos, cut to
1280x720 and saved as PNG, on the same machine:

* ``reference``: DeblurGAN v1's trajectory -> PSFs -> blur, restated in
  ``deblurgan_v1_blur.py``; read the photo, write the blurred image.
* ``deblurcli``: ``build_dataset`` (camera-shake kernel, realistic camera
  model or ``--naive``), which writes blurred, sharp and kernel files and the
  manifest.

Each case runs in a fresh subprocess so its peak resident memory (VmHWM) is
its own; ``--memory`` repeats deblurcli with more and more photos to show
that memory stays flat.

    python benchmarks/synth_speed.py                 # 12 photos, both sides
    python benchmarks/synth_speed.py --workers 2
    python benchmarks/synth_speed.py --memory 8 32 128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import peak_rss_mb

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
WIDTH, HEIGHT = 1280, 720


def prepare(folder: Path, count: int) -> list[Path]:
    """``count`` 1280x720 PNGs cut from the shared photos (repeating them when needed)."""
    import cv2

    sources = sorted(PHOTOS.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        image = cv2.imread(str(sources[i % len(sources)]))
        scale = max(WIDTH / image.shape[1], HEIGHT / image.shape[0])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y, x = (image.shape[0] - HEIGHT) // 2, (image.shape[1] - WIDTH) // 2
        path = folder / f"photo{i:04d}.png"
        cv2.imwrite(str(path), image[y : y + HEIGHT, x : x + WIDTH])
        written.append(path)
    return written


def run_reference(folder: Path, out: Path) -> dict:
    import cv2
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from deblurgan_v1_blur import make_pair

    np.random.seed(0)
    paths = sorted(folder.glob("*.png"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in paths:
        blurred = make_pair(cv2.imread(str(path)))
        cv2.imwrite(str(out / path.name), blurred)
    seconds = time.perf_counter() - started
    return {"pairs": len(paths), "seconds": seconds}


def run_deblurcli(folder: Path, out: Path, naive: bool, workers: int) -> dict:
    from deblurcli.ops.pairs import SynthSettings
    from deblurcli.ops.synthesis import SynthesisConfig
    from deblurcli.pipelines.synth import build_dataset

    paths = sorted(folder.glob("*.png"))
    config = (
        SynthesisConfig(linear_light=False, saturation=False, noise=False)
        if naive
        else SynthesisConfig()
    )
    settings = SynthSettings(seed=0, val_fraction=0.0, synthesis=config)
    started = time.perf_counter()
    summary = build_dataset([(p, p.name) for p in paths], out, settings, workers=workers)
    seconds = time.perf_counter() - started
    return {"pairs": summary.written, "seconds": seconds}


def run_compute(folder: Path, kind: str, batch: int) -> dict:
    """Kernel generation and blur only, on decoded images in memory (no file I/O)."""
    import cv2
    import numpy as np

    images = [cv2.imread(str(p))[:, :, ::-1].copy() for p in sorted(folder.glob("*.png"))]
    if kind == "reference":
        sys.path.insert(0, str(Path(__file__).parent))
        from deblurgan_v1_blur import make_pair

        np.random.seed(0)
        started = time.perf_counter()
        for image in images:
            make_pair(image)
        return {"pairs": len(images), "seconds": time.perf_counter() - started}
    import torch

    from deblurcli.ops.blur import camera_shake_kernels
    from deblurcli.ops.color import linear_to_srgb, pixels_to_linear
    from deblurcli.ops.synthesis import SynthesisConfig, SynthesisDraws, camera_blur

    config = SynthesisConfig()
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for first in range(0, len(images), batch):
        chunk = images[first : first + batch]
        kernels = camera_shake_kernels(
            len(chunk),
            max_len=60.0,
            expl=torch.rand(len(chunk), generator=generator) * 0.007 + 0.003,
            exposure=torch.rand(len(chunk), generator=generator) * 0.9 + 0.1,
            generator=generator,
        )
        light = torch.stack([pixels_to_linear(image) for image in chunk])
        draws = SynthesisDraws.sample(len(chunk), config, generator)
        blurred = camera_blur(light, kernels.float(), config, draws, generator=generator)
        (linear_to_srgb(blurred) * 255).round_().to(torch.uint8)
    return {"pairs": len(images), "seconds": time.perf_counter() - started}


def _case(args: list[str]) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--case", *args], capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory", type=int, nargs="*", help="photo counts for the memory run")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        kind, folder, out, *rest = args.case
        if kind.startswith("compute-"):
            result = run_compute(Path(folder), kind.removeprefix("compute-"), int(rest[0]))
        elif kind == "reference":
            result = run_reference(Path(folder), Path(out))
        else:
            result = run_deblurcli(Path(folder), Path(out), kind == "naive", int(rest[0]))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.memory:
            print(f"{'photos':>7} {'pairs/s':>8} {'peak RSS MB':>12}")
            for count in args.memory:
                folder = root / f"in{count}"
                prepare(folder, count)
                result = _case(
                    ["realistic", str(folder), str(root / f"m{count}"), str(args.workers)]
                )
                rate = result["pairs"] / result["seconds"]
                print(f"{count:>7} {rate:>8.2f} {result['peak_rss_mb']:>12.0f}")
            return
        folder = root / "in"
        prepare(folder, args.photos)
        rows = {
            "DeblurGAN v1 scripts": _case(["reference", str(folder), str(root / "ref")]),
            "deblurcli --naive": _case(
                ["naive", str(folder), str(root / "naive"), str(args.workers)]
            ),
            "deblurcli (realistic)": _case(
                ["realistic", str(folder), str(root / "real"), str(args.workers)]
            ),
        }
        base = rows["DeblurGAN v1 scripts"]["pairs"] / rows["DeblurGAN v1 scripts"]["seconds"]
        print(f"{args.photos} photos at {WIDTH}x{HEIGHT}, workers={args.workers}")
        print(f"{'method':<24} {'pairs/s':>8} {'speed-up':>9} {'peak RSS MB':>12}")
        for name, result in rows.items():
            rate = result["pairs"] / result["seconds"]
            print(f"{name:<24} {rate:>8.2f} {rate / base:>8.1f}x {result['peak_rss_mb']:>12.0f}")
        compute = {
            "DeblurGAN v1 scripts": _case(["compute-reference", str(folder), "-", "1"]),
            "deblurcli, batch 1": _case(["compute-ours", str(folder), "-", "1"]),
            "deblurcli, batch 4": _case(["compute-ours", str(folder), "-", "4"]),
        }
        base = compute["DeblurGAN v1 scripts"]["pairs"] / compute["DeblurGAN v1 scripts"]["seconds"]
        print("\nkernel + blur only, images in memory (deblurcli: realistic model, all threads)")
        print(f"{'method':<24} {'pairs/s':>8} {'speed-up':>9}")
        for name, result in compute.items():
            rate = result["pairs"] / result["seconds"]
            print(f"{name:<24} {rate:>8.2f} {rate / base:>8.1f}x")


if __name__ == "__main__":
    main()
