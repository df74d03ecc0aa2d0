"""Read and write photographs without losing what makes them the user's.

Pixels are decoded once, by OpenCV, which keeps 16-bit colour and alpha;
Pillow parses the header only, for the format, EXIF, ICC profile and DPI.
EXIF orientation is applied on read, and written back as 1 ("upright").
Writes go to a temporary file in the target folder that is renamed into
place, so an interrupted run never leaves a half-written image.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from deblurcli.errors import InputImageError, OutputError
from deblurcli.io.output import atomic_path

SUPPORTED_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif"
)  # fmt: skip
FORMAT_SUFFIX = {
    "jpg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp",
    "heic": ".heic", "avif": ".avif",
}  # fmt: skip
_PIL_FORMAT = {
    "JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp",
    "HEIF": "heic", "AVIF": "avif",
}  # fmt: skip
# Phone formats: decoded by Pillow (AVIF built in) and pillow-heif (HEIC), not OpenCV.
_PILLOW_DECODED = ("heic", "avif")
_FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP, HEIC, AVIF"
# What ``--format keep`` writes when this machine has no encoder for the input's format.
FALLBACK_FORMAT = "png"
MIN_SIDE = 16
MAX_PIXELS = 250_000_000
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Photo:
    """A decoded photograph and the metadata to carry to its output.

    Attributes:
        pixels: (H, W, C) uint8 or uint16, C = 1 (gray) or 3 (RGB), upright.
        alpha: (H, W) of the same dtype, or None; passed through untouched.
        format: source format: ``jpg``, ``png``, ``webp``, ``tiff`` or ``bmp``.
        exif: EXIF block with orientation reset to 1, or None.
        icc_profile: embedded ICC profile, or None.
        dpi: (x, y) resolution, or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] == 1

    def with_pixels(self, pixels: np.ndarray) -> Photo:
        """The same photo (metadata, alpha) with new pixels of the same size and dtype."""
        return replace(self, pixels=pixels)


def read_image(path: Path) -> Photo:
    """Decode ``path`` into an upright :class:`Photo`.

    Raises:
        InputImageError: empty, not an image, truncated, too small or too large.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputImageError("is a folder, not an image", path) from None
    except OSError as exc:
        raise InputImageError(
            f"cannot be read ({exc.strerror}): check its permissions", path
        ) from None
    if not data:
        raise InputImageError("is empty (0 bytes): re-export or re-copy it", path)
    header = _open_header(path, data)
    width, height = header.size
    if width * height > MAX_PIXELS:
        raise InputImageError(
            f"is {width}×{height} px, over the {MAX_PIXELS / 1e6:.0f}-megapixel safety limit "
            "against decompression bombs: downscale it first",
            path,
        )
    if min(width, height) < MIN_SIDE:
        raise InputImageError(
            f"is only {width}×{height} px: deblurring needs at least {MIN_SIDE}×{MIN_SIDE}", path
        )
    fmt = _PIL_FORMAT[header.format]
    if fmt == "jpg" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise InputImageError("is a truncated JPEG (no end-of-image marker): re-copy it", path)
    if fmt in _PILLOW_DECODED:
        decoded = _decode_phone_format(data, fmt, path)
    else:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise InputImageError(f"is a damaged or truncated {fmt.upper()} file: re-copy it", path)
    pixels, alpha = _split_channels(
        decoded, gray=header.mode in ("1", "L", "LA", "I", "I;16", "I;16B")
    )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InputImageError(
            f"has {pixels.dtype} samples; only 8- and 16-bit images are supported", path
        )
    # Pillow decodes a whole PNG to look for an eXIf chunk after the pixels; skip
    # that second decode (as long as the first) when the file has no eXIf chunk.
    has_exif = fmt != "png" or b"eXIf" in data
    exif = header.getexif() if has_exif else Image.Exif()
    orientation = exif.get(_ORIENTATION_TAG, 1)
    pixels = _apply_orientation(pixels, orientation)
    alpha = None if alpha is None else _apply_orientation(alpha, orientation)
    exif_bytes = None
    if len(exif):
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        exif_bytes = exif.tobytes()
    dpi = header.info.get("dpi")
    return Photo(
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        format=fmt,
        exif=exif_bytes,
        icc_profile=header.info.get("icc_profile") or None,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
    )


def _decode_phone_format(data: bytes, fmt: str, path: Path) -> np.ndarray | None:
    """HEIC (pillow-heif, 10- and 12-bit kept as 16-bit) or AVIF (Pillow) -> OpenCV's
    layout: (H, W, 3 or 4) BGR(A), upright as the file's own transforms say (None if damaged).
    """
    try:
        if fmt == "heic":
            import pillow_heif

            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
            array = np.asarray(heif)
        else:
            with Image.open(io.BytesIO(data)) as image:
                array = np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputImageError(
            f"is a damaged {fmt.upper()} file ({exc}): re-copy it", path
        ) from None
    order = [2, 1, 0, 3][: array.shape[2]]  # RGB(A) -> BGR(A)
    return np.ascontiguousarray(array[:, :, order])


@functools.cache
def can_write(fmt: str) -> bool:
    """Whether this machine has an encoder for ``fmt`` (HEIC and AVIF depend on the
    libheif and Pillow builds; the others always). Asked once per format: output
    paths ask it for every input."""
    if fmt == "heic":
        try:
            import pillow_heif
        except ImportError:
            return False
        return bool(pillow_heif.libheif_info().get("HEIF"))
    if fmt == "avif":
        from PIL import features

        return bool(features.check("avif"))
    return True


def read_reduced(
    path: Path, max_side: int, gray: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` upright and shrunk to at most ``max_side`` px on the longer side.

    For previews and analysis, where the full size is not needed: a JPEG is
    decoded in libjpeg's reduced-size mode (1/2, 1/4 or 1/8 of the size, still at
    least ``max_side``), which skips most of the decoding work of a large photo;
    other formats go through :func:`read_image`. The rest is area averaging.

    Returns:
        (h, w, C) uint8 pixels, C = 1 with ``gray`` and 3 without (alpha dropped; 16-bit
        photos are reduced to 8 bits), and the photo's own upright (width, height).

    Raises:
        InputImageError: as :func:`read_image`.
    """
    pixels, size = _read_jpeg_reduced(path, max_side, gray)
    if pixels is None:
        photo = read_image(path)
        pixels, size = photo.pixels, (photo.width, photo.height)
        if pixels.dtype == np.uint16:
            pixels = _to_8bit(pixels)
        if gray and pixels.shape[2] == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[:, :, None]
        elif not gray and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
    height, width = pixels.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1:
        shrunk = cv2.resize(
            pixels,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        pixels = shrunk.reshape(*shrunk.shape[:2], pixels.shape[2])
    return np.ascontiguousarray(pixels), size


def _read_jpeg_reduced(
    path: Path, max_side: int, gray: bool
) -> tuple[np.ndarray | None, tuple[int, int]]:
    """A JPEG decoded at reduced size and made upright; (None, (0, 0)) for anything else,
    or a JPEG that is damaged (the full reader then says what is wrong)."""
    try:
        with Image.open(path) as image:
            if image.format != "JPEG" or image.mode not in ("L", "RGB", "YCbCr"):
                return None, (0, 0)
            width, height = image.size
            scale = max_side / max(width, height)
            mode = "L" if gray else "RGB"
            if scale < 1:
                image.draft(mode, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
            pixels = np.asarray(image.convert(mode))
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError):
        return None, (0, 0)
    pixels = _apply_orientation(pixels.reshape(*pixels.shape[:2], -1), orientation)
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return pixels, upright


def peek_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as stored, from the file header alone (None when unreadable)."""
    _register_heif()
    try:
        with Image.open(path) as header:
            return header.size
    except Exception:  # any unreadable file is reported properly when it is read
        return None


def peek_megapixels(path: Path) -> float:
    """Megapixels from the file header alone (0.0 when unreadable); for progress bars."""
    size = peek_size(path)
    return size[0] * size[1] / 1e6 if size else 0.0


def _open_header(path: Path, data: bytes) -> Image.Image:
    _register_heif()
    try:
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit (MAX_PIXELS) is checked by the caller
        try:
            header = Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    except UnidentifiedImageError:
        raise InputImageError(
            f"is not an image deblurcli can read ({_FORMAT_NAMES})", path
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputImageError(f"has a damaged header ({exc})", path) from None
    if header.format not in _PIL_FORMAT:
        raise InputImageError(
            f"is a {header.format} file; supported formats are {_FORMAT_NAMES}", path
        )
    return header


def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif), once; without pillow-heif they stay unknown."""
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        _HEIF_REGISTERED = True
        try:
            import pillow_heif
        except ImportError:
            return
        pillow_heif.register_heif_opener()


_HEIF_REGISTERED = False


def _split_channels(decoded: np.ndarray, gray: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV's BGR/BGRA/gray array -> (RGB or gray (H, W, C), alpha or None)."""
    if decoded.ndim == 2:
        return decoded[:, :, None], None
    alpha = decoded[:, :, 3] if decoded.shape[2] == 4 else None
    bgr = decoded[:, :, :3]
    if gray:
        return bgr[:, :, :1], alpha
    return bgr[:, :, ::-1], alpha


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip (H, W, ...) ``array`` upright per an EXIF orientation value (1-8)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return np.rot90(array, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, 1)
    return array


# --- writing --------------------------------------------------------------------------------


def format_losses(photo: Photo, fmt: str) -> list[str]:
    """What writing ``photo`` as ``fmt`` drops (see :func:`encode_image`), one note each:
    an alpha channel in JPEG or BMP, 16-bit depth in JPEG, WebP or BMP."""
    losses = []
    if photo.alpha is not None and fmt in ("jpg", "bmp"):
        losses.append(
            f"alpha channel dropped: {fmt.upper()} has none (--format png or tiff keeps it)"
        )
    if photo.pixels.dtype == np.uint16 and fmt in ("jpg", "webp", "bmp", "heic", "avif"):
        losses.append(
            f"16-bit depth reduced to 8 bits: {fmt.upper()} holds 8 (--format png or tiff keeps 16)"
        )
    return losses


def encode_image(photo: Photo, fmt: str, quality: int = 95, fast_png: bool = False) -> bytes:
    """Encode ``photo`` as ``fmt`` with its alpha, EXIF, ICC profile and DPI.

    16-bit photos stay 16-bit in PNG and TIFF; JPEG, WebP and BMP hold 8 bits,
    so 16-bit photos are rounded to 8 bits for them.

    Args:
        photo: what to write.
        fmt: ``jpg``, ``png``, ``webp``, ``tiff`` or ``bmp``.
        quality: JPEG/WebP quality (1-100).
        fast_png: Huffman-only PNG compression with the Paeth filter: over
            ten times faster than Pillow's default for 8-bit photos (27 ms at
            1280x720) and files about the same size; what datasets and
            outputs use.
    """
    gray_alpha = photo.is_gray and photo.alpha is not None  # OpenCV has no 2-channel PNG
    if fmt == "png" and (photo.pixels.dtype == np.uint16 or (fast_png and not gray_alpha)):
        return _encode_png_opencv(photo, fast_png)
    if photo.pixels.dtype == np.uint16 and fmt == "tiff":
        return _encode_16bit_tiff(photo)
    pixels, alpha = photo.pixels, photo.alpha
    if pixels.dtype == np.uint16:
        pixels = _to_8bit(pixels)
        alpha = None if alpha is None else _to_8bit(alpha)
    channels = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    if fmt in ("jpg", "bmp") and alpha is not None:
        channels = pixels  # these formats have no alpha channel
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels.shape[2]]
    image = Image.fromarray(channels[:, :, 0] if mode == "L" else channels, mode)
    options: dict = {}
    if photo.icc_profile and fmt != "bmp":
        options["icc_profile"] = photo.icc_profile
    if photo.exif and fmt in ("jpg", "png", "webp", "tiff", "heic", "avif"):
        options["exif"] = photo.exif
    if photo.dpi and fmt in ("jpg", "png", "tiff", "bmp"):
        options["dpi"] = photo.dpi
    if fmt in ("jpg", "webp", "heic", "avif"):
        options["quality"] = quality
    if fmt == "jpg":
        options["subsampling"] = 0 if quality >= 90 else 2
    if fmt == "tiff":
        options["compression"] = "tiff_deflate"
    buffer = io.BytesIO()
    if fmt == "heic":
        _register_heif()
    pil_format = {"jpg": "JPEG", "tiff": "TIFF", "heic": "HEIF"}.get(fmt, fmt.upper())
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def _to_8bit(array: np.ndarray) -> np.ndarray:
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _with_alpha(photo: Photo) -> np.ndarray:
    if photo.alpha is None:
        return photo.pixels
    return np.concatenate([photo.pixels, photo.alpha[:, :, None]], axis=2)


def _encode_16bit_tiff(photo: Photo) -> bytes:
    import tifffile

    channels = _with_alpha(photo)
    buffer = io.BytesIO()
    extratags = _tiff_baseline_tags(photo.exif)
    if photo.icc_profile:
        extratags.append((34675, "B", len(photo.icc_profile), photo.icc_profile, True))
    tifffile.imwrite(
        buffer,
        channels[:, :, 0] if channels.shape[2] == 1 else channels,
        photometric="minisblack" if photo.pixels.shape[2] == 1 else "rgb",
        extrasamples=["unassalpha"] if photo.alpha is not None else None,
        compression="zlib",
        resolution=photo.dpi,
        resolutionunit="INCH" if photo.dpi else None,
        extratags=extratags,
    )
    return buffer.getvalue()


# Fast lossless PNG: Huffman-only deflate, and (OpenCV 4.11 and newer) the Paeth
# filter on every row instead of libpng choosing one of five per row. At 1280×720
# on a 2-core AMD EPYC: 27 ms and 0.87 MB per photo, against 36 ms and 0.87 MB for
# Huffman-only with the adaptive filter (docs/performance.md).
_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
             cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]  # fmt: skip
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    _FAST_PNG += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]


def _encode_png_opencv(photo: Photo, fast: bool) -> bytes:
    """PNG through OpenCV (16-bit, or fast 8-bit), metadata chunks added by us."""
    channels = _with_alpha(photo)
    if channels.shape[2] == 2:  # 16-bit gray with alpha: written as RGBA
        channels = channels[:, :, [0, 0, 0, 1]]
    cv_order = channels if channels.shape[2] < 3 else _rgb_to_bgr(channels)
    ok, png = cv2.imencode(".png", cv_order, _FAST_PNG if fast else [])
    if not ok:
        raise OutputError("OpenCV could not encode a PNG")
    return _add_png_chunks(png.tobytes(), photo)


# EXIF IFD0 text tags that TIFF shares: Make, Model, Software, DateTime, Artist, Copyright.
_TIFF_TEXT_TAGS = (271, 272, 305, 306, 315, 33432)


def _tiff_baseline_tags(exif_bytes: bytes | None) -> list[tuple]:
    """tifffile tags for orientation 1 and the EXIF IFD0 text tags.

    tifffile cannot write an EXIF sub-IFD, so 16-bit TIFFs keep the camera and
    authorship tags that TIFF itself defines, not the exposure details.
    """
    if not exif_bytes:
        return []
    exif = Image.Exif()
    exif.load(exif_bytes)
    tags: list[tuple] = [(_ORIENTATION_TAG, "H", 1, 1, True)]
    for tag in _TIFF_TEXT_TAGS:
        value = exif.get(tag)
        if isinstance(value, str) and value:
            tags.append((tag, "s", 0, value, True))
    return tags


def _rgb_to_bgr(channels: np.ndarray) -> np.ndarray:
    order = [2, 1, 0, *range(3, channels.shape[2])]
    return np.ascontiguousarray(channels[:, :, order])


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _add_png_chunks(png: bytes, photo: Photo) -> bytes:
    """Insert iCCP, pHYs and eXIf chunks after IHDR (OpenCV writes none of them)."""
    chunks = b""
    if photo.icc_profile:
        chunks += _png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(photo.icc_profile))
    if photo.dpi:
        per_metre = [round(d / 0.0254) for d in photo.dpi]
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if photo.exif:
        exif = photo.exif[6:] if photo.exif.startswith(b"Exif\0\0") else photo.exif
        chunks += _png_chunk(b"eXIf", exif)
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, crc
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename
    (:func:`~deblurcli.io.output.atomic_path`).

    Raises:
        OutputError: the folder cannot be created or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(
            "cannot create the output folder: a file is in the way", path.parent
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror})", path.parent) from None
    try:
        with atomic_path(path) as temporary:
            temporary.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot be written ({exc.strerror})", path) from None


def write_image(photo: Photo, path: Path, fmt: str, quality: int = 95) -> None:
    """Encode ``photo`` as ``fmt`` and write it atomically to ``path``.

    PNGs are written fast (``fast_png``: Huffman-only, Paeth filter): on 1280×720
    photos 27 ms, against 36 ms with the adaptive filter and 266 ms for Pillow's
    default, files about the same size.
    """
    write_atomic(path, encode_image(photo, fmt, quality, fast_png=True))
