"""The generated MP4 and PNG are structurally valid (and ffprobe accepts the MP4 when installed)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib

import pytest

from airflow_provider_runway.simulator.media import FPS, HEIGHT, WIDTH, iter_boxes, mp4_bytes, png_bytes


def child(data: bytes, parent: tuple[bytes, int, int], kind: bytes, skip: int = 0) -> tuple[bytes, int, int]:
    _, offset, size = parent
    for box in iter_boxes(data, offset + 8 + skip, offset + size):
        if box[0] == kind:
            return box
    raise AssertionError(f"no {kind!r} in {parent[0]!r}")


def test_mp4_box_structure_is_consistent():
    data = mp4_bytes(5)
    top = iter_boxes(data)
    assert [kind for kind, _, _ in top] == [b"ftyp", b"moov", b"mdat"]
    assert data[8:12] == b"isom"
    moov = top[1]
    trak = child(data, moov, b"trak")
    mdia = child(data, trak, b"mdia")
    hdlr = child(data, mdia, b"hdlr")
    assert data[hdlr[1] + 16 : hdlr[1] + 20] == b"vide"
    stbl = child(data, child(data, mdia, b"minf"), b"stbl")
    stsz = child(data, stbl, b"stsz")
    count = struct.unpack(">I", data[stsz[1] + 16 : stsz[1] + 20])[0]
    sizes = struct.unpack(f">{count}I", data[stsz[1] + 20 : stsz[1] + 20 + 4 * count])
    stco = child(data, stbl, b"stco")
    chunk_offset = struct.unpack(">I", data[stco[1] + 16 : stco[1] + 20])[0]
    mdat = top[2]
    assert count == 5 * FPS
    assert chunk_offset == mdat[1] + 8
    assert sum(sizes) == mdat[2] - 8
    # every sample is one length-prefixed NAL unit: an IDR slice first, then P slices
    nal_types, offset = [], chunk_offset
    for size in sizes:
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        assert length == size - 4
        nal_types.append(data[offset + 4] & 0x1F)
        offset += size
    assert nal_types[0] == 5 and set(nal_types[1:]) == {1}
    avc1 = child(data, child(data, stbl, b"stsd"), b"avc1", skip=8)
    assert struct.unpack(">HH", data[avc1[1] + 32 : avc1[1] + 36]) == (WIDTH, HEIGHT)


def test_mp4_duration_matches_and_padding_reaches_the_size():
    assert len(mp4_bytes(10)) > len(mp4_bytes(5))
    big = mp4_bytes(5, 3_000_000)
    assert len(big) == 3_000_000
    assert [kind for kind, _, _ in iter_boxes(big)] == [b"ftyp", b"moov", b"mdat", b"free"]
    assert big.startswith(mp4_bytes(5))


@pytest.mark.parametrize("duration", [5, 10])
def test_ffprobe_accepts_the_mp4_when_available(tmp_path, duration):
    path = tmp_path / "v.mp4"
    path.write_bytes(mp4_bytes(duration, 200_000))
    data = iter_boxes(path.read_bytes())  # always checked, ffprobe or not
    assert data[0][0] == b"ftyp"
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stderr == ""
    stream = json.loads(out.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    assert (stream["width"], stream["height"]) == (WIDTH, HEIGHT)
    assert float(stream["duration"]) == pytest.approx(duration)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:  # decoding every frame must not raise a single error
        decoded = subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True, timeout=60
        )
        assert decoded.returncode == 0 and decoded.stderr == ""


def test_png_is_valid():
    data = png_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, idat = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append(kind)
        if kind == b"IDAT":
            idat += payload
        offset += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
