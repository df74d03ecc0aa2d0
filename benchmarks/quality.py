"""Deblurring quality on held-out photographs: models against classical baselines.

Builds a validation set reproducibly (``--seed``) from whole photos kept out
of training (``HELD_OUT`` below), scaled to ``--size`` px on the longer side,
blurred with camera-shake kernels of about 5 to 43 px extent through the
synth-blur camera model (sensor noise off unless ``--noise``, which draws it
as the ``fast`` training recipe does: up to about 2.5 grey levels), then
scores with the ``deblur score`` metrics, overall and per kernel extent:

* ``blurred input``: the identity, the floor every method must beat;
* ``unsharp mask``: OpenCV Gaussian unsharp masking (σ = 2, amount 1);
* ``Wiener (true kernel)``: scikit-image's ``restoration.wiener`` with the
  kernel that made the blur, per channel, in linear light, edges mirrored (balance 0.01);
* ``Richardson-Lucy (true kernel)``: ``restoration.richardson_lucy``, 30 iterations,
  the same way;
* ``hyper-Laplacian (true kernel)``: :func:`deblurcli.ops.deconv.deconvolve`
  (Krishnan and Fergus 2009) in linear light, its weight set by the noise
  estimate of the blurred photo;
* every ``--weights`` given (a name, file or URL, as ``deblur deblur`` takes);
  by default every deblurring weight file on this machine (the shipped ones
  and any in the cache). ``deblurcli-deconv`` is the blind deconvolution
  model: the same hyper-Laplacian step with a kernel it estimates itself.

``--no-baselines`` keeps only the blurred input and the weights.

    python benchmarks/quality.py --noise                          # shipped weights
    python benchmarks/quality.py --weights                        # baselines only
    python benchmarks/quality.py --weights runs/m1/best.safetensors fpn_mobilenet
    python benchmarks/quality.py --noise --weights deblurcli-deconv --picture docs/images/deblur.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deblurcli.ops.blur_estimate import kernel_extent

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# Kept out of every training set made for the shipped weights (photos/ and photos-extra/).
HELD_OUT = (
    "photos/Bridge_by_Sander_Klootwijk",
    "photos/LadyBird",
    "photos/Wood",
    "photos/friends_by_Aitzol_Berasategi",
    "photos-extra/Road",
    "photos-extra/bluebird",
    "photos-extra/casa-mila",
    "photos-extra/flowers",
)
# Kernel extents (px) the gains are reported for.
EXTENT_BINS = ((0, 10), (11, 20), (21, 999))


def build_set(
    size: int, per_photo: int, seed: int, noise: bool, photos: tuple[str, ...] = HELD_OUT
) -> list[dict]:
    """Blurred/sharp uint8 RGB pairs and kernels from ``photos`` (names under
    ``DATASETS``, without ``.jpg``; the held-out ones by default), ``size`` px on the
    longer side."""
    from deblurcli.ops.pairs import Range, SynthSettings, synthesize_pairs
    from deblurcli.ops.synthesis import SynthesisConfig
    from deblurcli.train.data import synth_settings
    from deblurcli.train.presets import FAST_SYNTH

    recipe = synth_settings(
        {key: FAST_SYNTH[key] for key in ("max_len", "exposure", "shot_noise", "read_noise")}
    )
    settings = SynthSettings(
        crop=None,
        kernels=recipe.kernels,
        synthesis=SynthesisConfig(
            noise=noise,
            saturation=False,
            shot_noise=recipe.synthesis.shot_noise,
            read_noise=recipe.synthesis.read_noise,
        ),
    )
    assert settings.kernels.max_len == Range(15.0, 100.0)
    pairs = []
    for number, name in enumerate(photos):
        image = cv2.imread(str(DATASETS / f"{name}.jpg"))[:, :, ::-1]
        height, width = image.shape[:2]
        scale = size / max(height, width)
        image = cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        seeds = [seed * 1000 + number * per_photo + i for i in range(per_photo)]  # own kernels
        for index, made in enumerate(synthesize_pairs(image, seeds, settings)):
            pairs.append(
                {
                    "name": f"{name}-{index}",
                    "blurred": made.blurred,
                    "sharp": made.sharp,
                    "kernel": made.kernel.numpy(),
                    "extent": kernel_extent(made.kernel.numpy()),
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


def _linear(pixels: np.ndarray) -> torch.Tensor:
    from deblurcli.ops.color import pixels_to_linear

    return pixels_to_linear(pixels).float()


def _encode(light: torch.Tensor) -> np.ndarray:
    from deblurcli.ops.color import linear_to_srgb

    return (linear_to_srgb(light.clamp(0, 1)).permute(1, 2, 0) * 255).round().byte().numpy()


def hyper_laplacian(pair: dict) -> np.ndarray:
    """Hyper-Laplacian deconvolution in linear light with the true kernel; the data
    weight is 0.03 / σ², σ the noise of the blurred photo's green sRGB channel."""
    from deblurcli.ops import deconv

    kernel = torch.from_numpy(pair["kernel"]).float()
    sigma = max(deconv.estimate_noise(torch.from_numpy(pair["blurred"][:, :, 1] / 255.0)), 1e-3)
    light = _linear(pair["blurred"])
    margin = kernel.shape[-1]
    padded = deconv.pad_smooth_periodic(light, margin)
    restored = deconv.deconvolve(padded, kernel, 0.03 / sigma**2)
    height, width = light.shape[-2:]
    return _encode(restored[:, margin : margin + height, margin : margin + width])


def model_method(weights: str):
    from deblurcli.pipelines.restore import Restorer

    restorer = Restorer.from_weights(weights, precision="fp32")
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


def score(outputs: list[np.ndarray], pairs: list[dict]) -> tuple[list[float], list[float]]:
    """Per-pair PSNR and SSIM against the sharp images."""
    from deblurcli import metrics

    psnrs, ssims = [], []
    for output, pair in zip(outputs, pairs, strict=True):
        pred = torch.from_numpy(np.ascontiguousarray(output)).permute(2, 0, 1)[None].float()
        target = (
            torch.from_numpy(np.ascontiguousarray(pair["sharp"])).permute(2, 0, 1)[None].float()
        )
        psnrs.append(float(metrics.psnr(pred, target, 255)))
        ssims.append(float(metrics.ssim(pred, target, 255)))
    return psnrs, ssims


def print_table(methods: dict, pairs: list[dict], bins: tuple = ()) -> dict[str, list]:
    """Run every method on every pair; print mean PSNR, SSIM, seconds per image, and when
    ``bins`` are given, the worst pair's gain and the mean gain over the first method (the
    input) per kernel extent (px). Returns each method's outputs and PSNRs."""
    columns = "".join(f" {f'{lo}-{hi} px' if hi < 999 else f'{lo}+ px':>9}" for lo, hi in bins)
    extra = f" {'worst':>7}{columns}" if bins else ""
    print(f"{'method':<36} {'PSNR':>7} {'SSIM':>7} {'s/image':>8}{extra}")
    baseline = None
    results = {}
    for name, method in methods.items():
        started = time.perf_counter()
        outputs = [method(pair) for pair in pairs]
        seconds = (time.perf_counter() - started) / len(pairs)
        psnrs, ssims = score(outputs, pairs)
        results[name] = (outputs, psnrs)
        line = f"{name:<36} {np.mean(psnrs):>7.2f} {np.mean(ssims):>7.4f} {seconds:>8.3f}"
        if bins:
            baseline = psnrs if baseline is None else baseline
            gains = np.array(psnrs) - np.array(baseline)
            extents = np.array([pair["extent"] for pair in pairs])
            line += f" {gains.min():>+7.2f}"
            for lo, hi in bins:
                inside = (extents >= lo) & (extents <= hi)
                line += f" {gains[inside].mean():>+9.2f}" if inside.any() else f" {'-':>9}"
        print(line, flush=True)
    return results


def print_pairs(results: dict, pairs: list[dict]) -> None:
    """Each pair's kernel extent and every method's PSNR gain over the first (the input)."""
    first, *names = list(results)
    print(f"\n{'pair':<36} {'extent':>6}" + "".join(f" {n[-24:]:>24}" for n in names))
    baseline = results[first][1]
    for index, pair in enumerate(pairs):
        gains = "".join(f" {results[n][1][index] - baseline[index]:>+24.2f}" for n in names)
        print(f"{pair['name']:<36} {pair['extent']:>6}{gains}")


def write_picture(path: Path, name: str, results: dict, pairs: list[dict]) -> None:
    """PNG of the pairs where ``name`` gains most, a median amount and least: per row,
    a 400×260 crop (where blur changed the photo most) of input | ``name`` | sharp."""
    outputs, psnrs = results[name]
    gains = np.array(psnrs) - np.array(results["blurred input"][1])
    order = np.argsort(gains)
    rows = []
    for index in (order[-1], order[len(order) // 2], order[0]):
        pair, output = pairs[index], outputs[index]
        change = np.abs(pair["sharp"].astype(np.float32) - pair["blurred"]).mean(axis=2)
        change = cv2.blur(change, (101, 101))
        height, width = change.shape
        y, x = np.unravel_index(change[130:-130, 200:-200].argmax(), (height - 260, width - 400))
        panels = [
            image[y : y + 260, x : x + 400] for image in (pair["blurred"], output, pair["sharp"])
        ]
        label = f"{pair['name']}: {gains[index]:+.2f} dB"
        row = np.ascontiguousarray(np.hstack(panels)[:, :, ::-1])
        cv2.putText(row, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        rows.append(row)
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {path}: input | {name} | sharp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        nargs="*",
        default=None,
        help="names, files or URLs (default: every deblurring weight file on this machine)",
    )
    parser.add_argument("--size", type=int, default=1280, help="longer side in px")
    parser.add_argument("--per-photo", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", action="store_true", help="sensor noise on the blurred inputs")
    parser.add_argument(
        "--photos",
        nargs="+",
        default=list(HELD_OUT),
        metavar="FOLDER/STEM",
        help="photos under ../shared/datasets instead of the held-out ones, e.g. to choose "
        "settings on training photos (photos-extra/Dune)",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="only the blurred input and the weights"
    )
    parser.add_argument(
        "--per-pair", action="store_true", help="also print every pair's gain per method"
    )
    parser.add_argument(
        "--picture",
        type=Path,
        help="write a PNG: input | first --weights | sharp, for its best, median and worst pair",
    )
    args = parser.parse_args()
    photos = tuple(args.photos)
    pairs = build_set(args.size, args.per_photo, args.seed, args.noise, photos)
    methods = {"blurred input": lambda pair: pair["blurred"]}
    if not args.no_baselines:
        methods["unsharp mask"] = unsharp
        methods["Wiener (true kernel)"] = wiener
        methods["Richardson-Lucy (true kernel)"] = richardson_lucy
        methods["hyper-Laplacian (true kernel)"] = hyper_laplacian
    for weights in available_weights("deblur") if args.weights is None else args.weights:
        methods[weights] = model_method(weights)
    extents = sorted(pair["extent"] for pair in pairs)
    which = "held-out" if photos == HELD_OUT else "chosen"
    print(
        f"{len(pairs)} pairs from {len(photos)} {which} photos, {args.size} px on the longer "
        f"side, seed {args.seed}, kernel extents {extents[0]}-{extents[-1]} px"
    )
    results = print_table(methods, pairs, EXTENT_BINS)
    if args.per_pair:
        print_pairs(results, pairs)
    if args.picture and len(methods) > 1:
        shown = list(methods)[-1] if args.weights is None else args.weights[0]
        write_picture(args.picture, shown, results, pairs)


if __name__ == "__main__":
    main()
