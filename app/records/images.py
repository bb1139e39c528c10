"""Images of image/file fields, re-encoded with Pillow: what is served is what Pillow wrote (no
trailing bytes, no metadata, no polyglot), so re-encoded images may be shown inline. Each gets a
thumbnail for lists and the record page."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from app.core.i18n import N_

THUMBNAIL_SIZE = (256, 256)
MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


class ImageRefused(ValueError):
    """The bytes carry an image signature but are no image Pillow can decode."""


@dataclass(frozen=True)
class Reencoded:
    content: bytes
    thumbnail: bytes
    width: int
    height: int


def reencode(content: bytes, content_type: str) -> Reencoded:
    """Decode ``content`` (already sniffed as ``content_type``) and write it again in the same format,
    with a thumbnail; CPU-bound: call it off the event loop."""
    fmt = _FORMATS[content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=[fmt]) as source:
                if source.width * source.height > MAX_PIXELS:
                    raise ImageRefused(
                        N_(
                            "The image is too large (%(width)s×%(height)s pixels).",
                            width=source.width,
                            height=source.height,
                        )
                    )
                source.load()
                image = ImageOps.exif_transpose(source) or source
                image = _for(fmt, image)
                out = io.BytesIO()
                image.save(out, fmt, **_options(fmt))
                thumb = image.copy()
                thumb.thumbnail(THUMBNAIL_SIZE)
                small = io.BytesIO()
                thumb.save(small, fmt, **_options(fmt))
                return Reencoded(out.getvalue(), small.getvalue(), image.width, image.height)
    except ImageRefused:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageRefused(N_("The file is not a readable image.")) from exc


def _for(fmt: str, image: Image.Image) -> Image.Image:
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        return image.convert("RGB")
    if fmt in ("PNG", "WEBP") and image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        return image.convert("RGBA")
    return image


def _options(fmt: str) -> dict[str, object]:
    options: dict[str, dict[str, object]] = {"JPEG": {"quality": 88}, "WEBP": {"quality": 85}}
    return options.get(fmt, {})
