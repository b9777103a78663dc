"""Deterministic PNG images without an imaging library: an 8x8 "identicon" per item.

Real bytes with a valid signature and CRCs, so a download check or a browser
decodes them like any image; each item's picture differs, so a mixed-up
download is visible. Rows repeat within a block, which keeps generation fast.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import lru_cache

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEDIA_SIZE = 256
THUMB_SIZE = 64
BLOCKS = 8


@lru_cache(maxsize=512)
def item_png(item_id: str, size: int) -> bytes:
    """An RGB PNG of ``size`` x ``size`` pixels (a multiple of 8) drawn from the item id."""
    digest = hashlib.blake2b(item_id.encode(), digest_size=6 + BLOCKS * BLOCKS // 8).digest()
    colors = (digest[0:3], digest[3:6])
    pattern = int.from_bytes(digest[6:], "big")
    cell = size // BLOCKS
    scanlines = []
    for block_row in range(BLOCKS):
        bits = [(pattern >> (block_row * BLOCKS + column)) & 1 for column in range(BLOCKS)]
        line = b"\x00" + b"".join(colors[bit] * cell for bit in bits)
        scanlines.append(line * cell)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(scanlines), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
