#!/usr/bin/env python3
"""Checks that a file is a complete, decodable PNG of the expected size (CI's check of the README's
main job). Independent of paradit: only the PNG specification, zlib and the standard library.
  check_png.py FILE WIDTH HEIGHT"""
import struct, sys, zlib

path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"check_png: {path}: not a PNG (bad signature)")
pos, idat, ihdr, end = 8, b"", None, False
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    if zlib.crc32(kind + body) != crc:
        sys.exit(f"check_png: {path}: chunk {kind!r} has a bad CRC")
    if kind == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    elif kind == b"IEND":
        end = True
        break
    pos += 12 + n
if ihdr is None or not end:
    sys.exit(f"check_png: {path}: missing IHDR or IEND (truncated?)")
w, h, depth, colour = ihdr[:4]
channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
if (w, h) != (want_w, want_h) or depth != 8 or channels is None:
    sys.exit(f"check_png: {path}: {w}x{h}, depth {depth}, colour type {colour}; expected {want_w}x{want_h} 8-bit")
raw = zlib.decompress(idat)
if len(raw) != h * (1 + w * channels):
    sys.exit(f"check_png: {path}: image data holds {len(raw)} bytes, expected {h * (1 + w * channels)}")
print(f"check_png: {path}: {w}x{h} PNG, {channels} channels, decodes")
