"""Speed and peak memory of ``deblur deblur``'s restore path on this machine.

Each case runs in a fresh subprocess so that its peak resident memory
(VmHWM) is its own. Weights are random (speed does not depend on their
values); eval-mode models tile, official-semantics models run whole images.

    python benchmarks/speed.py                      # every backbone at 1280x720, CPU
    python benchmarks/speed.py --megapixels 24 --backbones mobilenet
    python benchmarks/speed.py --tiling             # tiled against untiled cost
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _memory import peak_rss_mb


def run_case(
    backbone: str,
    width: int,
    height: int,
    tile: int,
    overlap: int,
    device: str,
    precision: str,
    repeats: int,
) -> dict:
    """Time ``Restorer.restore_array`` on one random photo-sized array (in this process)."""
    import numpy as np
    import torch

    from deblurcli.device import resolve_device, resolve_precision
    from deblurcli.models import build_model
    from deblurcli.pipelines.restore import Restorer

    torch.manual_seed(0)
    model = build_model(backbone, {} if backbone == "resnet" else {"norm": "batch"})
    torch_device = resolve_device(device)
    restorer = Restorer(
        model,
        backbone,
        None,
        torch_device,
        resolve_precision(precision, torch_device),
        tile,
        overlap,
    )
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    restorer.restore_array(pixels[:128, :128])  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _, report = restorer.restore_array(pixels)
        times.append(time.perf_counter() - started)
    best = min(times)
    return {
        "backbone": backbone,
        "size": f"{width}x{height}",
        "tile": report.tile,
        "overlap": overlap,
        "seconds": round(best, 3),
        "mp_per_s": round(width * height / 1e6 / best, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
    }


def _in_subprocess(**case) -> dict:
    command = [sys.executable, __file__, "--one", json.dumps(case)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenet,mobilenet-dsc,resnet,inception")
    parser.add_argument(
        "--megapixels", type=float, default=0.0, help="image size in MP at 3:2 (default: 1280x720)"
    )
    parser.add_argument("--tile", type=int, default=0, help="0 = automatic")
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument(
        "--tiling", action="store_true", help="compare untiled with 512px and 256px tiles"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(**json.loads(args.one))))
        return
    if args.megapixels:
        width = int((args.megapixels * 1e6 * 1.5) ** 0.5)
        height = int(args.megapixels * 1e6 / width)
    else:
        width, height = 1280, 720
    whole = 1 << 20  # larger than any image: one tile
    tiles = [whole, 512, 256] if args.tiling else [args.tile]
    print(f"{'backbone':<14}{'size':>11}{'tile':>6}{'seconds':>9}{'MP/s':>8}{'peak RSS MB':>13}")
    for backbone in args.backbones.split(","):
        for tile in tiles:
            result = _in_subprocess(
                backbone=backbone,
                width=width,
                height=height,
                tile=tile,
                overlap=args.overlap,
                device=args.device,
                precision=args.precision,
                repeats=args.repeats,
            )
            print(
                f"{backbone:<14}{result['size']:>11}{result['tile']:>6}{result['seconds']:>9}"
                f"{result['mp_per_s']:>8}{result['peak_rss_mb']:>13}",
                flush=True,
            )


if __name__ == "__main__":
    main()
