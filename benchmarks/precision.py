"""How far bf16 inference is from fp32, and how much faster, on real photographs.

For each shipped weights file, every photo (shrunk to ``--size`` px on the
longer side) is restored in fp32 and in bf16 on the same device, and the two
8-bit outputs are compared: PSNR between them (higher is closer) and the
largest difference in grey levels. ``--precision auto`` keeps bf16 only for
architectures that stay within 50 dB and 2 levels here (``bf16_safe`` in
``deblurcli/models/zoo.py``).

    python benchmarks/precision.py                       # shipped weights, the shared photos
    python benchmarks/precision.py --weights deblurcli-mobilenet --photos 4 --size 1280
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from deblurcli.metrics import psnr

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
FALLBACK_PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"


def load_photos(count: int, size: int) -> list[np.ndarray]:
    """``count`` RGB uint8 photos, ``size`` px on the longer side."""
    import cv2

    folder = PHOTOS if PHOTOS.is_dir() else FALLBACK_PHOTOS
    photos = []
    for path in sorted(folder.glob("*.jpg"))[:count]:
        image = cv2.imread(str(path))[:, :, ::-1]
        scale = size / max(image.shape[:2])
        shape = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        photos.append(np.ascontiguousarray(cv2.resize(image, shape, interpolation=cv2.INTER_AREA)))
    return photos


def restorer_for(weights: str, dtype: torch.dtype):
    from deblurcli.pipelines.restore import Restorer

    precision = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    return Restorer.from_weights(weights, device="cpu", precision=precision)


def compare(weights: str, photos: list[np.ndarray]) -> dict:
    """PSNR and largest level difference of bf16 against fp32, and both speeds (MP/s)."""
    outputs, seconds = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        restorer = restorer_for(weights, dtype)
        restorer.restore_array(photos[0][:64, :64])  # warm-up
        start = time.perf_counter()
        outputs[dtype] = [restorer.restore_array(photo)[0] for photo in photos]
        seconds[dtype] = time.perf_counter() - start
    megapixels = sum(photo.shape[0] * photo.shape[1] for photo in photos) / 1e6
    exact = [torch.from_numpy(o).permute(2, 0, 1)[None].float() for o in outputs[torch.float32]]
    fast = [torch.from_numpy(o).permute(2, 0, 1)[None].float() for o in outputs[torch.bfloat16]]
    psnrs = [float(psnr(a, b, data_range=255)) for a, b in zip(exact, fast, strict=True)]
    levels = [int((a - b).abs().max()) for a, b in zip(exact, fast, strict=True)]
    return {
        "weights": weights,
        "worst_psnr": min(psnrs),
        "max_levels": max(levels),
        "fp32_mps": megapixels / seconds[torch.float32],
        "bf16_mps": megapixels / seconds[torch.bfloat16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights",
        nargs="+",
        default=[
            "deblurcli-mobilenet",
            "deblurcli-mobilenet-dsc",
            "deblurcli-dpe",
            "deblurcli-curves",
        ],
    )
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--size", type=int, default=1280)
    args = parser.parse_args()
    torch.manual_seed(0)
    photos = load_photos(args.photos, args.size)
    print(f"{len(photos)} photos, {args.size} px on the longer side, CPU")
    print(f"{'weights':<26}{'worst PSNR':>11}{'max levels':>11}{'fp32 MP/s':>10}{'bf16 MP/s':>10}")
    for weights in args.weights:
        row = compare(weights, photos)
        print(
            f"{row['weights']:<26}{row['worst_psnr']:>11.2f}{row['max_levels']:>11d}"
            f"{row['fp32_mps']:>10.2f}{row['bf16_mps']:>10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
