"""Training images per second per backbone at 256x256, with the real training loop.

Sharp crops from ../shared/datasets/photos are blurred on the fly (the
synth-blur camera model). Each backbone runs ``--steps`` steps after two
warm-up steps, without validation.

    python benchmarks/train_speed.py                          # fast preset, CPU
    python benchmarks/train_speed.py --preset gan --backbones mobilenet
    python benchmarks/train_speed.py --device cuda --batch-size 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"


def measure(backbone: str, preset: str, batch: int, steps: int, device: str) -> float:
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
    args = parser.parse_args()
    print(f"preset {args.preset}, 256x256 crops, batch {args.batch_size}, device {args.device}")
    print(f"{'backbone':<15} {'images/s':>9}")
    for backbone in args.backbones:
        rate = measure(backbone, args.preset, args.batch_size, args.steps, args.device)
        print(f"{backbone:<15} {rate:>9.2f}")


if __name__ == "__main__":
    main()
