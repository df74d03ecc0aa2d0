"""Training images per second per backbone and precision at 256x256, with the real loop.

Sharp crops from ../shared/datasets/photos are blurred on the fly (the
synth-blur camera model). Each backbone runs ``--steps`` steps after two
warm-up steps, without validation, once per ``--precisions`` entry (the
``deblur train --precision`` values: fp32, bf16, fp16 on CUDA, auto).

    python benchmarks/train_speed.py                          # fast preset, CPU, fp32 and bf16
    python benchmarks/train_speed.py --preset gan --backbones mobilenet
    python benchmarks/train_speed.py --device cuda --batch-size 16 --precisions bf16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"


def measure(
    backbone: str, preset: str, batch: int, steps: int, device: str, precision: str
) -> float:
    import torch

    from deblurcli.device import resolve_device
    from deblurcli.train.data import find_data
    from deblurcli.train.loop import Trainer
    from deblurcli.train.presets import resolve

    overrides = {}
    if preset == "gan":  # DeblurGAN-v2's adversarial part (its VGG term needs ImageNet weights)
        overrides = {"gan_loss": "ragan-ls", "critic": "double", "adversarial_weight": 0.01}
    config_model = {} if backbone == "resnet" else {"norm": "batch"}
    config = resolve(
        "fast",
        model=backbone,
        model_config=config_model,
        steps=steps + 2,
        batch_size=batch,
        crop=256,
        val_every=10**9,
        log_every=1,
        workers=2,
        precision=precision,
        **overrides,
    )
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(config, find_data(PHOTOS), None, Path(run) / "r", resolve_device(device))
        started = None
        for report in trainer.run():
            if report.step == 2:
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbones", nargs="+", default=["mobilenet", "mobilenet-dsc", "inception", "resnet"]
    )
    parser.add_argument("--preset", choices=["fast", "gan"], default="fast")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    print(f"preset {args.preset}, 256x256 crops, batch {args.batch_size}, device {args.device}")
    print(f"{'backbone':<15} " + " ".join(f"{p + ' img/s':>11}" for p in precisions))
    for backbone in args.backbones:
        rates = [
            measure(backbone, args.preset, args.batch_size, args.steps, args.device, precision)
            for precision in precisions
        ]
        print(f"{backbone:<15} " + " ".join(f"{rate:>11.2f}" for rate in rates), flush=True)


if __name__ == "__main__":
    main()
