"""The files the simulator serves: a valid H.264 MP4 and a PNG thumbnail, generated in code.

The video is written by hand, without an encoder: one IDR frame made of I_PCM macroblocks (raw
samples, so no entropy coding is needed) followed by P frames whose macroblocks are all skipped.
The container is a plain progressive MP4 (``ftyp``, ``moov`` before ``mdat``), optionally padded
with a trailing ``free`` box so download tests can fetch a file of a chosen size.
"""

from __future__ import annotations

import functools
import struct
import zlib

WIDTH = 128
HEIGHT = 72
FPS = 24
TIMESCALE = 24_000
_MB = 16


class _BitWriter:
    """MSB-first bit writer with the Exp-Golomb codes of H.264."""

    def __init__(self) -> None:
        self._bits: list[int] = []

    def u(self, bits: int, value: int) -> None:
        self._bits.extend((value >> shift) & 1 for shift in range(bits - 1, -1, -1))

    def ue(self, value: int) -> None:
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        while len(self._bits) % 8:
            self._bits.append(0)

    def raw_bytes(self, data: bytes) -> None:
        for byte in data:
            self.u(8, byte)

    def trailing(self) -> bytes:
        """``rbsp_trailing_bits`` then the bytes."""
        self._bits.append(1)
        self.align_zero()
        out = bytearray()
        for i in range(0, len(self._bits), 8):
            byte = 0
            for bit in self._bits[i : i + 8]:
                byte = (byte << 1) | bit
            out.append(byte)
        return bytes(out)


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _nal(ref_idc: int, nal_type: int, rbsp: bytes) -> bytes:
    return bytes([(ref_idc << 5) | nal_type]) + _escape(rbsp)


def _coded_size(width: int, height: int) -> tuple[int, int]:
    return -(-width // _MB), -(-height // _MB)


def _sps(width: int, height: int) -> bytes:
    mbs_w, mbs_h = _coded_size(width, height)
    bw = _BitWriter()
    bw.u(8, 66)  # Baseline profile
    bw.u(8, 0)
    bw.u(8, 30)  # level 3.0
    bw.ue(0)  # seq_parameter_set_id
    bw.ue(12)  # log2_max_frame_num_minus4: 16-bit frame_num, no wrap for short clips
    bw.ue(2)  # pic_order_cnt_type 2: output order = decoding order
    bw.ue(1)  # max_num_ref_frames
    bw.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    bw.ue(mbs_w - 1)
    bw.ue(mbs_h - 1)
    bw.u(1, 1)  # frame_mbs_only_flag
    bw.u(1, 1)  # direct_8x8_inference_flag
    crop_right = (mbs_w * _MB - width) // 2
    crop_bottom = (mbs_h * _MB - height) // 2
    if crop_right or crop_bottom:
        bw.u(1, 1)
        bw.ue(0)
        bw.ue(crop_right)
        bw.ue(0)
        bw.ue(crop_bottom)
    else:
        bw.u(1, 0)
    bw.u(1, 0)  # vui_parameters_present_flag
    return _nal(3, 7, bw.trailing())


def _pps() -> bytes:
    bw = _BitWriter()
    bw.ue(0)  # pic_parameter_set_id
    bw.ue(0)  # seq_parameter_set_id
    bw.u(1, 0)  # CAVLC
    bw.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    bw.ue(0)  # num_slice_groups_minus1
    bw.ue(0)  # num_ref_idx_l0_default_active_minus1
    bw.ue(0)  # num_ref_idx_l1_default_active_minus1
    bw.u(1, 0)  # weighted_pred_flag
    bw.u(2, 0)  # weighted_bipred_idc
    bw.se(0)  # pic_init_qp_minus26
    bw.se(0)  # pic_init_qs_minus26
    bw.se(0)  # chroma_qp_index_offset
    bw.u(1, 0)  # deblocking_filter_control_present_flag
    bw.u(1, 0)  # constrained_intra_pred_flag
    bw.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(3, 8, bw.trailing())


def _pcm_macroblock(mb_x: int, mb_y: int, mbs_w: int, mbs_h: int) -> bytes:
    """Raw 4:2:0 samples of one macroblock: a diagonal luma gradient on a blue-violet tint."""
    luma = bytearray()
    for y in range(_MB):
        for x in range(_MB):
            gx = (mb_x * _MB + x) / (mbs_w * _MB)
            gy = (mb_y * _MB + y) / (mbs_h * _MB)
            luma.append(int(40 + 170 * (gx + gy) / 2))
    cb = bytes([150 + (mb_x * 40) // mbs_w]) * 64
    cr = bytes([110 + (mb_y * 60) // mbs_h]) * 64
    return bytes(luma) + cb + cr


def _idr_slice(width: int, height: int) -> bytes:
    mbs_w, mbs_h = _coded_size(width, height)
    bw = _BitWriter()
    bw.ue(0)  # first_mb_in_slice
    bw.ue(7)  # slice_type I (all slices)
    bw.ue(0)  # pic_parameter_set_id
    bw.u(16, 0)  # frame_num
    bw.ue(0)  # idr_pic_id
    bw.u(1, 0)  # no_output_of_prior_pics_flag
    bw.u(1, 0)  # long_term_reference_flag
    bw.se(0)  # slice_qp_delta
    for mb_y in range(mbs_h):
        for mb_x in range(mbs_w):
            bw.ue(25)  # mb_type I_PCM
            bw.align_zero()  # pcm_alignment_zero_bit
            bw.raw_bytes(_pcm_macroblock(mb_x, mb_y, mbs_w, mbs_h))
    return _nal(3, 5, bw.trailing())


def _skip_slice(width: int, height: int, frame_num: int) -> bytes:
    mbs_w, mbs_h = _coded_size(width, height)
    bw = _BitWriter()
    bw.ue(0)  # first_mb_in_slice
    bw.ue(5)  # slice_type P (all slices)
    bw.ue(0)  # pic_parameter_set_id
    bw.u(16, frame_num & 0xFFFF)
    bw.u(1, 0)  # num_ref_idx_active_override_flag
    bw.u(1, 0)  # ref_pic_list_modification_flag_l0
    bw.u(1, 0)  # adaptive_ref_pic_marking_mode_flag
    bw.se(0)  # slice_qp_delta
    bw.ue(mbs_w * mbs_h)  # mb_skip_run: every macroblock copies the reference
    return _nal(2, 1, bw.trailing())


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(width: int, height: int, sizes: list[int], mdat_offset: int, sps: bytes, pps: bytes) -> bytes:
    frames = len(sizes)
    delta = TIMESCALE // FPS
    duration_ms = frames * 1000 // FPS
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, 1000, duration_ms),
        struct.pack(">IH", 0x10000, 0x100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration_ms),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, frames * delta), struct.pack(">HH", 0x55C4, 0)
    )
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide"), bytes(12), b"VideoHandler\x00")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        bytes([1]),
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HHII", width, height, 0x480000, 0x480000),
        struct.pack(">IH", 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, delta))
    stss = _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1))
    stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames), struct.pack(f">{frames}I", *sizes))
    stco = _full_box(b"stco", 0, 0, struct.pack(">II", 1, mdat_offset))
    stbl = _box(b"stbl", stsd, stts, stss, stsc, stsz, stco)
    minf = _box(b"minf", vmhd, dinf, stbl)
    mdia = _box(b"mdia", mdhd, hdlr, minf)
    trak = _box(b"trak", tkhd, mdia)
    return _box(b"moov", mvhd, trak)


@functools.lru_cache(maxsize=32)
def mp4_bytes(duration_seconds: int = 5, min_size: int | None = None) -> bytes:
    """A valid H.264 MP4 of ``duration_seconds`` (128x72, 24 fps), padded to at least ``min_size``."""
    sps, pps = _sps(WIDTH, HEIGHT), _pps()
    frames = max(1, duration_seconds * FPS)
    samples = [_idr_slice(WIDTH, HEIGHT)]
    samples.extend(_skip_slice(WIDTH, HEIGHT, n) for n in range(1, frames))
    sized = [struct.pack(">I", len(nal)) + nal for nal in samples]
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2", b"avc1", b"mp41")
    sizes = [len(s) for s in sized]
    moov_len = len(_moov(WIDTH, HEIGHT, sizes, 0, sps, pps))
    mdat_offset = len(ftyp) + moov_len + 8
    moov = _moov(WIDTH, HEIGHT, sizes, mdat_offset, sps, pps)
    data = ftyp + moov + _box(b"mdat", *sized)
    if min_size is not None and min_size > len(data):
        data += _box(b"free", bytes(max(0, min_size - len(data) - 8)))
    return data


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """Top-level ISO BMFF boxes of ``data[start:end]`` as ``(type, offset, size)``; raises on a bad size."""
    end = len(data) if end is None else end
    boxes = []
    offset = start
    while offset < end:
        if end - offset < 8:
            raise ValueError(f"truncated box header at {offset}")
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8 or offset + size > end:
            raise ValueError(f"bad size {size} for box {kind!r} at {offset}")
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=4)
def png_bytes(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A valid RGB PNG thumbnail with the same gradient as the video."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            level = int(40 + 170 * (x / width + y / height) / 2)
            rows.extend((level // 2 + 40, level // 3 + 30, min(255, level + 40)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )
