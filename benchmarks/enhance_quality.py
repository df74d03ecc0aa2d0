"""Enhancement quality on held-out photographs: enhancers against classical baselines.

Builds a test set reproducibly (``--seed``) from the photos kept out of every
training set (``HELD_OUT`` in quality.py), each degraded several times by
:mod:`deblurcli.ops.degrade` (exposure, white balance, contrast, saturation,
haze) at ``--size`` px on the long side, then scores every method against
the original with the ``deblur score`` metrics:

* ``degraded input``: the identity, the floor every method must beat;
* ``PIL autocontrast``: ``ImageOps.autocontrast`` (cutoff 0);
* ``grey-world white balance``: each channel scaled so its mean is the mean
  of the three channel means;
* every enhancer given with ``--weights`` (default: every enhancer weight
  file on this machine, shipped or in the cache), run as ``deblur enhance``
  runs it (global vector from the whole image, full-resolution local path).

    python benchmarks/enhance_quality.py
    python benchmarks/enhance_quality.py --weights runs/e1/best.safetensors --size 2048
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps
from quality import DATASETS, HELD_OUT, available_weights, model_method, print_table


def build_set(size: int, per_photo: int, seed: int) -> list[dict]:
    """Degraded/original uint8 RGB pairs from the held-out photos, ``size`` px on the long side."""
    from deblurcli.ops.degrade import degrade
    from deblurcli.pipelines.synth import downscale

    pairs = []
    for name in HELD_OUT:
        original = downscale(cv2.imread(str(DATASETS / f"{name}.jpg"))[:, :, ::-1], size)
        original = np.ascontiguousarray(original)
        image = torch.from_numpy(original).permute(2, 0, 1).double() / 255
        for index in range(per_photo):
            generator = torch.Generator().manual_seed(seed * 1000 + index)
            degraded, values = degrade(image, generator)
            pixels = (degraded * 255).round().byte().permute(1, 2, 0).numpy()
            pairs.append(
                {
                    "name": f"{name}-{index}",
                    "blurred": np.ascontiguousarray(pixels),  # the methods' input
                    "sharp": original,  # the reference
                    "degradation": values.as_json(),
                }
            )
    return pairs


def autocontrast(pair: dict) -> np.ndarray:
    return np.array(ImageOps.autocontrast(Image.fromarray(pair["blurred"])))


def grey_world(pair: dict) -> np.ndarray:
    pixels = pair["blurred"].astype(np.float64)
    means = pixels.reshape(-1, 3).mean(axis=0)
    balanced = pixels * (means.mean() / np.maximum(means, 1e-6))
    return np.clip(balanced, 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="*", default=None, help="names, files or URLs")
    parser.add_argument("--size", type=int, default=1024, help="long side in px")
    parser.add_argument("--per-photo", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    pairs = build_set(args.size, args.per_photo, args.seed)
    methods = {
        "degraded input": lambda pair: pair["blurred"],
        "PIL autocontrast": autocontrast,
        "grey-world white balance": grey_world,
    }
    for weights in available_weights("enhance") if args.weights is None else args.weights:
        methods[weights] = model_method(weights)
    print(
        f"{len(pairs)} degraded copies of {len(HELD_OUT)} held-out photos, {args.size} px "
        f"long side, seed {args.seed}"
    )
    print_table(methods, pairs)


if __name__ == "__main__":
    main()
