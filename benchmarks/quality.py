"""Deblurring quality on held-out photographs: models against classical baselines.

Builds a validation set reproducibly (``--seed``) from photos kept out of
training (``HELD_OUT`` below), blurred with camera-shake kernels through the
synth-blur camera model (noise off unless ``--noise``), then scores with the
``deblur score`` metrics:

* ``blurred input``: the identity, the floor every method must beat;
* ``unsharp mask``: OpenCV Gaussian unsharp masking (σ = 2, amount 1);
* ``Wiener (true kernel)``: scikit-image's ``restoration.wiener`` with the
  kernel that made the blur, per channel, in linear light, edges mirrored (balance 0.01);
* ``Richardson-Lucy (true kernel)``: ``restoration.richardson_lucy``, 30 iterations,
  the same way;
* every ``--weights`` given (a name, file or URL, as ``deblur deblur`` takes);
  by default every deblurring weight file on this machine (the shipped ones
  and any in the cache).

    python benchmarks/quality.py                                  # shipped weights
    python benchmarks/quality.py --weights                        # baselines only
    python benchmarks/quality.py --weights runs/m1/best.safetensors fpn_mobilenet
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
# Kept out of every training set made for the shipped weights.
HELD_OUT = ("Bridge_by_Sander_Klootwijk", "LadyBird", "Wood", "friends_by_Aitzol_Berasategi")


def build_set(size: int, per_photo: int, seed: int, noise: bool) -> list[dict]:
    """Blurred/sharp uint8 RGB pairs and kernels from the held-out photos, ``size`` px wide."""
    from deblurcli.ops.synthesis import SynthesisConfig
    from deblurcli.pipelines.synth import KernelOptions, Range, SynthSettings, synthesize_pairs

    settings = SynthSettings(
        crop=None,
        kernels=KernelOptions(max_len=Range(15, 35), exposure=Range(0.5, 1.0)),
        synthesis=SynthesisConfig(noise=noise, saturation=False),
    )
    pairs = []
    for name in HELD_OUT:
        image = cv2.imread(str(PHOTOS / f"{name}.jpg"))[:, :, ::-1]
        height, width = image.shape[:2]
        image = cv2.resize(
            image, (size, round(height * size / width)), interpolation=cv2.INTER_AREA
        )
        seeds = [seed * 1000 + i for i in range(per_photo)]
        for index, made in enumerate(synthesize_pairs(image, seeds, settings)):
            pairs.append(
                {
                    "name": f"{name}-{index}",
                    "blurred": made.blurred,
                    "sharp": made.sharp,
                    "kernel": made.kernel.numpy(),
                }
            )
    return pairs


def unsharp(pair: dict) -> np.ndarray:
    blurred = pair["blurred"].astype(np.float32)
    soft = cv2.GaussianBlur(blurred, (0, 0), 2.0)
    return np.clip(blurred + (blurred - soft), 0, 255).round().astype(np.uint8)


def _per_channel(pair: dict, restore) -> np.ndarray:
    """Deconvolve each channel in linear light (where the blur happened), with the image
    mirrored past its edges so the borders do not ring."""
    from deblurcli.ops.color import linear_to_srgb, srgb_to_linear

    margin = pair["kernel"].shape[0]
    light = srgb_to_linear(torch.from_numpy(pair["blurred"].astype(np.float64) / 255)).numpy()
    light = np.pad(light, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    channels = [restore(light[:, :, c], pair["kernel"]) for c in range(3)]
    restored = np.stack(channels, axis=2)[margin:-margin, margin:-margin]
    encoded = linear_to_srgb(torch.from_numpy(np.clip(restored, 0, 1))).numpy()
    return np.clip(encoded * 255, 0, 255).round().astype(np.uint8)


def wiener(pair: dict) -> np.ndarray:
    from skimage.restoration import wiener as skimage_wiener

    return _per_channel(pair, lambda c, k: skimage_wiener(c, k, balance=0.01))


def richardson_lucy(pair: dict) -> np.ndarray:
    from skimage.restoration import richardson_lucy as skimage_rl

    return _per_channel(pair, lambda c, k: skimage_rl(c, k, num_iter=30, clip=True))


def model_method(weights: str):
    from deblurcli.device import resolve_device
    from deblurcli.hub import resolve_weights
    from deblurcli.models._builder import load_model
    from deblurcli.pipelines.restore import Restorer

    model, info = load_model(resolve_weights(weights))
    device = resolve_device("auto")
    restorer = Restorer(model, info.architecture, info, device, torch.float32, 0, 64)
    return lambda pair: restorer.restore_array(pair["blurred"])[0]


def available_weights(task: str) -> list[str]:
    """Names of the weights for ``task`` models found on this machine (shipped or cached)."""
    from deblurcli import hub
    from deblurcli.models import list_models

    models = set(list_models(task))
    return [
        entry.name
        for entry in hub.all_entries()
        if entry.architecture in models and hub.location(entry) is not None
    ]


def score(outputs: list[np.ndarray], pairs: list[dict]) -> tuple[float, float]:
    from deblurcli import metrics

    psnrs, ssims = [], []
    for output, pair in zip(outputs, pairs, strict=True):
        pred = torch.from_numpy(np.ascontiguousarray(output)).permute(2, 0, 1)[None].float()
        target = (
            torch.from_numpy(np.ascontiguousarray(pair["sharp"])).permute(2, 0, 1)[None].float()
        )
        psnrs.append(float(metrics.psnr(pred, target, 255)))
        ssims.append(float(metrics.ssim(pred, target, 255)))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def print_table(methods: dict, pairs: list[dict]) -> None:
    """Run every method on every pair; print mean PSNR, SSIM and seconds per image."""
    print(f"{'method':<32} {'PSNR':>7} {'SSIM':>7} {'s/image':>8}")
    for name, method in methods.items():
        started = time.perf_counter()
        outputs = [method(pair) for pair in pairs]
        seconds = (time.perf_counter() - started) / len(pairs)
        psnr, ssim = score(outputs, pairs)
        print(f"{name:<32} {psnr:>7.2f} {ssim:>7.4f} {seconds:>8.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        nargs="*",
        default=None,
        help="names, files or URLs (default: every deblurring weight file on this machine)",
    )
    parser.add_argument("--size", type=int, default=640, help="photo width in px")
    parser.add_argument("--per-photo", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", action="store_true", help="sensor noise on the blurred inputs")
    args = parser.parse_args()
    pairs = build_set(args.size, args.per_photo, args.seed, args.noise)
    methods = {
        "blurred input": lambda pair: pair["blurred"],
        "unsharp mask": unsharp,
        "Wiener (true kernel)": wiener,
        "Richardson-Lucy (true kernel)": richardson_lucy,
    }
    for weights in available_weights("deblur") if args.weights is None else args.weights:
        methods[weights] = model_method(weights)
    print(
        f"{len(pairs)} pairs from {len(HELD_OUT)} held-out photos, {args.size} px wide, "
        f"seed {args.seed}"
    )
    print_table(methods, pairs)


if __name__ == "__main__":
    main()
