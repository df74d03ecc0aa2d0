"""Frames per second of ``deblur deblur`` on a 1280x720 video, against decoding and encoding alone.

A clip of ``--frames`` frames (a slow pan over one of the test photographs,
H.264) is made, then restored by
``deblurcli.pipelines.video.restore_video`` with each weights file given,
as ``deblur deblur CLIP.mp4`` runs it (default codec libx264, CRF 17). The
``copy`` row passes frames through unchanged: the cost of decoding, colour
conversion and encoding.

    python benchmarks/video_speed.py --frames 24 --weights deblurcli-mobilenet-dsc
    python benchmarks/video_speed.py --frames 4 --weights deblurcli-deconv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_photo_clip(path: Path, frames: int, width: int = 1280, height: int = 720) -> None:
    """A slow pan over the first test photograph: (frames, height, width) of H.264."""
    photo = sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg"))[0]
    with Image.open(photo) as image:
        big = np.asarray(image.convert("RGB").resize((width + 4 * frames, height)))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[:, 4 * i : 4 * i + width]))
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def main() -> None:
    from deblurcli.pipelines.restore import Restorer
    from deblurcli.pipelines.video import restore_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--weights", nargs="*", default=["deblurcli-mobilenet-dsc"])
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_photo_clip(clip, args.frames)
        print(f"{args.frames} frames at 1280x720, libx264 CRF 17 out")
        print(f"{'method':<28} {'seconds':>8} {'frames/s':>9}")
        cases = [("copy", lambda pixels: pixels)]
        for name in args.weights:
            restorer = Restorer.from_weights(name, precision=args.precision)
            cases.append((name, lambda pixels, r=restorer: r.restore_array(pixels)[0]))
        for name, restore in cases:
            started = time.perf_counter()
            report = restore_video(clip, Path(tmp) / f"{name}.mp4", restore)
            seconds = time.perf_counter() - started
            print(f"{name:<28} {seconds:>8.2f} {report.frames / seconds:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
