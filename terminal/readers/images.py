"""Ride codes from images: a PNG or JPEG decoded with zxing-cpp (byte mode kept as bytes).

``decode_image`` reads one picture; ``ImageFolder`` is a code source for a camera module
that drops its snapshots in a folder: each new image is decoded, then removed. zxing-cpp
and Pillow are the optional ``images`` extra (``pip install 'yikatong[images]'``).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

from terminal.apdu.errors import YikatongError
from terminal.readers.scanner import Scan, ScanError

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE = 8 * 1024 * 1024  # bytes: a phone screen photographed is far smaller


def _decoder() -> tuple[Any, Any]:
    try:
        import zxingcpp
        from PIL import Image
    except ImportError:
        raise YikatongError(
            "ride-code images need zxing-cpp and Pillow: pip install 'yikatong[images]'"
        ) from None
    return zxingcpp, Image


def decode_image(data: bytes) -> bytes:
    """The bytes of the one QR symbol in a PNG/JPEG image; ScanError when there is none,
    more than one, or the file is no image."""
    zxingcpp, image = _decoder()
    if len(data) > MAX_IMAGE:
        raise ScanError("not-an-image", f"image of {len(data)} bytes is over {MAX_IMAGE}")
    try:
        picture = image.open(io.BytesIO(data))
        picture.load()
    except (OSError, ValueError, image.DecompressionBombError) as exc:
        raise ScanError("not-an-image", f"not a PNG or JPEG image ({exc})") from None
    found = [
        b for b in zxingcpp.read_barcodes(picture) if b.format == zxingcpp.BarcodeFormat.QRCode
    ]
    if len(found) != 1:
        raise ScanError("no-code", f"{len(found)} QR symbols in the image, one wanted")
    return bytes(found[0].bytes)


class ImageFolder:
    """A code source: images dropped in ``folder`` (by a camera module), oldest first; each
    is removed once read, so it is presented once (the camera writes each under another
    name and renames it, so no image is read half written)."""

    def __init__(self, folder: str | Path):
        _decoder()  # refuse at start, not at the first image
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = f"images {self.folder}"

    def read(self, timeout: float) -> list[Scan]:
        out: list[Scan] = []
        for path in self._waiting():
            try:
                data = path.read_bytes()
            except OSError:
                continue  # still being written, or gone: the next round sees it
            try:
                out.append(decode_image(data))
            except ScanError as exc:
                out.append(exc)
            os.unlink(path)
        if not out:
            time.sleep(timeout)
        return out

    def _waiting(self) -> list[Path]:
        names = [p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()]
        return sorted(names, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def close(self) -> None:
        return None
