"""Train the refiner of the blind deconvolution on what that deconvolution gets wrong.

Run as ``python -m deblurcli.train.deconv_refiner --help``. Two steps:

1. **Triples.** Each training photo is shrunk to ``WORK_SIDE`` px (the size the
   kernel is estimated at), blurred by one camera shake drawn over the
   ``fast`` recipe's range with sensor noise (as ``benchmarks/quality.py``
   blurs its held-out photos), and deconvolved as the blind deconvolution
   does before its refiner: with the L0 search's kernel and, when the weights
   file holds a refiner and ``kernel_refits``, with each re-fitted kernel too,
   so the refiner learns every deconvolution it meets at inference.
   (blurred, deconvolutions, sharp) is cached as one ``.npz`` per photo and
   copy, with the true and estimated kernels, so an interrupted run, or a
   longer one, reuses them. This is the slow part: about 15 s per photo, pass
   and core. With ``--wrong-kernels N``, each triple also gets N deconvolutions
   with wrong versions of its true kernel (:mod:`~deblurcli.train.kernel_errors`),
   cached beside it: the failures the search makes on a few photos, made on all.
2. **Fitting.** Random crops (with flips and quarter turns) of the triples, each
   with one of its deconvolutions, teach
   :class:`~deblurcli.models.refiner.DeconvRefiner` to map (deconvolved, blurred)
   to sharp, with an L1 loss, AdamW and a cosine learning rate. A share
   (``--wrong-share``) of the crops comes from the wrong-kernel deconvolutions,
   so the refiner learns to take back what a wrong kernel does.
   Whole validation photos, never trained on, are scored every
   ``--val-every`` steps; the run keeps ``last.pt`` (resumable) and writes the
   weights file from the step with the best validation gain.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from deblurcli.device import resolve_training_precision
from deblurcli.io.discovery import list_images
from deblurcli.io.output import atomic_path
from deblurcli.metrics import psnr
from deblurcli.models._builder import load_model, save_weights
from deblurcli.models.blind import BlindDeconvolution
from deblurcli.models.refiner import DeconvRefiner
from deblurcli.ops import deconv
from deblurcli.ops.blur_estimate import kernel_extent
from deblurcli.ops.color import pixels_to_tensor, tensor_to_pixels
from deblurcli.ops.pairs import SynthSettings, downscale, synthesize_pairs
from deblurcli.ops.synthesis import SynthesisConfig
from deblurcli.train.checkpoint import CHECKPOINT, load_run_state, save_run_state
from deblurcli.train.data import synth_settings
from deblurcli.train.kernel_errors import perturb_kernel
from deblurcli.train.presets import FAST_SYNTH

# Photos are blurred and deconvolved at this longer side: the kernel's working size.
WORK_SIDE = 1280
# The architecture name a refiner run's checkpoint is recorded under.
RUN_KIND = "deconv-refiner"
# Validation scores this centre square of each validation photo (px).
VALIDATION_SIDE = 640


@dataclass
class Triple:
    """One blurred photo, its deconvolutions and the sharp original: (H, W, 3) uint8 RGB.

    ``deconvolutions`` holds one image per kernel the blind deconvolution uses on
    it, in order: the search's, then each re-fit's; the refiner's output on the
    last one is what the model returns. ``wrong`` holds deconvolutions with wrong
    versions of the true kernel (none unless asked for).
    """

    name: str
    blurred: np.ndarray
    deconvolutions: tuple[np.ndarray, ...]
    sharp: np.ndarray
    extent: int  # the shake kernel's extent, px
    wrong: tuple[np.ndarray, ...] = ()


def shake_settings() -> SynthSettings:
    """Camera shake over the ``fast`` recipe's range, with its sensor noise."""
    recipe = synth_settings(
        {key: FAST_SYNTH[key] for key in ("max_len", "exposure", "shot_noise", "read_noise")}
    )
    synthesis = SynthesisConfig(
        noise=True,
        saturation=False,
        shot_noise=recipe.synthesis.shot_noise,
        read_noise=recipe.synthesis.read_noise,
    )
    return SynthSettings(crop=None, kernels=recipe.kernels, synthesis=synthesis)


def deconvolution_settings(path: Path) -> dict:
    """The blind deconvolution's settings in the weights file ``path``, without its refiner
    (so a shipped file with a refiner can seed the next refiner's training)."""
    _, info = load_model(path, "deconv")
    config = json.loads(info.metadata["config"])
    return {k: v for k, v in config.items() if k not in ("refiner_widths", "refiner_blocks")}


def deconvolve_as_inference(
    model: BlindDeconvolution, pixels: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The deconvolutions the model's refiner sees on one photo, and their kernels.

    Args:
        model: the blind deconvolution; its refiner (if any) makes the re-fits.
        pixels: (H, W, 3) uint8 RGB.

    Returns:
        (H, W, 3) uint8 deconvolutions and (K, K) float32 kernels, one per kernel of
        :meth:`~deblurcli.models.blind.BlindDeconvolution.estimate_kernels`.
    """
    # Bit for bit as at inference: the restorer feeds [-1, 1], the model reads [0, 1]
    # back, and the kernel search can turn last-bit differences into another kernel.
    model_input = torch.from_numpy(pixels).permute(2, 0, 1).float() * (1.0 / 255) * 2 - 1
    photo = ((model_input + 1) / 2).clamp(0, 1)
    with torch.inference_mode():
        sigma, _, kernels = model.eval().estimate_kernels(photo)
        images = [model.deconvolve(photo, kernel, sigma) for kernel in kernels]
    as_pixels = [(image * 255).round().byte().permute(1, 2, 0).numpy() for image in images]
    return as_pixels, [kernel.numpy() for kernel in kernels]


def wrong_deconvolutions(
    model: BlindDeconvolution, blurred: np.ndarray, kernel: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``blurred`` deconvolved as the model does, with ``count`` wrong versions of its
    true ``kernel`` (:func:`~deblurcli.train.kernel_errors.perturb_kernel`, drawn
    from ``seed``): (count, H, W, 3) uint8 and the (K', K') kernels."""
    rng = np.random.default_rng(seed)
    photo = pixels_to_tensor(blurred)
    sigma = deconv.estimate_noise(photo[1])
    images, kernels = [], []
    with torch.inference_mode():
        for _ in range(count):
            wrong = perturb_kernel(kernel, rng)
            image = model.deconvolve(photo, torch.from_numpy(wrong), sigma)
            images.append(tensor_to_pixels(image, np.uint8))
            kernels.append(wrong)
    return np.stack(images), kernels


def make_triple(
    path: Path, seed: int, deconvolution: Path, cache: Path, wrong_kernels: int = 0
) -> Triple:
    """The triple of ``path`` blurred with ``seed``, read from ``cache`` when it is there.

    The ``.npz`` holds ``blurred`` and ``sharp`` (H, W, 3), ``deconv`` (P, H, W, 3)
    and the kernels: ``kernel`` (the true one) and ``estimates`` (P, K, K). With
    ``wrong_kernels``, a second file (``…-wrong.npz``) holds ``deconv`` (N, H, W, 3)
    made with N wrong kernels (``kernel0`` …), remade when it holds fewer.
    """
    cached = cache / f"{path.parent.name}_{path.stem}-s{seed}.npz"
    if not cached.exists():
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f"{path}: not an image OpenCV can read")
        pixels = np.ascontiguousarray(downscale(pixels[:, :, ::-1], WORK_SIDE))
        (made,) = synthesize_pairs(pixels, [seed], shake_settings())
        model, _ = load_model(deconvolution, "deconv")
        assert isinstance(model, BlindDeconvolution)
        images, kernels = deconvolve_as_inference(model, made.blurred)
        with atomic_path(cached) as temporary, open(temporary, "wb") as file:
            np.savez(
                file,
                blurred=made.blurred,
                deconv=np.stack(images),
                sharp=made.sharp,
                extent=kernel_extent(made.kernel.numpy()),
                kernel=made.kernel.numpy(),
                estimates=np.stack(kernels),
            )
    data = np.load(cached)
    deconvolutions = data["deconv"]
    if deconvolutions.ndim == 3:  # a cache from before re-fits were kept: (H, W, 3)
        deconvolutions = deconvolutions[None]
    wrong: tuple[np.ndarray, ...] = ()
    if wrong_kernels > 0:
        wrong_file = cached.with_name(f"{cached.stem}-wrong.npz")
        images = np.load(wrong_file)["deconv"] if wrong_file.exists() else ()
        if len(images) < wrong_kernels:
            model, _ = load_model(deconvolution, "deconv")
            assert isinstance(model, BlindDeconvolution)
            images, kernels = wrong_deconvolutions(
                model, data["blurred"], data["kernel"], wrong_kernels, seed
            )
            with atomic_path(wrong_file) as temporary, open(temporary, "wb") as file:
                np.savez(file, deconv=images, **{f"kernel{i}": k for i, k in enumerate(kernels)})
        wrong = tuple(images[:wrong_kernels])
    return Triple(
        f"{path.stem}-s{seed}",
        data["blurred"],
        tuple(deconvolutions),
        data["sharp"],
        int(data["extent"]),
        wrong,
    )


def make_triples(
    photos: Sequence[Path],
    seeds: Sequence[int],
    deconvolution: Path,
    cache: Path,
    workers: int,
    wrong_kernels: int = 0,
) -> list[Triple]:
    """One triple per photo and copy seed; photo ``i`` with copy seed ``s`` is blurred
    with the synth seed ``s·100000 + i·1000``, so every photo gets its own kernel.
    ``wrong_kernels``: see :func:`make_triple`."""
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(path, seed * 100_000 + index * 1000) for seed in seeds
            for index, path in enumerate(photos)]  # fmt: skip
    # One thread per worker: the workers share the cores.
    with ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = [
            pool.submit(make_triple, path, s, deconvolution, cache, wrong_kernels)
            for path, s in jobs
        ]
        return [future.result() for future in futures]


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], the refiner's range."""
    return pixels_to_tensor(pixels) * 2 - 1


def sample_batch(
    triples: Sequence[Triple], size: int, crop: int, rng: random.Random, wrong_share: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(blurred, deconvolved, sharp), each (size, 3, crop, crop) in [-1, 1], channels-last:
    random crops of random triples, each with one of its deconvolutions (a wrong-kernel
    one with probability ``wrong_share``, where the triple has them), turned and
    flipped alike."""
    stacks: tuple[list, list, list] = ([], [], [])
    for _ in range(size):
        triple = triples[rng.randrange(len(triples))]
        height, width = triple.blurred.shape[:2]
        top, left = rng.randrange(height - crop + 1), rng.randrange(width - crop + 1)
        turns, flip = rng.randrange(4), rng.random() < 0.5
        choices = triple.deconvolutions
        if triple.wrong and rng.random() < wrong_share:
            choices = triple.wrong
        deconvolved = choices[rng.randrange(len(choices))]
        images = (triple.blurred, deconvolved, triple.sharp)
        for stack, pixels in zip(stacks, images, strict=True):
            patch = np.rot90(pixels[top : top + crop, left : left + crop], turns)
            stack.append(_tensor(patch[:, ::-1] if flip else patch))
    blurred, deconvolved, sharp = (
        torch.stack(stack).contiguous(memory_format=torch.channels_last) for stack in stacks
    )
    return blurred, deconvolved, sharp


def validation_gains(
    refiner: DeconvRefiner, triples: Sequence[Triple], wrong: bool = False
) -> list[float]:
    """PSNR gain (dB) of the refined last deconvolution (the model's output; with
    ``wrong``, the first wrong-kernel one instead) over the blurred input, per triple,
    on the centre ``VALIDATION_SIDE`` square, quantised to 8 bits as a photo is."""
    refiner.eval()
    gains = []
    with torch.inference_mode():
        for triple in triples:
            height, width = triple.blurred.shape[:2]
            side = min(VALIDATION_SIDE, height, width) // refiner.multiple * refiner.multiple
            top, left = (height - side) // 2, (width - side) // 2
            device = next(refiner.parameters()).device
            blurred, deconvolved, sharp = (
                _tensor(p[top : top + side, left : left + side])[None].to(device)
                for p in (
                    triple.blurred,
                    triple.wrong[0] if wrong else triple.deconvolutions[-1],
                    triple.sharp,
                )
            )
            refined = refiner(deconvolved, blurred).float()

            def quantised(x: torch.Tensor) -> torch.Tensor:
                return ((x + 1) * 127.5).round().clamp(0, 255) / 255

            target = quantised(sharp)
            gains.append(
                float(psnr(quantised(refined), target)[0] - psnr(quantised(blurred), target)[0])
            )
    refiner.train()
    return gains


@dataclass
class _Progress:
    """What else a refiner run checkpoints: the batch sampler's random state and the step
    of the best validation so far."""

    rng: random.Random
    best_step: int = 0

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "best_step": self.best_step}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.best_step = state["best_step"]


def fit(
    refiner: DeconvRefiner,
    training: Sequence[Triple],
    validation: Sequence[Triple],
    run: Path,
    steps: int,
    batch_size: int = 8,
    crop: int = 128,
    learning_rate: float = 1e-3,
    val_every: int = 500,
    seed: int = 0,
    log: Callable[[str], None] = print,
    device: torch.device = torch.device("cpu"),
    autocast: torch.dtype = torch.float32,
    deadline: float | None = None,
    wrong_share: float = 0.0,
) -> tuple[int, float]:
    """Train ``refiner`` in place; resume from ``run/last.pt`` when it is there.

    Every ``val_every`` steps (and at the end) the validation gain is logged,
    ``run/last.pt`` is written and, when the gain is the best so far,
    ``run/best.pt`` (the refiner's state dict). ``autocast`` other than float32
    runs the forward pass in that dtype (weights and optimiser stay float32).
    Past ``deadline`` (``time.monotonic()``), the run validates, saves and stops
    early. ``wrong_share``: see :func:`sample_batch`; when the validation triples
    have wrong-kernel deconvolutions, their gain is logged too (not used to choose).
    Returns the best (step, mean gain).
    """
    run.mkdir(parents=True, exist_ok=True)
    refiner.to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.AdamW(refiner.parameters(), learning_rate, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
    progress = _Progress(random.Random(seed))
    rng = progress.rng
    parts = {"model": refiner, "optimiser": optimiser, "scaler": scaler, "progress": progress}
    start, best = 0, (0, -math.inf)
    if (run / CHECKPOINT).exists():
        start, best_gain = load_run_state(run / CHECKPOINT, device, RUN_KIND, parts)
        best = (progress.best_step, best_gain)
        log(f"resumed at step {start}")
    running, clock = 0.0, time.perf_counter()
    for step in range(start + 1, steps + 1):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * 0.5 * (1 + math.cos(math.pi * step / steps))
        blurred, deconvolved, sharp = (
            x.to(device) for x in sample_batch(training, batch_size, crop, rng, wrong_share)
        )
        with torch.autocast(device.type, autocast, enabled=autocast != torch.float32):
            refined = refiner(deconvolved, blurred)
        loss = (refined.float() - sharp).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        running += float(loss.detach())
        if step % 50 == 0:
            seconds = (time.perf_counter() - clock) / 50
            log(f"step {step}: L1 {running / 50:.4f}, {seconds:.2f} s/step")
            running, clock = 0.0, time.perf_counter()
        out_of_time = deadline is not None and time.monotonic() > deadline
        if step % val_every == 0 or step == steps or out_of_time:
            gains = validation_gains(refiner, validation)
            mean = float(np.mean(gains))
            log(f"step {step}: validation gain {mean:+.3f} dB (worst {min(gains):+.3f})")
            if all(triple.wrong for triple in validation):
                wrong = validation_gains(refiner, validation, wrong=True)
                log(f"step {step}: wrong-kernel validation gain {np.mean(wrong):+.3f} dB "
                    f"(worst {min(wrong):+.3f})")  # fmt: skip
            if mean > best[1]:
                best = (step, mean)
                with atomic_path(run / "best.pt") as temporary:
                    torch.save(refiner.state_dict(), temporary)
            progress.best_step = best[0]
            save_run_state(run / CHECKPOINT, step, RUN_KIND, best[1], parts)
            clock = time.perf_counter()
        if out_of_time:
            log(f"stopped at step {step}: out of time")
            break
    return best


def export(
    refiner: DeconvRefiner, deconvolution: Path, output: Path, metadata: dict[str, str]
) -> None:
    """Write the deconvolution's settings with ``refiner`` as one fp16 weights file."""
    config = {**deconvolution_settings(deconvolution), "refiner_widths": list(refiner.widths),
              "refiner_blocks": list(refiner.blocks)}  # fmt: skip
    model = BlindDeconvolution(**config)
    assert model.refiner is not None
    model.refiner.load_state_dict(refiner.state_dict())
    save_weights(model, output, "deconv", config, torch.float16, metadata)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deblurcli.train.deconv_refiner")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="photo folders")
    parser.add_argument("--exclude", nargs="*", default=[], help="photo stems to leave out")
    parser.add_argument("--validation", nargs="+", required=True, help="validation stems")
    parser.add_argument("--copies", type=int, nargs="+", default=[21], help="copy seeds")
    parser.add_argument("--val-copies", type=int, nargs="+", default=[31, 32])
    parser.add_argument("--deconvolution", type=Path, required=True,
                        help="weights file of the blind deconvolution to refine")  # fmt: skip
    parser.add_argument("--cache", type=Path, required=True, help="folder for the triples")
    parser.add_argument("--run", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="peak of the cosine schedule (lower to fine-tune --init)")  # fmt: skip
    parser.add_argument("--widths", type=int, nargs=3, default=[32, 64, 96])
    parser.add_argument("--blocks", type=int, nargs=3, default=[1, 1, 3])
    parser.add_argument("--init", type=Path,
                        help="start from the refiner in this weights file (when run/last.pt "
                        "is not there)")  # fmt: skip
    parser.add_argument(
        "--wrong-kernels",
        type=int,
        default=0,
        help="deconvolutions per triple with wrong versions of its true kernel",
    )
    parser.add_argument(
        "--wrong-share",
        type=float,
        default=0.25,
        help="share of the crops taken from those deconvolutions",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp16 or fp32")
    parser.add_argument("--minutes", type=float,
                        help="time budget: validate, save and export before it ends")  # fmt: skip
    parser.add_argument("--output", "-o", type=Path, required=True, help="weights file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    device = torch.device(args.device)
    autocast = resolve_training_precision(args.precision, device)

    photos = sorted(
        (p for folder in args.photos for p in list_images(folder)
         if p.stem not in set(args.exclude)),
        key=lambda p: f"{p.parent.name}/{p.stem}",
    )  # fmt: skip
    held = [p for p in photos if p.stem in set(args.validation)]
    training = [p for p in photos if p.stem not in set(args.validation)]
    print(f"{len(training)} training photos, {len(held)} validation photos", flush=True)
    train_triples = make_triples(training, args.copies, args.deconvolution, args.cache,
                                 args.workers, args.wrong_kernels)  # fmt: skip
    val_triples = make_triples(held, args.val_copies, args.deconvolution, args.cache,
                               args.workers, args.wrong_kernels)  # fmt: skip
    refiner = DeconvRefiner(tuple(args.widths), tuple(args.blocks))
    alone = np.mean(validation_gains(refiner, val_triples))  # it starts as the identity
    print(f"validation: the deconvolution alone gains {alone:+.3f} dB", flush=True)
    if args.init is not None:
        start, _ = load_model(args.init, "deconv")
        assert isinstance(start, BlindDeconvolution)
        if start.refiner is None:
            raise SystemExit(f"{args.init}: holds no refiner to start from")
        refiner = start.refiner
    # Leave a minute (or a tenth of a short budget) for the last validation and export.
    deadline = None
    if args.minutes is not None:
        deadline = started + 60 * args.minutes - min(60.0, 6 * args.minutes)
    step, gain = fit(refiner, train_triples, val_triples, args.run, args.steps,
                     learning_rate=args.learning_rate,
                     log=lambda line: print(line, flush=True), device=device,
                     autocast=autocast, deadline=deadline,
                     wrong_share=args.wrong_share)  # fmt: skip
    refiner.load_state_dict(torch.load(args.run / "best.pt", map_location="cpu"))
    export(
        refiner,
        args.deconvolution,
        args.output,
        {
            "training_photos": json.dumps(sorted(p.name for p in training)),
            "validation_photos": json.dumps(sorted(p.name for p in held)),
            "selection": f"step {step} of {args.steps}: validation gain {gain:+.3f} dB",
        },
    )
    print(f"wrote {args.output} (step {step}, validation gain {gain:+.3f} dB)", flush=True)


if __name__ == "__main__":
    main()
