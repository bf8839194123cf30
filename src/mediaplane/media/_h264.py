"""Just enough H.264 syntax for sample encryption: where each slice's header ends.

ISO/IEC 23001-7 subsample encryption of AVC leaves every NAL unit's header and, for a
slice (``nal_unit_type`` 1 and 5), its whole slice header in the clear. The length of a
slice header depends on the sequence and picture parameter sets it refers to, so
:class:`ParameterSets` keeps the SPS and PPS fields that header's syntax reads (from the
``avcC`` box and from in-band parameter sets) and :meth:`ParameterSets.slice_header_bytes`
parses a slice header (ITU-T H.264 7.3.3) far enough to say how many bytes of the NAL unit
it covers, emulation-prevention bytes included. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import MediaError

__all__ = ["NAL_IDR", "NAL_PPS", "NAL_SLICE", "NAL_SPS", "ParameterSets", "avcc_parameter_sets"]

NAL_SLICE = 1
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
#: Profiles whose SPS carries chroma_format_idc and the bit depths (H.264 7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
#: A slice header is at most a few hundred bytes, and most are a few dozen: the parse
#: unescapes the first of these prefixes that holds it (the RBSP of a prefix is a prefix of
#: the RBSP, so the length found is the same), then the whole NAL unit. Unescaping is a
#: Python loop per byte: 1024 bytes of every slice were half of CencWriter's time.
_HEAD_PREFIXES = (64, 1024)
_P, _B, _I, _SP, _SI = 0, 1, 2, 3, 4


class _Bits:
    """An RBSP bit reader (Exp-Golomb codes as in H.264 9.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # bits

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise MediaError("an H.264 NAL unit ends inside its header")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MediaError("an H.264 Exp-Golomb code is longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> tuple[bytes, list[int]]:
    """The RBSP of a NAL unit payload (emulation-prevention ``03`` of ``00 00 03`` removed)
    and the payload offset of every byte removed."""
    out = bytearray()
    removed: list[int] = []
    zeros = 0
    for i, b in enumerate(nal):
        if zeros >= 2 and b == 3:
            removed.append(i)
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out), removed


@dataclass(frozen=True)
class _Sps:
    chroma_array_type: int
    separate_colour_plane: bool
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    frame_mbs_only: bool


@dataclass(frozen=True)
class _Pps:
    sps_id: int
    cabac: bool
    bottom_field_pic_order: bool
    num_ref_idx_l0: int
    num_ref_idx_l1: int
    weighted_pred: bool
    weighted_bipred_idc: int
    deblocking_filter_control: bool
    redundant_pic_cnt: bool


def _scaling_list(r: _Bits, size: int) -> None:
    last = next_ = 8
    for _ in range(size):
        if next_ != 0:
            next_ = (last + r.se() + 256) % 256
        last = next_ if next_ != 0 else last


def _parse_sps(rbsp: bytes) -> tuple[int, _Sps]:
    r = _Bits(rbsp)
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    sps_id = r.ue()
    chroma_format, separate = 1, False
    if profile in _HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            separate = bool(r.u(1))
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.u(1):
                    _scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    log2_max_poc_lsb = 0
    always_zero = False
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
    elif poc_type == 1:
        always_zero = bool(r.u(1))
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    r.ue()  # pic_width_in_mbs_minus1
    r.ue()  # pic_height_in_map_units_minus1
    frame_mbs_only = bool(r.u(1))
    return sps_id, _Sps(
        0 if separate else chroma_format,
        separate,
        log2_max_frame_num,
        poc_type,
        log2_max_poc_lsb,
        always_zero,
        frame_mbs_only,
    )


def _parse_pps(rbsp: bytes) -> tuple[int, _Pps]:
    r = _Bits(rbsp)
    pps_id = r.ue()
    sps_id = r.ue()
    cabac = bool(r.u(1))
    bottom = bool(r.u(1))
    if r.ue() > 0:  # num_slice_groups_minus1: FMO (Baseline's slice groups)
        raise MediaError("H.264 with slice groups (FMO) cannot be sample-encrypted here")
    l0 = r.ue() + 1
    l1 = r.ue() + 1
    weighted = bool(r.u(1))
    bipred = r.u(2)
    r.se()  # pic_init_qp_minus26
    r.se()  # pic_init_qs_minus26
    r.se()  # chroma_qp_index_offset
    deblocking = bool(r.u(1))
    r.u(1)  # constrained_intra_pred_flag
    redundant = bool(r.u(1))
    return pps_id, _Pps(sps_id, cabac, bottom, l0, l1, weighted, bipred, deblocking, redundant)


class ParameterSets:
    """The SPS and PPS a stream has declared so far, by id."""

    def __init__(self) -> None:
        self._sps: dict[int, _Sps] = {}
        self._pps: dict[int, _Pps] = {}

    def add(self, nal: bytes) -> None:
        """Keep an SPS or PPS NAL unit (with its header byte); others are ignored."""
        if not nal:
            return
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            sps_id, sps = _parse_sps(_unescape(nal[1:])[0])
            self._sps[sps_id] = sps
        elif kind == NAL_PPS:
            pps_id, pps = _parse_pps(_unescape(nal[1:])[0])
            self._pps[pps_id] = pps

    def slice_header_bytes(self, nal: bytes) -> int:
        """Bytes of the slice NAL unit ``nal`` (header byte first) up to the end of its
        slice header, rounded up to a whole byte; :class:`MediaError` when the parameter
        sets it names are unknown or it is cut short."""
        for head in (*(nal[: 1 + n] for n in _HEAD_PREFIXES), nal):
            rbsp, removed = _unescape(head[1:])
            try:
                bits = self._header_bits(nal[0], rbsp)
            except MediaError:
                if len(head) == len(nal):
                    raise
                continue
            span = (bits + 7) // 8  # RBSP bytes; in the payload, with its 03 bytes:
            for i in removed:
                if i < span:
                    span += 1
            return 1 + span
        raise AssertionError("unreachable")

    def _header_bits(self, nal_header: int, rbsp: bytes) -> int:
        """H.264 7.3.3 slice_header(): its length in bits."""
        nal_ref_idc = (nal_header >> 5) & 3
        idr = (nal_header & 0x1F) == NAL_IDR
        r = _Bits(rbsp)
        r.ue()  # first_mb_in_slice
        slice_type = r.ue() % 5
        pps = self._pps.get(r.ue())
        if pps is None:
            raise MediaError("an H.264 slice names a picture parameter set not seen")
        sps = self._sps.get(pps.sps_id)
        if sps is None:
            raise MediaError("an H.264 slice names a sequence parameter set not seen")
        if sps.separate_colour_plane:
            r.u(2)
        r.u(sps.log2_max_frame_num)
        field = False
        if not sps.frame_mbs_only:
            field = bool(r.u(1))
            if field:
                r.u(1)  # bottom_field_flag
        if idr:
            r.ue()  # idr_pic_id
        if sps.poc_type == 0:
            r.u(sps.log2_max_poc_lsb)
            if pps.bottom_field_pic_order and not field:
                r.se()
        if sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
            r.se()
            if pps.bottom_field_pic_order and not field:
                r.se()
        if pps.redundant_pic_cnt:
            r.ue()
        if slice_type == _B:
            r.u(1)  # direct_spatial_mv_pred_flag
        l0, l1 = pps.num_ref_idx_l0, pps.num_ref_idx_l1
        if slice_type in (_P, _SP, _B) and r.u(1):  # num_ref_idx_active_override_flag
            l0 = r.ue() + 1
            if slice_type == _B:
                l1 = r.ue() + 1
        if slice_type not in (_I, _SI):  # ref_pic_list_modification()
            for _ in range(2 if slice_type == _B else 1):
                if r.u(1):
                    while (idc := r.ue()) != 3:
                        if idc > 5:
                            raise MediaError("a bad H.264 modification_of_pic_nums_idc")
                        r.ue()
        if (pps.weighted_pred and slice_type in (_P, _SP)) or (
            pps.weighted_bipred_idc == 1 and slice_type == _B
        ):  # pred_weight_table()
            r.ue()  # luma_log2_weight_denom
            if sps.chroma_array_type != 0:
                r.ue()
            for count in (l0, l1) if slice_type == _B else (l0,):
                for _ in range(count):
                    if r.u(1):
                        r.se()
                        r.se()
                    if sps.chroma_array_type != 0 and r.u(1):
                        for _ in range(4):
                            r.se()
        if nal_ref_idc != 0:  # dec_ref_pic_marking()
            if idr:
                r.u(2)
            elif r.u(1):
                while (op := r.ue()) != 0:
                    if op > 6:
                        raise MediaError("a bad H.264 memory_management_control_operation")
                    if op in (1, 3):
                        r.ue()
                    if op == 2:
                        r.ue()
                    if op in (3, 6):
                        r.ue()
                    if op == 4:
                        r.ue()
        if pps.cabac and slice_type not in (_I, _SI):
            r.ue()  # cabac_init_idc
        r.se()  # slice_qp_delta
        if slice_type in (_SP, _SI):
            if slice_type == _SP:
                r.u(1)
            r.se()
        if pps.deblocking_filter_control and r.ue() != 1:
            r.se()
            r.se()
        return r.pos


def avcc_parameter_sets(avcc: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, the SPS and PPS NAL units) of an ``avcC`` payload."""
    if len(avcc) < 7:
        raise MediaError("avcC box is too short")
    length_size = (avcc[4] & 3) + 1
    nals: list[bytes] = []
    pos = 5
    for counted in (0x1F, 0xFF):
        if pos >= len(avcc):
            raise MediaError("avcC box is too short")
        count = avcc[pos] & counted
        pos += 1
        for _ in range(count):
            if pos + 2 > len(avcc):
                raise MediaError("avcC box is too short")
            n = int.from_bytes(avcc[pos : pos + 2], "big")
            nals.append(avcc[pos + 2 : pos + 2 + n])
            pos += 2 + n
    return length_size, nals
