"""Image helpers shared by the ``match_url`` checker and the AI judge (Pillow only).

Comparison follows cog-safe-push's deterministic rule: same pixel size, and a mean
per-pixel colour distance (Euclidean, RGB 0..441, or RGBA when both images have
transparency) of at most :data:`PIXEL_THRESHOLD`.
A re-encoded JPEG of the same picture passes; a changed picture does not.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Pillow (50 ms) is imported by the functions that decode images, not with this
# module: the checkers load it at start-up, and the first image to look at arrives
# while a push waits for its predictions.
if TYPE_CHECKING:
    from PIL import Image

#: File extensions treated as images (lower case, without the dot).
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"})

#: Highest mean per-pixel RGB distance at which two images still count as the same.
PIXEL_THRESHOLD = 8.0
# What :func:`mean_pixel_distance` measures, as reports name it.
DISTANCE_METRIC = "mean pixel distance (RGB 0-441; RGBA 0-510 when both have transparency)"

# Spellings of one format that must compare equal ("photo.jpeg" matches "photo.jpg").
_EXTENSION_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "tiff": "tif", "mpeg": "mpg", "htm": "html"}

# Pillow's format names mapped to the extension people write.
_FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
    "MPO": "jpg",
}


@dataclass(frozen=True)
class ImageInfo:
    """What Pillow reads from an image's header: ``format`` is an extension (``jpg``)."""

    format: str
    width: int
    height: int

    @property
    def size(self) -> str:
        """``WIDTHxHEIGHT``, as people write it."""
        return f"{self.width}x{self.height}"


def normalize_extension(ext: str) -> str:
    """Lower-case ``ext`` without a dot, with aliases folded (``.JPEG`` -> ``jpg``)."""
    ext = ext.lower().lstrip(".")
    return _EXTENSION_ALIASES.get(ext, ext)


def _open(data: bytes) -> Image.Image | None:
    """Open ``data`` as an image, or ``None`` when Pillow cannot read it."""
    # WebP, the usual output of image models, opens without PIL registering all of its
    # ~40 format plugins first (40 ms): Image.open tries BMP, GIF, JPEG, PPM, PNG and
    # what is already registered, and loads the rest only when none of those match.
    from PIL import Image, UnidentifiedImageError, WebPImagePlugin  # noqa: F401

    try:
        with warnings.catch_warnings():
            # A huge image is still an image; the bomb check is a warning we do not want
            # to turn into an error under strict warning filters.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def image_info(data: bytes) -> ImageInfo | None:
    """Format and size of the image in ``data``, or ``None`` when it is not an image."""
    img = _open(data)
    if img is None:
        return None
    fmt = _FORMAT_EXTENSIONS.get(img.format or "", (img.format or "").lower())
    return ImageInfo(format=fmt, width=img.width, height=img.height)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def mean_pixel_distance(a: Image.Image, b: Image.Image) -> float:
    """Mean Euclidean distance per pixel between same-sized images ``a`` and ``b``.

    Over the RGB channels (0..441); when both images have transparency, over RGBA
    (0..510), as cog-safe-push compares them: a changed mask (a background remover's
    output) is a changed image even where the colours stayed.
    """
    from PIL import Image, ImageChops, ImageMath

    if a.size != b.size:
        raise ValueError(f"image sizes differ: {a.width}x{a.height} vs {b.width}x{b.height}")
    mode = "RGBA" if _has_alpha(a) and _has_alpha(b) else "RGB"
    diff = ImageChops.difference(a.convert(mode), b.convert(mode))
    bands = dict(zip("rgba", (band.convert("F") for band in diff.split()), strict=False))
    dist = ImageMath.lambda_eval(
        lambda v: (
            v["r"] * v["r"] + v["g"] * v["g"] + v["b"] * v["b"]
            + (v["a"] * v["a"] if "a" in bands else 0)
        ) ** 0.5,
        **bands,
    )
    assert isinstance(dist, Image.Image)
    # A box-filtered 1x1 resize is the mean of every pixel, computed in C.
    mean = dist.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(mean, float | int)
    return float(mean)


def images_match(
    expected: bytes, actual: bytes, *, threshold: float = PIXEL_THRESHOLD
) -> tuple[bool, str]:
    """Whether two encoded images show the same picture; the string says why not.

    Sizes must be equal; then the mean per-pixel RGB distance must be at most
    ``threshold``. Either side failing to decode is a mismatch, not an exception.
    """
    ok, message, _ = image_distance(expected, actual, threshold=threshold)
    return ok, message


def image_distance(
    expected: bytes, actual: bytes, *, threshold: float = PIXEL_THRESHOLD
) -> tuple[bool, str, float | None]:
    """:func:`images_match` plus the mean pixel distance (``None`` when not comparable)."""
    img_a = _open(expected)
    if img_a is None:
        return False, "the expected file is not a readable image", None
    img_b = _open(actual)
    if img_b is None:
        return False, "the output file is not a readable image", None
    if img_a.size != img_b.size:
        return False, (
            f"image sizes differ: expected {img_a.width}x{img_a.height}, "
            f"got {img_b.width}x{img_b.height}"
        ), None
    distance = mean_pixel_distance(img_a, img_b)
    if distance > threshold:
        return False, (
            f"images differ: mean pixel distance {distance:.1f} is above {threshold:g}"
        ), distance
    return True, f"images match (mean pixel distance {distance:.1f})", distance


def to_api_image(
    data: bytes, *, max_side: int = 1568, max_bytes: int = 5_000_000
) -> tuple[str, bytes] | None:
    """Re-encode an image for the Anthropic API: ``(media_type, bytes)`` or ``None``.

    The API takes PNG, JPEG, WebP and GIF up to 5 MB; it scales large images down
    itself, so sending more than ``max_side`` pixels a side only costs upload time.
    Other formats (BMP, TIFF...) are converted to PNG; ``None`` when ``data`` is not
    an image at all.
    """
    img = _open(data)
    if img is None:
        return None
    accepted = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
    fmt = img.format or ""
    if fmt in accepted and max(img.size) <= max_side and len(data) <= max_bytes:
        return accepted[fmt], data
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    if buf.tell() <= max_bytes:
        return "image/png", buf.getvalue()
    # Photographic content can still be too big as PNG; JPEG always fits at this size.
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return "image/jpeg", buf.getvalue()
