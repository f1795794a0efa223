"""An image whose header declares more pixels than its data holds, or that fails only when
decoded: skipped under ``dataset.bad_images=skip`` like a truncated one."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from ftbench.data.folders import is_readable_image
from ftbench.run.failures import UserError
from tests.helpers import PNG_MAGIC, image_folder


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def oversized_png(width: int = 9000, height: int = 9000) -> bytes:
    """A well-formed PNG (every chunk's CRC right) declaring ``width`` x ``height`` with a few bytes
    of pixel data: ``Image.verify`` passes it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 40))
            + chunk(b"IEND", b""))


def test_a_png_declaring_more_pixels_than_its_data_is_skipped_or_named(tmp_path, caplog):
    data = oversized_png()
    assert len(data) < 200
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # what the check relied on alone: it passes
    root = image_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    path = root / "dog" / "huge.png"
    path.write_bytes(data)
    assert is_readable_image(str(path), bad_images="skip") is False
    assert "skipping" in caplog.text and "huge.png" in caplog.text
    with pytest.raises(UserError, match=r"huge\.png' is not a readable image.*bad_images=skip"):
        is_readable_image(str(path), bad_images="error")
    assert is_readable_image(str(root / "cat" / "0.png"), bad_images="error") is True  # a whole one stands


def test_a_png_that_fails_only_when_decoded_is_skipped_under_skip(tmp_path, caplog):
    """Pixel data that is no deflate stream, under right checksums: ``verify`` passes it, the
    decode at load time would fail."""
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    data = PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", b"not deflate" * 100) + chunk(b"IEND", b"")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    path = tmp_path / "cat" / "garbled.png"
    path.parent.mkdir()
    path.write_bytes(data)
    assert is_readable_image(str(path), bad_images="skip") is False
    assert "garbled.png" in caplog.text
