"""Speed and peak memory of ``deblur deblur``'s restore path on this machine.

Each case runs in a fresh subprocess so that its peak resident memory
(VmHWM) is its own. Weights are random with batch norms holding running
statistics, as our trained weights do (speed does not depend on the values);
``deconv`` and ``curves`` are built with the options of their shipped files.

``default`` is the path ``deblur deblur`` takes with our weights: eval-mode
norms folded into the convolutions, channels-last, automatic tiles.
``official`` runs the same network the way DeblurGAN-v2's ``predict.py``
does: whole image, per-image (train-mode) normalisation, fp32, NCHW.
``--compare`` times both on the same image in one run and prints the ratio.

    python benchmarks/speed.py                      # every backbone at 1280x720, CPU
    python benchmarks/speed.py --compare --backbones mobilenet,mobilenet-dsc
    python benchmarks/speed.py --megapixels 24 --backbones mobilenet
    python benchmarks/speed.py --device cuda --precisions fp32,fp16,bf16
    python benchmarks/speed.py --tiling             # tiled against untiled cost
    python benchmarks/speed.py --backbones dpe --megapixels 12   # the enhancer
    python benchmarks/speed.py --backbones deconv --megapixels 12 --repeats 1  # the default
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _memory import peak_rss_mb

# Architecture options as our trained weights use them (default: batch norm).
MODEL_CONFIGS = {"resnet": {}, "dpe": {"global_size": 256}}
# Timed with the options in the header of the weights deblurcli ships for them: the
# deconvolution's settings, its refiner and its kernel re-fits decide its speed.
SHIPPED_OPTIONS = ("deconv", "curves")


def shipped_options(backbone: str) -> dict:
    """The architecture options recorded in the shipped weights file of ``backbone``."""
    from deblurcli.hub.store import manifest, shipped_dir
    from deblurcli.models._builder import read_state_dict

    for entry in manifest().values():
        if entry.architecture == backbone:
            _, header = read_state_dict(shipped_dir() / entry.file)
            return json.loads(header["config"])
    raise ValueError(f"no shipped weights for {backbone}")


def run_case(
    backbone: str,
    width: int,
    height: int,
    tile: int,
    overlap: int,
    device: str,
    precision: str,
    repeats: int,
    semantics: str = "default",
) -> dict:
    """Time ``Restorer.restore_array`` on one random photo-sized array (in this process)."""
    import numpy as np
    import torch

    from deblurcli.device import resolve_device, resolve_precision
    from deblurcli.models import build_model, get_spec
    from deblurcli.models.layers import set_statistics
    from deblurcli.pipelines.restore import Restorer

    torch.manual_seed(0)
    if backbone in SHIPPED_OPTIONS:
        model = build_model(backbone, shipped_options(backbone))
    else:
        model = build_model(backbone, MODEL_CONFIGS.get(backbone, {"norm": "batch"}))
    if semantics == "official":
        set_statistics(model, "per_image")  # train-mode norms, as predict.py runs them
    torch_device = resolve_device(device)
    restorer = Restorer(
        model,
        backbone,
        None,
        torch_device,
        resolve_precision(precision, torch_device, reduced_ok=get_spec(backbone).bf16_safe),
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
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if torch_device.type == "cuda" else 0
    return {
        "backbone": backbone,
        "semantics": semantics,
        "precision": precision,
        "size": f"{width}x{height}",
        "tile": report.tile,
        "overlap": overlap,
        "seconds": round(best, 3),
        "mp_per_s": round(width * height / 1e6 / best, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mb": round(peak_gpu, 1),
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
    parser.add_argument(
        "--compare", action="store_true", help="also time official DeblurGAN-v2 semantics"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32,fp16,bf16")
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
    print(
        f"{'backbone':<14}{'semantics':>10}{'precision':>10}{'size':>11}{'tile':>6}"
        f"{'seconds':>9}{'MP/s':>8}{'peak RSS MB':>13}{'peak GPU MB':>13}{'speed-up':>10}"
    )
    for backbone in args.backbones.split(","):
        official = None
        if args.compare:
            official = _in_subprocess(
                backbone=backbone, width=width, height=height, tile=whole, overlap=args.overlap,
                device=args.device, precision="fp32", repeats=args.repeats, semantics="official",
            )  # fmt: skip
            _print_row(official, official)
        for precision in args.precisions.split(","):
            for tile in tiles:
                result = _in_subprocess(
                    backbone=backbone, width=width, height=height, tile=tile,
                    overlap=args.overlap, device=args.device, precision=precision,
                    repeats=args.repeats,
                )  # fmt: skip
                _print_row(result, official)


def _print_row(result: dict, official: dict | None) -> None:
    ratio = f"{official['seconds'] / result['seconds']:.2f}x" if official else ""
    print(
        f"{result['backbone']:<14}{result['semantics']:>10}{result['precision']:>10}"
        f"{result['size']:>11}{result['tile']:>6}{result['seconds']:>9}{result['mp_per_s']:>8}"
        f"{result['peak_rss_mb']:>13}{result['peak_gpu_mb']:>13}{ratio:>10}",
        flush=True,
    )


if __name__ == "__main__":
    main()
