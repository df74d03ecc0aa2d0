"""Enhancement quality on held-out photographs: enhancers against classical baselines.

Builds a test set reproducibly (``--seed``) from the photos kept out of every
training set (``HELD_OUT`` in quality.py) at ``--size`` px on the long side,
each degraded several times, then scores every method against the original
with the ``deblur score`` metrics. ``--recipe ops`` degrades with
:mod:`deblurcli.ops.degrade`'s default ranges (exposure, white balance,
contrast, saturation, haze: what the enhancers are trained on, narrower);
``--recipe other`` with a recipe no enhancer was trained on (a gamma curve,
channel gains and contrast about mid-grey in sRGB, desaturation, a lifted
black level); ``--recipe film`` with another (a sepia-toned channel mix,
rolled-off highlights, lifted shadows, as faded prints look). A second
table runs every method on the undegraded photos: PSNR of the output against
its input (a good photo should stay as it is) and the share of clipped pixels
(a channel at 0 or 255) before and after.

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


def originals(size: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 RGB) of the held-out photos, ``size`` px on the long side."""
    from deblurcli.ops.pairs import downscale

    photos = []
    for name in HELD_OUT:
        original = downscale(cv2.imread(str(DATASETS / f"{name}.jpg"))[:, :, ::-1], size)
        photos.append((name, np.ascontiguousarray(original)))
    return photos


def other_degradation(image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """A dulling recipe unlike ops.degrade: (3, H, W) sRGB in [0, 1] -> same, and its values."""
    u = torch.rand(5, dtype=torch.float64, generator=generator).tolist()
    gamma = 0.6 + 1.0 * u[0]  # > 1 darkens mid-tones, < 1 brightens them
    gains = torch.tensor([0.85 + 0.3 * u[1], 1.0, 1.15 - 0.3 * u[1]], dtype=image.dtype)
    contrast = 0.6 + 0.5 * u[2]
    saturation = 0.5 + 0.6 * u[3]
    black = 0.12 * u[4]
    out = image.clamp(0, 1).pow(gamma) * gains.view(3, 1, 1)
    out = 0.5 + contrast * (out - 0.5)
    luma = out.mean(dim=0, keepdim=True)
    out = luma + saturation * (out - luma)
    out = black + (1 - black) * out
    values = {"gamma": gamma, "red_gain": float(gains[0]), "contrast": contrast,
              "saturation": saturation, "black": black}  # fmt: skip
    return out.clamp(0, 1), {k: round(v, 4) for k, v in values.items()}


def faded_film(image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """A third recipe, unlike both training recipes: a sepia-toned channel mix, rolled-off
    highlights and lifted shadows, as faded film prints look. (3, H, W) -> same, values."""
    u = torch.rand(3, dtype=torch.float64, generator=generator).tolist()
    sepia = torch.tensor(
        [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=image.dtype
    )
    sepia = sepia / sepia.sum(dim=1, keepdim=True).max()
    mix = 0.15 + 0.35 * u[0]  # share of the sepia toning
    toned = (1 - mix) * image + mix * torch.einsum("ij,jhw->ihw", sepia, image)
    knee = 0.3 + 0.5 * u[1]  # x (1 + k) / (x + k): highlights rolled off
    out = toned * (1 + knee) / (toned + knee) * 0.85
    lift = 0.04 + 0.1 * u[2]
    out = lift + (1 - lift) * out
    values = {"sepia": mix, "knee": knee, "lift": lift}
    return out.clamp(0, 1), {k: round(v, 4) for k, v in values.items()}


def build_set(size: int, per_photo: int, seed: int, recipe: str) -> list[dict]:
    """Degraded/original uint8 RGB pairs from the held-out photos, ``size`` px on the long side."""
    from deblurcli.ops.degrade import degrade

    pairs = []
    for number, (name, original) in enumerate(originals(size)):
        image = torch.from_numpy(original).permute(2, 0, 1).double() / 255
        for index in range(per_photo):
            generator = torch.Generator().manual_seed(seed * 1000 + number * per_photo + index)
            if recipe == "ops":
                degraded, drawn = degrade(image, generator)
                values = drawn.as_json()
            elif recipe == "film":
                degraded, values = faded_film(image, generator)
            else:
                degraded, values = other_degradation(image, generator)
            pixels = (degraded * 255).round().byte().permute(1, 2, 0).numpy()
            pairs.append(
                {
                    "name": f"{name}-{index}",
                    "blurred": np.ascontiguousarray(pixels),  # the methods' input
                    "sharp": original,  # the reference
                    "degradation": values,
                }
            )
    return pairs


def clipped_share(pixels: np.ndarray) -> float:
    """Share of pixels with any channel at 0 or 255, in percent."""
    return 100 * float(((pixels == 0) | (pixels == 255)).any(axis=2).mean())


def print_good_photo_table(methods: dict, size: int) -> None:
    """Every method on the undegraded photos: PSNR against the input, clipped pixels."""
    from quality import score

    photos = [{"name": n, "blurred": p, "sharp": p} for n, p in originals(size)]
    print(f"\n{len(photos)} undegraded photos: does a good photo stay as it is?")
    print(f"{'method':<36} {'PSNR vs input':>14} {'worst':>7} {'clipped %':>16}")
    for name, method in methods.items():
        outputs = [method(photo) for photo in photos]
        psnrs, _ = score(outputs, photos)
        before = np.mean([clipped_share(photo["blurred"]) for photo in photos])
        after = np.mean([clipped_share(output) for output in outputs])
        shown = "inf" if min(psnrs) == float("inf") else f"{np.mean(psnrs):.2f}"
        print(f"{name:<36} {shown:>14} {min(psnrs):>7.2f} {before:>7.2f} -> {after:>5.2f}")


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
    parser.add_argument("--recipe", choices=["ops", "other", "film"], default="ops")
    args = parser.parse_args()
    pairs = build_set(args.size, args.per_photo, args.seed, args.recipe)
    methods = {
        "degraded input": lambda pair: pair["blurred"],
        "PIL autocontrast": autocontrast,
        "grey-world white balance": grey_world,
    }
    for weights in available_weights("enhance") if args.weights is None else args.weights:
        methods[weights] = model_method(weights)
    print(
        f"{len(pairs)} degraded copies ({args.recipe} recipe) of {len(HELD_OUT)} held-out "
        f"photos, {args.size} px long side, seed {args.seed}"
    )
    print_table(methods, pairs)
    print_good_photo_table(methods, args.size)


if __name__ == "__main__":
    main()
