"""Videos, frame by frame: decode, restore each frame with the photo path, encode; sound copied.

PyAV (FFmpeg's libraries inside its wheels) reads and writes the containers,
so no ffmpeg program is needed. Three threads overlap the work: one decodes
(and passes audio packets through untouched), the caller's thread restores,
one encodes and muxes in order. The output keeps the input's frame size,
frame timestamps (so its rate and duration), colour metadata and every audio
packet byte for byte; it is written to a temporary file and renamed into
place, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deblurcli.errors import InputImageError, OutputError
from deblurcli.io.discovery import VIDEO_SUFFIXES
from deblurcli.io.output import atomic_path

DEFAULT_CODEC = "libx264"
# CRF 17-18 is x264's "visually lossless"; lower is better and larger.
DEFAULT_QUALITY = 17
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_CONTAINERS[".avi"] = "avi"
_COLOUR = ("color_primaries", "color_trc", "colorspace", "color_range")
_QUEUE_FRAMES = 4  # decoded frames waiting for the network


@dataclass
class VideoReport:
    """How one video went: frames restored, seconds, and notes for the user."""

    frames: int = 0
    seconds: float = 0.0
    megapixels_per_frame: float = 0.0
    notes: list[str] = field(default_factory=list)


def is_video(path: Path) -> bool:
    """Whether ``path`` is a video by its extension (``VIDEO_SUFFIXES``)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def count_frames(source: Path) -> int | None:
    """Frames in the first video stream, from the container's header (None if unknown)."""
    import av

    try:
        with av.open(str(source)) as container:
            return container.streams.video[0].frames or None
    except (av.FFmpegError, IndexError):
        return None


def restore_video(
    source: Path,
    target: Path,
    restore_frame: Callable[[np.ndarray], np.ndarray],
    codec: str = DEFAULT_CODEC,
    quality: int = DEFAULT_QUALITY,
    on_frame: Callable[[int], None] | None = None,
) -> VideoReport:
    """Restore every frame of ``source``'s first video stream into ``target``.

    Args:
        restore_frame: (H, W, 3) uint8 RGB -> the same shape and dtype.
        codec: the video encoder (``libx264``, ``libx265``, ``mpeg4``...).
        quality: the encoder's constant rate factor (x264/x265 CRF), or for other
            encoders its ``qscale``-like quality; lower is better.
        on_frame: called with the number of frames done after each one.

    Raises:
        InputImageError: not a video, or damaged.
        OutputError: the encoder or container cannot be used (names the codec).
    """
    import av

    started = time.perf_counter()
    try:
        source_container = av.open(str(source))
    except av.FFmpegError as exc:
        raise InputImageError(f"cannot be read as a video ({exc})", source) from None
    with source_container:
        if not source_container.streams.video:
            raise InputImageError("holds no video stream", source)
        video_in = source_container.streams.video[0]
        audio_in = list(source_container.streams.audio)
        report = VideoReport()
        size = video_in.codec_context.width * video_in.codec_context.height
        report.megapixels_per_frame = size / 1e6
        target.parent.mkdir(parents=True, exist_ok=True)
        container = _CONTAINERS.get(target.suffix.lower(), "mp4")
        with (
            atomic_path(target) as temporary,
            av.open(str(temporary), "w", format=container) as output,
        ):
            video_out = _video_stream(output, video_in, codec, quality, target)
            audio_out = {s.index: output.add_stream_from_template(s) for s in audio_in}
            with ThreadPoolExecutor(1) as writer:  # one thread: packets are muxed in order
                pending: deque[Future] = deque()
                for kind, item in _decoded(source_container, video_in, audio_in, source):
                    if kind == "audio":
                        item.stream = audio_out[item.stream.index]
                        pending.append(writer.submit(output.mux, item))
                        continue
                    frame, pixels = item
                    restored = av.VideoFrame.from_ndarray(restore_frame(pixels), format="rgb24")
                    restored.pts, restored.time_base = frame.pts, frame.time_base
                    pending.append(writer.submit(_encode, output, video_out, restored))
                    report.frames += 1
                    if on_frame is not None:
                        on_frame(report.frames)
                    while pending and pending[0].done():
                        pending.popleft().result()  # raises an encoder error here, early
                pending.append(writer.submit(_encode, output, video_out, None))  # flush
                for job in pending:
                    job.result()
    report.seconds = time.perf_counter() - started
    if not audio_in:
        report.notes.append("no audio track in the input")
    return report


def _video_stream(output, video_in, codec: str, quality: int, target: Path):
    """An encoder stream with the input's size, rate, time base and colour metadata."""
    import av

    try:
        stream = output.add_stream(codec, rate=video_in.average_rate or video_in.guessed_rate)
    except (av.FFmpegError, ValueError) as exc:
        raise OutputError(
            f"cannot encode with {codec!r} ({exc}): try --video-codec", target
        ) from None
    context = video_in.codec_context
    stream.width, stream.height = context.width, context.height
    stream.pix_fmt = "yuv420p"
    stream.time_base = video_in.time_base
    for name in _COLOUR:
        setattr(stream.codec_context, name, getattr(context, name))
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": str(quality)}
    else:
        stream.codec_context.qscale = quality
    return stream


def _encode(output, stream, frame) -> None:
    """Encode one frame (None: flush the encoder) and mux what comes out."""
    for packet in stream.encode(frame):
        output.mux(packet)


def _decoded(container, video_in, audio_in, source: Path) -> Iterator[tuple[str, object]]:
    """("audio", packet) and ("video", (frame, RGB pixels)) in stream order, decoded on a
    background thread a few frames ahead of the caller."""
    import av

    items: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    stop = threading.Event()

    def read() -> None:
        try:
            for packet in container.demux(video_in, *audio_in):
                if stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.dts is not None:  # the demuxer's empty flush packets
                        items.put(("audio", packet))
                    continue
                for frame in packet.decode():
                    items.put(("video", (frame, frame.to_ndarray(format="rgb24"))))
            items.put(("end", None))
        except av.FFmpegError as exc:
            items.put(("error", exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while True:
            kind, item = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise InputImageError(f"is a damaged video ({item})", source)
            yield kind, item
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue finish
            try:
                items.get_nowait()
            except queue.Empty:
                reader.join(0.05)
