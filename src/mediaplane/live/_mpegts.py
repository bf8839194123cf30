"""A bounded MPEG-TS scanner: which tracks a live TS stream (SRT) has, before ffmpeg reads it.

:class:`TsScanner` is :class:`._packager.FlvScanner`'s counterpart for MPEG-TS: it checks the
188-byte packet framing (the sync byte of every packet), follows PAT → PMT of the first
program, and learns the elementary streams and their codecs (``video_codec``,
``audio_codec``): H.264 (stream type 0x1B) and AAC in ADTS (0x0F) are copied; other audio
and video ffmpeg decodes (HEVC, MPEG-2 and MPEG-1 video, MPEG-4 part 2, VC-1; MPEG audio,
AC-3, E-AC-3, DTS, LATM AAC, Opus) are taken to be transcoded; the rest (VVC, JPEG 2000,
H.264 SVC/MVC, AVS, Dirac, TrueHD, PCM…) is refused with an :class:`InvalidMedia` saying
what to set in the encoder; data streams (SCTE-35, ID3/KLV metadata, subtitles, teletext)
are ignored. It keeps at most one partial packet and one partial PSI section (≤ 1024
bytes) between feeds. H.264 keyframes are seen at their PES start (the adaptation field's
random access indicator, or an IDR slice in the PES's first packets): their times are
``keyframes``.

Tracks are chosen by PID (the packager maps ``0:i:PID`` in ffmpeg, where the stream id is
the PID), so a data stream ffmpeg would probe as something else never takes a track's place.
A PMT that later changes a chosen track's codec or PID is refused: a codec change mid-stream.
"""

from __future__ import annotations

from mediaplane.media import InvalidMedia

__all__ = ["TsScanner"]

PACKET = 188
SYNC = 0x47
#: Bytes a stream may start with before its first sync byte (some senders start mid-packet).
MAX_LEADING = PACKET - 1
#: A PSI section's largest size (section_length is at most 1021, plus its 3-byte header).
MAX_SECTION = 1024
#: Seconds of PTS a declared track may be missing before the stream starts without it.
PROBE_SECONDS = 1.0

_H264, _AAC_ADTS = 0x1B, 0x0F
_VIDEO_TYPES = {
    0x01: "MPEG-1 video",
    0x02: "MPEG-2 video",
    0x10: "MPEG-4 part 2 video",
    0x1B: "H.264",
    0x1F: "H.264 SVC",
    0x20: "H.264 MVC",
    0x21: "JPEG 2000",
    0x24: "HEVC",
    0x33: "VVC",
    0x42: "AVS",
    0xD1: "Dirac",
    0xD2: "AVS2",
    0xEA: "VC-1",
}
_AUDIO_TYPES = {
    0x03: "MPEG-1 audio",
    0x04: "MPEG-2 audio",
    0x0F: "AAC",
    0x11: "AAC in LATM",
    0x1C: "MPEG-4 audio",
    0x80: "PCM",
    0x81: "AC-3",
    0x82: "DTS",
    0x83: "TrueHD",
    0x84: "E-AC-3",
    0x85: "DTS-HD",
    0x87: "E-AC-3",
}
#: The video and audio codecs ffmpeg decodes here (transcoded to H.264/AAC).
TRANSCODED_VIDEO = frozenset(
    {"MPEG-1 video", "MPEG-2 video", "MPEG-4 part 2 video", "HEVC", "VC-1"}
)
TRANSCODED_AUDIO = frozenset(
    {"MPEG-1 audio", "MPEG-2 audio", "AAC in LATM", "AC-3", "E-AC-3", "DTS", "Opus"}
)
#: Codecs a private PES stream's registration can name that are video, not audio.
_PRIVATE_VIDEO = frozenset({"HEVC", "AV1", "VC-1", "Dirac"})
#: Keyframe times remembered (the first ones: the GOP is judged on them).
KEYFRAMES_KEPT = 3
#: Packets of a video PES looked through for its first slice (SPS, PPS and a large SEI,
#: as x264 writes in its first frame, come before it).
SLICE_SCAN_PACKETS = 8
#: Descriptors that make a private PES stream (type 0x06) audio or video (DVB, EN 300 468).
_PRIVATE_DESCRIPTORS = {0x6A: "AC-3", 0x7A: "E-AC-3", 0x7B: "DTS"}
#: Registration descriptor (tag 5) format identifiers of audio or video codecs.
_REGISTRATIONS = {
    b"AC-3": "AC-3",
    b"EAC3": "E-AC-3",
    b"DTS1": "DTS",
    b"DTS2": "DTS",
    b"DTS3": "DTS",
    b"Opus": "Opus",
    b"HEVC": "HEVC",
    b"BSSD": "PCM",
    b"AV01": "AV1",
    b"VC-1": "VC-1",
    b"drac": "Dirac",
}
_HINT = "set the encoder to H.264 (x264) video and AAC audio in MPEG-TS"
_PLAYABLE_HINT = "send H.264, HEVC or MPEG-2 video and AAC, MP2, AC-3 or Opus audio in MPEG-TS"


class TsScanner:
    """Checks an MPEG-TS byte stream's packets as they arrive.

    After :meth:`feed`: ``video_pid``/``audio_pid`` (the chosen tracks, or None),
    ``video_codec``/``audio_codec`` (their codecs' names), ``video``/``audio`` (True once
    the PMT named that track), ``first_ts`` and ``last_ts`` (PTS seconds of the chosen
    tracks' PES starts), ``keyframes`` (PTS seconds of the first H.264 keyframes),
    ``packets``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._synced = False
        self._leading = 0
        self.packets = 0
        self.pmt_pid: int | None = None
        self.pmt_version: int | None = None
        self.video_pid: int | None = None
        self.audio_pid: int | None = None
        self.started: set[int] = set()  # chosen PIDs whose first PES start was seen
        self._sections: dict[int, bytearray] = {}
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.keyframes: list[float] = []
        self._pes_pts: float | None = None  # a video PES whose first slice is looked for
        self._pes_packets = 0

    @property
    def newest(self) -> float | None:
        """The newest PTS seen (seconds)."""
        return None if self.first_ts is None else self.last_ts

    @property
    def first_ts_seconds(self) -> float | None:
        return self.first_ts

    @property
    def video(self) -> bool:
        return self.video_pid is not None

    @property
    def audio(self) -> bool:
        return self.audio_pid is not None

    @property
    def span(self) -> float:
        return 0.0 if self.first_ts is None else self.last_ts - self.first_ts

    @property
    def media_seen(self) -> bool:
        """A PES of a chosen track has started (the stream's media has begun)."""
        return bool(self.started)

    def ready(self) -> bool:
        """The PMT is known and every track it names has begun, or one has run for
        :data:`PROBE_SECONDS` (the other was announced but is not sent)."""
        chosen = {p for p in (self.video_pid, self.audio_pid) if p is not None}
        if not chosen:
            return False
        return chosen <= self.started or self.span >= PROBE_SECONDS

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        if not self._synced:
            at = buf.find(SYNC)
            if at < 0 or self._leading + at > MAX_LEADING:
                if at < 0 and self._leading + len(buf) <= MAX_LEADING:
                    self._leading += len(buf)
                    buf.clear()
                    return
                raise InvalidMedia(f"the stream is not MPEG-TS (no sync byte): {_HINT}")
            self._leading += at
            pos = at
            if len(buf) - pos < PACKET + 1:
                del buf[:pos]
                return
            if buf[pos + PACKET] != SYNC:
                raise InvalidMedia(f"the stream is not MPEG-TS (no sync byte): {_HINT}")
            self._synced = True
        end = pos + (len(buf) - pos) // PACKET * PACKET
        while pos < end:
            if buf[pos] != SYNC:
                raise InvalidMedia(
                    "the MPEG-TS stream lost packet sync (send whole 188-byte packets)"
                )
            self._packet(buf, pos)
            pos += PACKET
        del buf[:pos]

    # -- one packet ------------------------------------------------------------------------

    def _packet(self, buf: bytearray, pos: int) -> None:
        self.packets += 1
        b1 = buf[pos + 1]
        if b1 & 0x80:  # transport_error_indicator: the sender marked it damaged
            return
        pid = (b1 & 0x1F) << 8 | buf[pos + 2]
        if pid != 0 and pid != self.pmt_pid:
            if b1 & 0x40 and pid in (self.video_pid, self.audio_pid):
                self._pes_start(buf, pos, pid)
            elif pid == self.video_pid and self._pes_pts is not None:
                self._look_for_slice(
                    buf, pos, pos + 4 + (1 + buf[pos + 4] if buf[pos + 3] & 0x20 else 0)
                )
            return
        afc = buf[pos + 3] >> 4 & 0x03
        if not afc & 0x01:  # no payload
            return
        start = pos + 4
        if afc & 0x02:
            start += 1 + buf[pos + 4]
        stop = pos + PACKET
        if start >= stop:
            return
        if b1 & 0x40:  # a section starts here, after the pointer field
            start += 1 + buf[start]
            if start >= stop:
                return
            self._sections[pid] = bytearray(buf[start:stop])
        elif pid in self._sections:
            self._sections[pid] += buf[start:stop]
        else:
            return
        section = self._sections[pid]
        if len(section) < 3:
            return
        length = 3 + ((section[1] & 0x0F) << 8 | section[2])
        if length > MAX_SECTION:
            raise InvalidMedia("the MPEG-TS stream is corrupt (a PSI section is too long)")
        if len(section) < length:
            return
        del self._sections[pid]
        if pid == 0:
            self._pat(bytes(section[:length]))
        else:
            self._pmt(bytes(section[:length]))

    def _pes_start(self, buf: bytearray, pos: int, pid: int) -> None:
        self.started.add(pid)
        start = pos + 4
        if buf[pos + 3] & 0x20:
            start += 1 + buf[pos + 4]
        if start + 14 > pos + PACKET or buf[start : start + 3] != b"\x00\x00\x01":
            return
        if not buf[start + 7] & 0x80:  # no PTS
            return
        p = buf[start + 9 : start + 14]
        pts = (
            (p[0] >> 1 & 0x07) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1
        ) / 90000
        if self.first_ts is None:
            self.first_ts = pts
        self.last_ts = max(self.last_ts, pts)
        if pid == self.video_pid and self.video_codec == "H.264":
            self._pes_pts = None
            if len(self.keyframes) >= KEYFRAMES_KEPT:
                return
            if buf[pos + 3] & 0x20 and buf[pos + 4] and buf[pos + 5] & 0x40:
                self.keyframes.append(pts)  # the random access indicator
                return
            self._pes_pts, self._pes_packets = pts, 0
            self._look_for_slice(buf, pos, start + 9 + buf[start + 8])

    def _look_for_slice(self, buf: bytearray, pos: int, body: int) -> None:
        """Scan the video PES's packets (up to :data:`SLICE_SCAN_PACKETS`, past the
        parameter sets and SEI before it) for its first slice: an IDR one (NAL type 5)
        makes the PES a keyframe at its PTS, any other ends the look."""
        end = pos + PACKET
        at = buf.find(b"\x00\x00\x01", body, end)
        while 0 <= at < end - 3:
            nal = buf[at + 3] & 0x1F
            if nal in (1, 5):
                if nal == 5 and self._pes_pts is not None:
                    self.keyframes.append(self._pes_pts)
                self._pes_pts = None
                return
            at = buf.find(b"\x00\x00\x01", at + 3, end)
        self._pes_packets += 1
        if self._pes_packets >= SLICE_SCAN_PACKETS:
            self._pes_pts = None

    def _pat(self, section: bytes) -> None:
        if section[0] != 0x00 or not section[5] & 0x01:  # not a PAT, or not current
            return
        body = section[8 : len(section) - 4]  # after the header, before the CRC
        for i in range(0, len(body) - 3, 4):
            program = body[i] << 8 | body[i + 1]
            if program != 0:  # 0 is the network PID
                pmt = (body[i + 2] & 0x1F) << 8 | body[i + 3]
                if pmt != self.pmt_pid:
                    self.pmt_pid, self.pmt_version = pmt, None
                return

    def _pmt(self, section: bytes) -> None:
        if section[0] != 0x02 or not section[5] & 0x01:
            return
        version = section[5] >> 1 & 0x1F
        if version == self.pmt_version:
            return
        self.pmt_version = version
        info = (section[10] & 0x0F) << 8 | section[11]
        i, end = 12 + info, len(section) - 4
        video = audio = None
        video_codec = audio_codec = None
        while i + 5 <= end:
            kind = section[i]
            pid = (section[i + 1] & 0x1F) << 8 | section[i + 2]
            es_info = (section[i + 3] & 0x0F) << 8 | section[i + 4]
            descriptors = section[i + 5 : i + 5 + es_info]
            i += 5 + es_info
            private = _private_codec(descriptors) if kind == 0x06 else None
            name = _VIDEO_TYPES.get(kind) or (private if private in _PRIVATE_VIDEO else None)
            if name is not None:
                if kind != _H264 and name not in TRANSCODED_VIDEO:
                    raise InvalidMedia(f"the video is {name}, which is not read: {_PLAYABLE_HINT}")
                if video is None:
                    video, video_codec = pid, name
                continue
            name = _AUDIO_TYPES.get(kind) or private
            if name is not None:
                if kind != _AAC_ADTS and name not in TRANSCODED_AUDIO:
                    raise InvalidMedia(f"the audio is {name}, which is not read: {_PLAYABLE_HINT}")
                if audio is None:
                    audio, audio_codec = pid, "AAC" if kind == _AAC_ADTS else name
        if self.packets and (self.video_pid, self.audio_pid) != (None, None):
            if (video, audio, video_codec, audio_codec) != (
                self.video_pid,
                self.audio_pid,
                self.video_codec,
                self.audio_codec,
            ):
                raise InvalidMedia(
                    "the MPEG-TS stream's tracks changed mid-stream: restart the publish"
                )
        self.video_pid, self.audio_pid = video, audio
        self.video_codec, self.audio_codec = video_codec, audio_codec


def _private_codec(descriptors: bytes) -> str | None:
    """The audio/video codec a private PES stream's descriptors name, if any."""
    i = 0
    while i + 2 <= len(descriptors):
        tag, size = descriptors[i], descriptors[i + 1]
        body = descriptors[i + 2 : i + 2 + size]
        if tag in _PRIVATE_DESCRIPTORS:
            return _PRIVATE_DESCRIPTORS[tag]
        if tag == 0x05 and body[:4] in _REGISTRATIONS:
            return _REGISTRATIONS[body[:4]]
        i += 2 + size
    return None
