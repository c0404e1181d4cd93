#!/usr/bin/env python3
"""Writes icon.png next to this script: a 512x512 patchwork "quilt" of 4x4 squares.

Standard library only (zlib + struct), so the icon can be remade anywhere:
    python3 packaging/mcpb/make-icon.py
"""

import pathlib
import struct
import zlib

SIZE = 512
GRID = 4
GAP = 16
RADIUS = 72  # corner radius of the whole icon
# Quilt-ish palette: deep blue, orange, teal, light blue, cream.
PALETTE = [(0x2B, 0x3A, 0x67), (0xF2, 0x8C, 0x28), (0x1E, 0x9E, 0x8F), (0x6C, 0xA6, 0xDA), (0xF6, 0xE7, 0xC8)]
PATTERN = [
    [0, 1, 3, 2],
    [3, 4, 0, 1],
    [2, 0, 4, 3],
    [1, 3, 2, 0],
]


def inside_rounded(x: int, y: int) -> bool:
    """Whether pixel (x, y) lies inside the icon's rounded square."""
    cx = min(max(x, RADIUS), SIZE - 1 - RADIUS)
    cy = min(max(y, RADIUS), SIZE - 1 - RADIUS)
    return (x - cx) ** 2 + (y - cy) ** 2 <= RADIUS**2


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    if not inside_rounded(x, y):
        return (0, 0, 0, 0)
    cell = (SIZE - GAP) / GRID
    col, row = int((x - GAP / 2) // cell), int((y - GAP / 2) // cell)
    inner_x, inner_y = (x - GAP / 2) - col * cell, (y - GAP / 2) - row * cell
    if not (0 <= col < GRID and 0 <= row < GRID) or min(inner_x, inner_y) < GAP / 2 or max(inner_x, inner_y) > cell - GAP / 2:
        return (0xFF, 0xFF, 0xFF, 0xFF)  # white seams
    r, g, b = PALETTE[PATTERN[row][col]]
    # A diagonal stitch across every other patch.
    if (row + col) % 2 == 0 and abs(inner_x - inner_y) < 6:
        r, g, b = (0xFF, 0xFF, 0xFF)
    return (r, g, b, 0xFF)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main() -> None:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(SIZE)) for y in range(SIZE))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    out = pathlib.Path(__file__).with_name("icon.png")
    out.write_bytes(png)
    print(f"wrote {out} ({len(png)} bytes)")


if __name__ == "__main__":
    main()
