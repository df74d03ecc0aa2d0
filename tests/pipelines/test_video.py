"""Videos: every frame restored, timing, size and sound kept, nothing partial left behind."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from deblurcli.errors import InputImageError
from deblurcli.pipelines.video import restore_video

FRAMES, WIDTH, HEIGHT, RATE = 12, 96, 64, 24


def make_clip(path: Path, audio: bool = True) -> None:
    """A moving bar at 24 fps, with a stereo AAC tone when ``audio``."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream("aac", rate=48000) if audio else None
        for i in range(FRAMES):
            pixels = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
            pixels[:, i * 6 : i * 6 + 12] = 220
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        if sound is not None:
            sound.layout = "stereo"
            for i in range(24):
                tone = np.sin(np.arange(1024) / 8 + i).astype(np.float32) * 0.3
                frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp")
                frame.sample_rate, frame.pts = 48000, i * 1024
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.dts is not None]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    make_clip(path)
    return path


def test_every_frame_is_restored_and_timing_size_and_sound_are_kept(clip, tmp_path):
    out = tmp_path / "out" / "clip.mp4"
    seen = []
    report = restore_video(clip, out, lambda pixels: 255 - pixels, on_frame=seen.append)
    assert report.frames == FRAMES and seen == list(range(1, FRAMES + 1))
    with av.open(str(clip)) as source, av.open(str(out)) as result:
        original, restored = source.streams.video[0], result.streams.video[0]
        assert restored.frames == FRAMES
        assert restored.average_rate == Fraction(RATE)
        assert (restored.codec_context.width, restored.codec_context.height) == (WIDTH, HEIGHT)
        assert restored.duration * restored.time_base == original.duration * original.time_base
    assert _audio_packets(out) == _audio_packets(clip)  # the sound, byte for byte
    inverted = [255 - f.astype(int) for f in _frames(clip)]
    for expected, got in zip(inverted, _frames(out), strict=True):
        assert np.abs(got.astype(int) - expected).mean() < 4  # restored, not copied
    assert [p.name for p in out.parent.iterdir()] == ["clip.mp4"]


def test_a_clip_without_sound_says_so(tmp_path):
    silent = tmp_path / "silent.mp4"
    make_clip(silent, audio=False)
    report = restore_video(silent, tmp_path / "o.mp4", lambda pixels: pixels)
    assert report.frames == FRAMES and "no audio track in the input" in report.notes


def test_an_interrupted_video_leaves_no_partial_file(clip, tmp_path):
    out = tmp_path / "out"
    calls = []

    def interrupted(pixels):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return pixels

    with pytest.raises(KeyboardInterrupt):
        restore_video(clip, out / "clip.mp4", interrupted)
    assert list(out.iterdir()) == []


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    with pytest.raises(InputImageError, match="cannot be read as a video") as error:
        restore_video(fake, tmp_path / "o.mp4", lambda pixels: pixels)
    assert str(fake) in str(error.value)
