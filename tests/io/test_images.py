"""Reading and writing: formats, bit depth, gray, alpha, orientation, metadata, bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from deblurcli.errors import InputImageError
from deblurcli.io.images import Photo, encode_image, read_image, write_atomic, write_image

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make
    return exif


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_lossless_formats_read_back_exactly(tmp_path, rgb, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(rgb).save(path)
    photo = read_image(path)
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (37, 53, 3)
    np.testing.assert_array_equal(photo.pixels, rgb)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_lossy_formats_read_as_pillow_decodes_them(tmp_path, rgb, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(rgb).save(path, quality=95)
    expected = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(read_image(path).pixels.astype(int) - expected).max() <= 2


@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_stays_16_bit_through_read_and_write(tmp_path, rng, fmt, channels):
    array = rng.integers(0, 65536, (21, 34, channels), dtype=np.uint16)
    source = tmp_path / f"in.{'tif' if fmt == 'tiff' else fmt}"
    cv_array = array[:, :, 0] if channels == 1 else array[:, :, [2, 1, 0, 3][:channels]]
    cv2.imwrite(str(source), cv_array)
    photo = read_image(source)
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, array[:, :, : 1 if channels == 1 else 3])
    if channels == 4:
        np.testing.assert_array_equal(photo.alpha, array[:, :, 3])
    target = tmp_path / f"out.{fmt}"
    write_image(photo, target, fmt)
    again = read_image(target)
    np.testing.assert_array_equal(again.pixels, photo.pixels)
    if channels == 4:
        np.testing.assert_array_equal(again.alpha, photo.alpha)


def test_gray_stays_gray_and_alpha_is_kept(tmp_path, rng):
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    photo = read_image(tmp_path / "la.png")
    assert photo.is_gray
    np.testing.assert_array_equal(photo.pixels[:, :, 0], gray)
    np.testing.assert_array_equal(photo.alpha, alpha)
    write_image(photo, tmp_path / "out.png", "png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "LA"
        np.testing.assert_array_equal(np.asarray(out)[:, :, 1], alpha)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, rgb, orientation):
    path = tmp_path / "o.png"
    Image.fromarray(rgb).save(path, exif=_exif(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    photo = read_image(path)
    np.testing.assert_array_equal(photo.pixels, expected)
    kept = Image.Exif()
    kept.load(photo.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "TestCam"


@pytest.mark.parametrize(
    "fmt,depth",
    [("jpg", 8), ("png", 8), ("webp", 8), ("tiff", 8), ("png", 16), ("tiff", 16)],
)
def test_exif_icc_and_dpi_reach_the_output(tmp_path, rgb, fmt, depth):
    source = tmp_path / "in.jpg"
    Image.fromarray(rgb).save(source, exif=_exif(6), icc_profile=ICC, dpi=(300, 300), quality=95)
    photo = read_image(source)
    assert photo.icc_profile == ICC and photo.dpi == (300.0, 300.0)
    if depth == 16:
        photo = photo.with_pixels(photo.pixels.astype(np.uint16) * 257)
    target = tmp_path / f"out.{fmt}"
    write_image(photo, target, fmt)
    with Image.open(target) as out:
        assert out.info.get("icc_profile") == ICC
        if fmt != "webp":  # WebP has no resolution field
            assert out.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        exif = out.getexif()
        assert exif.get(0x0112) == 1 and exif.get(0x010F) == "TestCam"
        assert out.size == (37, 53)  # rotated upright: width and height swapped
    assert read_image(target).pixels.dtype == (
        np.uint16 if depth == 16 and fmt in ("png", "tiff") else np.uint8
    )


def test_jpeg_quality_is_95_by_default(tmp_path, rgb):
    from PIL import JpegImagePlugin  # noqa: F401

    photo = Photo(rgb, None, "jpg")
    data = encode_image(photo, "jpg")
    with Image.open(io.BytesIO(data)) as image:
        reference = io.BytesIO()
        image.save(reference, format="JPEG", quality="keep")
        luma_table = image.quantization[0]
    q95 = io.BytesIO()
    Image.fromarray(rgb).save(q95, format="JPEG", quality=95)
    assert luma_table == Image.open(q95).quantization[0]


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _truncated_jpeg(path: Path, rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jpg", b"", "empty"),
        ("text.jpg", b"this is not a picture\n", "not an image"),
        ("bomb.png", _png_header_only(20000, 20000), "decompression bombs"),
        ("tiny.png", None, "only 1×1 px"),
        ("cut.jpg", "truncated", "truncated JPEG"),
        ("cut.png", "truncated-png", "damaged or truncated PNG"),
    ],
)
def test_bad_files_get_one_clear_line_naming_them(tmp_path, rgb, name, content, message):
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (1, 1)).save(path)
    elif content == "truncated":
        path.write_bytes(_truncated_jpeg(path, np.tile(rgb, (8, 8, 1))))
    elif content == "truncated-png":
        buffer = io.BytesIO()
        Image.fromarray(np.tile(rgb, (8, 8, 1))).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputImageError, match=message) as info:
        read_image(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(InputImageError, match="is a folder"):
        read_image(tmp_path)


def test_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("deblurcli.io.output.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.png", b"data")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_replaces_whole_files(tmp_path):
    target = tmp_path / "sub" / "out.png"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_fast_png_is_lossless_and_keeps_metadata(tmp_path, rng, channels):
    array = rng.integers(0, 256, (23, 31, channels), dtype=np.uint8)
    photo = Photo(
        pixels=array[:, :, : 1 if channels == 1 else 3],
        alpha=array[:, :, 3] if channels == 4 else None,
        format="png",
        icc_profile=ICC,
        dpi=(300.0, 300.0),
    )
    path = tmp_path / "fast.png"
    write_atomic(path, encode_image(photo, "png", fast_png=True))
    back = read_image(path)
    np.testing.assert_array_equal(back.pixels, photo.pixels)
    if channels == 4:
        np.testing.assert_array_equal(back.alpha, photo.alpha)
    assert back.icc_profile == ICC
    assert back.dpi == pytest.approx((300.0, 300.0), abs=0.01)


def _png_row_filters(png: bytes) -> set[int]:
    """The filter type byte of every row of an 8-bit RGB, non-interlaced PNG."""
    width, height = struct.unpack(">II", png[16:24])
    data, offset = b"", 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        if png[offset + 4 : offset + 8] == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(data)
    stride = 1 + 3 * width
    return {raw[row * stride] for row in range(height)}


@pytest.mark.skipif(
    not hasattr(cv2, "IMWRITE_PNG_FILTER"), reason="OpenCV before 4.11 has no PNG filter setting"
)
def test_fast_png_filters_every_row_with_paeth(rng):
    smooth = np.repeat(np.arange(0, 250, 5, dtype=np.uint8)[None, :, None], 40, 0)
    pixels = np.concatenate([smooth, smooth[:, ::-1], smooth // 2], 2)
    pixels[::7] = rng.integers(0, 256, pixels[::7].shape, dtype=np.uint8)
    photo = Photo(pixels=np.ascontiguousarray(pixels), alpha=None, format="png")
    assert _png_row_filters(encode_image(photo, "png", fast_png=True)) == {4}  # Paeth
    # The default (adaptive) encoder chooses among the filters row by row.
    assert len(_png_row_filters(encode_image(photo, "png"))) > 1


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_formats_read_upright_with_exif_and_icc(tmp_path, suffix):
    from PIL import ImageCms

    from deblurcli.io.images import _register_heif

    _register_heif()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x010F] = "PhoneMaker"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / f"shot{suffix}"
    Image.fromarray(_gradient()).save(path, exif=exif.tobytes(), icc_profile=icc, quality=95)
    photo = read_image(path)
    assert photo.format == suffix.lstrip(".")
    assert photo.pixels.shape == (64, 48, 3)  # upright: width and height swapped
    upright = np.rot90(_gradient(), -1).astype(int)
    assert np.abs(photo.pixels.astype(int) - upright).mean() < 3  # lossy, but the same picture
    assert photo.icc_profile == icc
    written = Image.Exif()
    written.load(photo.exif)
    assert written[0x010F] == "PhoneMaker" and written.get(0x0112, 1) == 1


def test_ten_bit_heic_stays_16_bit_in_png(tmp_path):
    import pillow_heif

    ramp = (np.arange(64 * 48 * 3).reshape(48, 64, 3) * 7 % 1024).astype(np.uint16) << 6
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=ramp.tobytes())
    heif.save(tmp_path / "hdr.heic", quality=95)
    photo = read_image(tmp_path / "hdr.heic")
    assert photo.pixels.dtype == np.uint16 and photo.pixels.max() > 255
    write_image(photo, tmp_path / "hdr.png", "png")
    again = read_image(tmp_path / "hdr.png")
    assert again.pixels.dtype == np.uint16
    assert np.array_equal(again.pixels, photo.pixels)


def test_keep_writes_heic_and_falls_back_to_png_without_an_encoder(monkeypatch):
    from deblurcli.io import discovery

    assert discovery.output_format(Path("a.HEIF"), "keep") == "heic"
    assert discovery.output_path(Path("o"), Path("d/a.heic"), "keep", "") == Path("o/d/a.heic")
    monkeypatch.setattr(discovery, "can_write", lambda fmt: fmt != "heic")
    assert discovery.output_format(Path("a.heic"), "keep") == "png"
    assert discovery.output_path(Path("o"), Path("d/a.heic"), "keep", "_x") == Path("o/d/a_x.png")
    assert discovery.output_path(Path("o"), Path("d/a.JPEG"), "keep", "") == Path("o/d/a.JPEG")


def test_read_reduced_decodes_a_large_jpeg_small_and_like_a_full_decode(tmp_path, photos):
    from deblurcli.io.images import read_reduced

    with Image.open(photos[0]) as photo:
        big = photo.convert("RGB").resize((2960, 1664), Image.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=92)
    reduced, size = read_reduced(tmp_path / "big.jpg", 700)
    assert size == (2960, 1664) and reduced.shape == (394, 700, 3)
    full = read_image(tmp_path / "big.jpg").pixels
    expected = cv2.resize(full, (700, 394), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(float) - expected).mean() < 1.5  # DCT scaling + area ≈ area
    gray, _ = read_reduced(tmp_path / "big.jpg", 700, gray=True)
    expected_gray = cv2.cvtColor(expected, cv2.COLOR_RGB2GRAY)
    assert gray.shape == (394, 700, 1)
    assert np.abs(gray[:, :, 0].astype(float) - expected_gray).mean() < 1.5


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_read_reduced_is_upright_and_never_enlarges(tmp_path, rgb, suffix):
    from deblurcli.io.images import read_reduced

    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: upright it is taller than wide
    Image.fromarray(rgb).save(tmp_path / f"a{suffix}", exif=exif)
    pixels, size = read_reduced(tmp_path / f"a{suffix}", 10_000)
    assert size == (rgb.shape[0], rgb.shape[1])
    assert pixels.shape == (rgb.shape[1], rgb.shape[0], 3)
    upright = read_image(tmp_path / f"a{suffix}").pixels
    assert np.abs(pixels.astype(float) - upright).mean() < 1e-9


def test_read_reduced_brings_16_bit_to_8_bit_and_reports_bad_files(tmp_path, rng):
    from deblurcli.io.images import read_reduced

    deep = rng.integers(0, 65536, (40, 60, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    pixels, _ = read_reduced(tmp_path / "deep.png", 100)
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(float) - deep[:, :, ::-1] / 257).max() <= 0.5 + 1e-9
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(InputImageError, match=r"bad\.jpg"):
        read_reduced(tmp_path / "bad.jpg", 100)
