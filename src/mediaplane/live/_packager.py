"""The live packager: FLV or MPEG-TS from a publisher in, CMAF segments, LL-HLS parts and
playlists out.

:class:`LivePackager` is a publish sink (``write``/``close``, what the RTMP and SRT servers
feed). It checks the framing itself as bytes arrive (:class:`FlvScanner` for FLV: tag sizes,
H.264 video and AAC audio only, no codec change; :class:`._mpegts.TsScanner` for MPEG-TS:
packet sync, PAT/PMT, the same codecs), starts one ffmpeg once it knows which tracks the
stream has, and hands it the bytes on stdin. ffmpeg copies the tracks, not
re-encoded, into fragmented MP4 on two pipes (video one frame per fragment, audio in
part-long fragments; :func:`mediaplane.media.live_package_argv`); a thread per pipe splits
that stream (:class:`mediaplane.media.Fmp4Reader`) and hands each fragment to
:class:`._output.LiveOutput`, which groups them into parts and segments and writes the
files and playlists.

An ffmpeg killed by a signal the packager did not send (an operator, the OOM killer, a
crash) is started again, up to :data:`MAX_RESTARTS` times per publish, as a new publish of
the session (a discontinuity: players go on), the publisher still connected
(``live.packager_restarted``; ``packager_restarts`` in the health figures).

Other failures end the stream cleanly: the playlists get EXT-X-ENDLIST over what was written,
ffmpeg is killed and reaped, and the error is raised from the next ``write`` (or
``close``) as a :class:`mediaplane.media.MediaError`: :class:`InvalidMedia` when the
publisher's stream is at fault (its message says what to change in the encoder),
:class:`HostFailure` when the host is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import threading
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog

from mediaplane.media import (
    ChildOptions,
    Fmp4Error,
    Fmp4Reader,
    Fragment,
    HostCause,
    HostFailure,
    InitSegment,
    InvalidMedia,
    LiveTranscode,
    MediaError,
    ProcessFailed,
    Track,
    classify,
    live_package_argv,
    plan_live_ladder,
)

from ._health import HealthMeter, failed_health
from ._ladder import LadderEncoder
from ._mpegts import TsScanner
from ._output import LiveOutput, PublishFeed

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    #: ``(track names, wall clock of the first media) -> the publish's feed`` (a session's).
    OutputFor = Callable[[list[str], datetime | None], PublishFeed]

log = structlog.get_logger("mediaplane.live")

LATENCY_MODES = ("standard", "low")
INPUT_FORMATS = ("flv", "mpegts")
InputFormat = Literal["flv", "mpegts"]
#: Audio fragments end this much before the part target: an AAC frame (21-32 ms) then
#: cannot carry a part past it.
AUDIO_PART_MARGIN = 0.035
#: Standard latency has no parts; its audio fragments are this long (seconds).
STANDARD_AUDIO_FRAGMENT = 1.0
#: How much of a stream is held back, before ffmpeg starts, to learn which tracks it has
#: (and, for H.264, how far apart its keyframes are: up to the GOP limit below).
PROBE_SECONDS = 1.0
PROBE_BYTES = 8 * 1024 * 1024
#: H.264 is passed through only when its first keyframes are at most this many segment
#: targets apart (and at most MIN_PASSTHROUGH_GOP seconds, whichever is longer); farther
#: apart, segments (and DVR seeking, and a new viewer's start) would wait for them, so the
#: video is transcoded with keyframes every TRANSCODE_GOP seconds at most.
PASSTHROUGH_GOP_TARGETS = 2.0
MIN_PASSTHROUGH_GOP = 2.0
TRANSCODE_GOP = 1.0
#: How often one publish's ffmpeg is started again after it was killed.
MAX_RESTARTS = 3
#: Seconds ffmpeg may read a stream without packaging a frame of it: an input it cannot
#: decode (a transcoded one) or cannot copy ends then, with the reason.
FIRST_OUTPUT_SECONDS = 10.0
#: One FLV tag's body at most (the format's own limit is 16 MiB).
MAX_TAG_BYTES = 16 * 1024 * 1024
#: Seconds a write may wait for ffmpeg to take the bytes, and close for it to finish.
WRITE_TIMEOUT = 15.0
CLOSE_TIMEOUT = 20.0
#: RLIMIT_AS of the packager's ffmpeg: it only copies packets.
MEMORY_BYTES = 1024**3
#: Bytes read from an fMP4 pipe at a time.
READ_BYTES = 256 * 1024
STDERR_LINES = 40

_FLV_AUDIO, _FLV_VIDEO, _FLV_SCRIPT = 8, 9, 18  # FLV tag types
_AVC = 7  # FLV video codec id
_AAC = 10  # FLV sound format
_ENCODER_HINT = "set the encoder to H.264 (x264) video and AAC audio"
#: FLV video codec ids ffmpeg decodes (H.264 is copied, the others transcoded).
_FLV_VIDEO_CODECS = {
    2: "Sorenson H.263",
    3: "Screen video",
    4: "VP6",
    5: "VP6 with alpha",
    6: "Screen video 2",
    _AVC: "H.264",
}
#: FLV sound formats ffmpeg decodes (AAC is copied, the others transcoded).
_FLV_AUDIO_CODECS = {
    0: "PCM",
    1: "ADPCM",
    2: "MP3",
    3: "PCM",
    4: "Nellymoser",
    5: "Nellymoser",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    _AAC: "AAC",
    11: "Speex",
    14: "MP3",
}
#: The largest sequence header tag body kept for a restart (AVC/AAC configs are tiny).
MAX_SEQUENCE_HEADER = 64 * 1024
#: Keyframe timestamps a scanner remembers (the first ones: the GOP is judged on them).
KEYFRAMES_KEPT = 3


class FlvScanner:
    """Checks an FLV byte stream's framing as it arrives, keeping only a tag header.

    Learns which tracks the stream has (``video``/``audio``: True once a tag of that kind
    was seen), their codecs (``video_codec``/``audio_codec``: H.264 and AAC are copied, the
    others ffmpeg decodes are transcoded), the first keyframes' times (``keyframes``,
    seconds) and the timestamp span seen; :class:`InvalidMedia` for bytes that are not
    FLV, a tag size that does not match its trailer, a tag larger than
    :data:`MAX_TAG_BYTES`, a codec ffmpeg cannot read from FLV (enhanced RTMP's HEVC and
    AV1 among them), or a codec that changes mid-stream.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # body bytes of the current tag still to pass over
        self._header = False
        self._expect_prev = 0  # PreviousTagSize the next tag must be preceded by
        self.video = False
        self.audio = False
        self.tags = 0
        self.first_ts: int | None = None  # milliseconds
        self.last_ts = 0
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.keyframes: list[float] = []  # seconds, the first KEYFRAMES_KEPT
        self._base = 0  # stream offset of the buffer's first byte
        #: Stream offsets of the tags whose headers the last feed read (each offset is
        #: that of the PreviousTagSize field before the tag).
        self.tag_starts: list[int] = []
        #: The newest H.264 and AAC sequence header tags (header and body), by tag type:
        #: what a restarted ffmpeg must be fed before the media.
        self.sequence_headers: dict[int, bytes] = {}

    @property
    def span(self) -> float:
        """Seconds of timestamps seen."""
        return 0.0 if self.first_ts is None else (self.last_ts - self.first_ts) / 1000

    @property
    def newest(self) -> float | None:
        """The newest media timestamp seen (seconds)."""
        return None if self.first_ts is None else self.last_ts / 1000

    @property
    def first_ts_seconds(self) -> float | None:
        return None if self.first_ts is None else self.first_ts / 1000

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        self.tag_starts = []
        if self._skip:
            n = min(self._skip, len(buf))
            self._skip -= n
            pos = n
        while not self._skip:
            if not self._header:
                if len(buf) - pos < 9:
                    break
                if bytes(buf[pos : pos + 3]) != b"FLV" or buf[pos + 3] != 1:
                    raise InvalidMedia(f"the stream is not FLV: {_ENCODER_HINT}")
                offset = struct.unpack_from(">I", buf, pos + 5)[0]
                if not 9 <= offset <= 1024:
                    raise InvalidMedia("the FLV header has an impossible size")
                if len(buf) - pos < offset:
                    break
                pos += offset
                self._header = True
                continue
            if len(buf) - pos < 15:
                break
            prev, kind, size = struct.unpack_from(">IB3s", buf, pos)
            size = int.from_bytes(size, "big")
            if prev != self._expect_prev:
                raise InvalidMedia(
                    f"the FLV stream is corrupt (a tag trailer says {prev} bytes, "
                    f"not {self._expect_prev})"
                )
            kind &= 0x1F
            if kind not in (_FLV_AUDIO, _FLV_VIDEO, _FLV_SCRIPT):
                raise InvalidMedia(f"the FLV stream is corrupt (tag type {kind})")
            if size > MAX_TAG_BYTES:
                raise InvalidMedia(f"an FLV tag of {size} bytes is larger than allowed")
            peek = min(size, 2)
            if len(buf) - pos < 15 + peek:
                break
            first = buf[pos + 15] if peek else 0
            second = buf[pos + 16] if peek > 1 else 0
            sequence_header = (
                peek > 1
                and second == 0
                and size <= MAX_SEQUENCE_HEADER
                and (
                    (kind == _FLV_VIDEO and first & 0x0F == _AVC and not first & 0x80)
                    or (kind == _FLV_AUDIO and first >> 4 == _AAC)
                )
            )
            if sequence_header:
                if len(buf) - pos < 15 + size:
                    break  # kept whole (a few dozen bytes)
                self.sequence_headers[kind] = bytes(buf[pos + 4 : pos + 15 + size])
            ts = int.from_bytes(buf[pos + 8 : pos + 11], "big") | (buf[pos + 11] << 24)
            self.tag_starts.append(self._base + pos)
            if peek:
                self._check_codec(kind, first, second, ts)
            self.tags += 1
            if kind != _FLV_SCRIPT:
                self.first_ts = ts if self.first_ts is None else self.first_ts
                self.last_ts = max(self.last_ts, ts)
            self._expect_prev = 11 + size
            pos += 15
            n = min(size, len(buf) - pos)
            pos += n
            self._skip = size - n
        del buf[:pos]
        self._base += pos

    def _check_codec(self, kind: int, first: int, second: int, ts: int) -> None:
        if kind == _FLV_VIDEO:
            if first & 0x80:  # enhanced RTMP: ffmpeg 5.1's FLV demuxer cannot read it
                raise InvalidMedia(
                    "the video is enhanced RTMP (HEVC or AV1 in FLV), which is not read"
                    f" here: {_ENCODER_HINT}, or send HEVC over SRT"
                )
            name = _FLV_VIDEO_CODECS.get(first & 0x0F)
            if name is None:
                raise InvalidMedia(
                    f"the video codec (FLV codec id {first & 0x0F}) cannot be read: {_ENCODER_HINT}"
                )
            if self.video_codec not in (None, name):
                raise InvalidMedia(
                    f"the video changed from {self.video_codec} to {name} mid-stream:"
                    " restart the publish"
                )
            self.video_codec, self.video = name, True
            # a keyframe (frame type 1), not H.264's sequence header (AVCPacketType 0)
            if first >> 4 == 1 and (first & 0x0F != _AVC or second == 1):
                if len(self.keyframes) < KEYFRAMES_KEPT:
                    self.keyframes.append(ts / 1000)
        elif kind == _FLV_AUDIO:
            name = _FLV_AUDIO_CODECS.get(first >> 4)
            if name is None:
                raise InvalidMedia(
                    f"the audio codec (FLV sound format {first >> 4}) cannot be read:"
                    f" {_ENCODER_HINT}"
                )
            if self.audio_codec not in (None, name):
                raise InvalidMedia(
                    f"the audio changed from {self.audio_codec} to {name} mid-stream:"
                    " restart the publish"
                )
            self.audio_codec, self.audio = name, True

    def ready(self) -> bool:
        """Enough was seen to know the tracks: both, or one for :data:`PROBE_SECONDS`."""
        return (self.video and self.audio) or (
            (self.video or self.audio) and self.span >= PROBE_SECONDS
        )


class LivePackager:
    """Package one live publish into ``out_dir`` (see :mod:`._output` for the layout).

    :param latency_mode: ``low`` (LL-HLS parts, blocking reload) or ``standard``.
    :param part_target: seconds per LL-HLS part (``low`` only).
    :param segment_target: seconds a segment lasts at least; it ends at the next keyframe.
    :param dvr_window_seconds: seconds of segments kept (in the playlist and on disk).
    :param keep_segments: keep every complete segment on disk (a recorded stream).
    :param ffmpeg: the ffmpeg program.
    :param input_format: what ``write`` is fed: ``flv`` (RTMP) or ``mpegts`` (SRT), checked
        as it arrives by :class:`FlvScanner` or :class:`._mpegts.TsScanner`.
    :param memory_bytes: the address-space limit of the ffmpeg process.
    :param output_for: where a session's publish goes (:meth:`LiveOutput.begin_publish`, so
        numbering continues across publishes); its ``finish`` ends the publish only. Without
        it the packager writes its own :class:`LiveOutput` and ends it on close.
    :param ladder: ``passthrough`` (the publisher's H.264 is the one video rung) or ``abr``
        (plus lower rungs encoded from it by one more ffmpeg, :class:`._ladder.LadderEncoder`;
        the passthrough rung stays the top one).
    :param x264_preset: the ladder encoder's preset.

    ``write`` and ``close`` are awaited one at a time (the publish sink contract).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        latency_mode: str,
        part_target: float,
        segment_target: float,
        dvr_window_seconds: int,
        keep_segments: bool = False,
        ffmpeg: str = "ffmpeg",
        input_format: InputFormat = "flv",
        memory_bytes: int = MEMORY_BYTES,
        output_for: OutputFor | None = None,
        ladder: str = "passthrough",
        x264_preset: str = "veryfast",
    ) -> None:
        if latency_mode not in LATENCY_MODES:
            raise ValueError(f"latency_mode must be one of {LATENCY_MODES}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}")
        self.input_format = input_format
        self.out_dir = out_dir
        self.low_latency = latency_mode == "low"
        self.part_target = part_target
        self.segment_target = segment_target
        self.dvr_window_seconds = dvr_window_seconds
        self.keep_segments = keep_segments
        self.ffmpeg = ffmpeg
        self.memory_bytes = memory_bytes
        self.output: LiveOutput | PublishFeed | None = None
        self.output_for = output_for
        #: Also handed every init segment and fragment, from the pipe threads (WHEP).
        self.tap: Callable[[str, InitSegment | Fragment], None] | None = None
        self.argv: list[str] = []
        self._scanner: FlvScanner | TsScanner = (
            FlvScanner() if input_format == "flv" else TsScanner()
        )
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._threads: list[threading.Thread] = []
        self._stderr: deque[bytes] = deque(maxlen=STDERR_LINES)
        self._stderr_task: asyncio.Task[None] | None = None
        self._thread_error: BaseException | None = None
        self._truncated: Fmp4Error | None = None
        self._error: MediaError | None = None
        self._error_raised = False
        self._closed = False
        self._started_at: datetime | None = None  # when the first audio/video tag came
        self.meter = HealthMeter(segment_target=segment_target)
        self.ladder = ladder
        self.x264_preset = x264_preset
        self.encoder: LadderEncoder | None = None
        #: What is encoded instead of copied (None: passed through), decided at start.
        self.transcode: LiveTranscode | None = None
        self.max_gop = max(MIN_PASSTHROUGH_GOP, PASSTHROUGH_GOP_TARGETS * segment_target)
        self._proc_started = 0.0  # loop time ffmpeg started
        self._killed = False  # the packager itself killed its ffmpeg
        self._resync = False  # FLV: a restarted ffmpeg waits for a tag boundary
        self._fed = 0  # bytes of the stream written so far
        #: ffmpeg processes started again after one was killed (see :meth:`_restart`).
        self.restarts = 0
        self._output_seen = False  # a fragment came out of ffmpeg

    @property
    def renditions(self) -> tuple[str, ...]:
        """The rung directories written (known once ffmpeg started)."""
        return self.output.renditions if self.output else ()

    @property
    def error(self) -> MediaError | None:
        """Why the stream failed, once it has."""
        return self._error

    def health(self) -> dict[str, Any]:
        """The stream's health now (:class:`._health.HealthMeter`), ``failed`` with the
        error's message once the stream failed."""
        snapshot = self.meter.snapshot()
        if self._error is not None:
            return failed_health(str(self._error), snapshot)
        return snapshot

    # -- the sink ---------------------------------------------------------------------------

    async def write(self, flv: bytes) -> None:
        """Feed the stream's bytes (FLV or MPEG-TS, in order); raises the stream's
        :class:`MediaError` once it failed."""
        self._raise_if_failed()
        if self._closed:
            raise MediaError("the live packager is closed")
        self.meter.input(len(flv))
        start, self._fed = self._fed, self._fed + len(flv)
        try:
            self._scanner.feed(flv)
        except InvalidMedia as exc:
            await self._fail(exc)
        if self._resync:
            restart = self._flv_restart(flv, start)
            if restart is not None:
                self._resync = False
                scanner = self._scanner
                names = [n for n, on in (("video", scanner.video), ("audio", scanner.audio)) if on]
                await self._spawn(names, restart)
            return
        if self._started_at is None and self._scanner.first_ts is not None:  # media began
            self._started_at = datetime.now(UTC)
        if self._proc is None:
            self._held.append(flv)
            self._held_bytes += len(flv)
            if (self._scanner.ready() and self._gop_known()) or self._held_bytes >= PROBE_BYTES:
                await self._start()
            return
        if (
            not self._output_seen
            and asyncio.get_running_loop().time() - self._proc_started > FIRST_OUTPUT_SECONDS
        ):
            source = self._source_text()
            await self._fail(
                InvalidMedia(
                    f"nothing of the stream ({source}) could be decoded or packaged in"
                    f" {FIRST_OUTPUT_SECONDS:.0f} s: {_ENCODER_HINT}"
                )
            )
        await self._send(flv)

    def _gop_known(self) -> bool:
        """H.264 to pass through: its first two keyframes were seen, or none came for
        longer than :attr:`max_gop` (then it is transcoded)."""
        scanner = self._scanner
        if not scanner.video or scanner.video_codec != "H.264":
            return True
        keys, newest = scanner.keyframes, scanner.newest
        if len(keys) >= 2:
            return True
        since = keys[0] if keys else scanner.first_ts_seconds
        return newest is not None and since is not None and newest - since > self.max_gop

    def _plan_transcode(self) -> LiveTranscode | None:
        """What must be encoded (None: everything is copied), with the reasons in the
        health figures."""
        scanner = self._scanner
        reasons: dict[str, str] = {}
        if scanner.video and scanner.video_codec != "H.264":
            reasons["video"] = f"the video is {scanner.video_codec}, not H.264"
        elif scanner.video:
            keys = scanner.keyframes
            if len(keys) >= 2 and keys[1] - keys[0] > self.max_gop + 0.05:
                reasons["video"] = (
                    f"the keyframes are {keys[1] - keys[0]:.1f} s apart, more than the"
                    f" {self.max_gop:g} s the segments allow"
                )
            elif len(keys) < 2 and self._gop_known():
                reasons["video"] = (
                    f"the keyframes are more than {self.max_gop:g} s apart (the most the"
                    " segments allow)"
                )
        if scanner.audio and scanner.audio_codec != "AAC":
            reasons["audio"] = f"the audio is {scanner.audio_codec}, not AAC"
        self.meter.source = {"video": scanner.video_codec, "audio": scanner.audio_codec}
        if not reasons:
            self.meter.mode, self.meter.mode_reason = "passthrough", None
            return None
        self.meter.mode = "transcode"
        self.meter.mode_reason = (
            "; ".join(reasons.values())
            + ": transcoded to "
            + " and ".join(n for k, n in (("video", "H.264"), ("audio", "AAC")) if k in reasons)
        )
        return LiveTranscode(
            video="video" in reasons,
            audio="audio" in reasons,
            gop_seconds=min(TRANSCODE_GOP, self.segment_target),
            preset=self.x264_preset,
        )

    def _source_text(self) -> str:
        scanner = self._scanner
        named = [
            f"{c} {k}"
            for k, c in (("video", scanner.video_codec), ("audio", scanner.audio_codec))
            if c
        ]
        return ", ".join(named) or "no known track"

    async def close(self) -> None:
        """End of input: ffmpeg finishes, the last segment is completed and the playlists
        get EXT-X-ENDLIST. Raises the stream's error if it failed and no ``write`` has."""
        if self._closed:
            self._raise_if_failed()
            return
        self._closed = True
        try:
            if self._error is None:
                await self._finish()
        finally:
            await self._reap()
        self._raise_if_failed()

    # -- process ----------------------------------------------------------------------------

    async def _start(self) -> None:
        scanner = self._scanner
        if not (scanner.video or scanner.audio):
            await self._fail(InvalidMedia("the stream has no H.264 video or AAC audio"))
        names = [n for n, on in (("video", scanner.video), ("audio", scanner.audio)) if on]
        if self.output_for is not None:
            try:
                self.output = await asyncio.to_thread(self.output_for, names, self._started_at)
            except InvalidMedia as exc:  # not the session's tracks
                await self._fail(exc)
        else:
            self.output = await asyncio.to_thread(  # it makes the rung directories
                LiveOutput,
                self.out_dir,
                renditions=names,
                low_latency=self.low_latency,
                part_target=self.part_target,
                segment_target=self.segment_target,
                dvr_window_seconds=self.dvr_window_seconds,
                keep_segments=self.keep_segments,
                started_at=self._started_at,
            )
        self.transcode = self._plan_transcode()
        if self.transcode is not None:
            log.info(
                "live.transcoding",
                out_dir=str(self.out_dir),
                reason=self.meter.mode_reason,
                source=self.meter.source,
            )
        held, self._held = self._held, []
        if isinstance(scanner, FlvScanner) and held and held[0][:3] == b"FLV":
            # The header's flags say which tracks follow: ffmpeg then stops probing once it
            # has them, and never waits for one the encoder announced but does not send.
            first = bytearray(held[0])
            if len(first) > 4:
                first[4] = (0x01 if scanner.video else 0) | (0x04 if scanner.audio else 0)
            held[0] = bytes(first)
        await self._spawn(names, b"".join(held))

    async def _spawn(self, names: list[str], data: bytes) -> None:
        """Start ffmpeg on the tracks ``names`` (into :attr:`output`) and send it ``data``."""
        scanner = self._scanner
        pipes = {name: os.pipe() for name in names}
        audio_fragment = (
            max(0.05, self.part_target - AUDIO_PART_MARGIN)
            if self.low_latency
            else STANDARD_AUDIO_FRAGMENT
        )
        maps = {}
        if isinstance(scanner, TsScanner):  # by PID: in MPEG-TS ffmpeg's stream id is the PID
            maps = {
                "video_map": f"0:i:{scanner.video_pid}",
                "audio_map": f"0:i:{scanner.audio_pid}",
            }
        self.argv = live_package_argv(
            self.ffmpeg,
            video_fd=pipes["video"][1] if "video" in pipes else None,
            audio_fd=pipes["audio"][1] if "audio" in pipes else None,
            audio_fragment_seconds=audio_fragment,
            input_format=self.input_format,
            transcode=self.transcode,
            **maps,
        )
        log.debug("process.start", name="ffmpeg-live", argv=self.argv)
        self._killed = False
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=[w for _, w in pipes.values()],
                **ChildOptions(self.memory_bytes).popen_kwargs(),  # type: ignore[arg-type]
            )
        except OSError as exc:
            for r, _ in pipes.values():
                os.close(r)
            await self._fail(
                HostFailure(HostCause.TOOL, f"could not start {self.ffmpeg}: {exc.strerror}")
            )
        finally:
            for _, w in pipes.values():  # the child has its copies
                os.close(w)
        self._proc_started = asyncio.get_running_loop().time()
        assert self._proc is not None
        log.info("live.packager_started", out_dir=str(self.out_dir), pid=self._proc.pid)
        self._stderr_task = asyncio.create_task(self._read_stderr())
        for name, (r, _) in pipes.items():
            t = threading.Thread(target=self._pump, args=(name, r), name=f"live-{name}")
            t.daemon = True
            t.start()
            self._threads.append(t)
        if data:
            await self._send(data)

    def _restartable(self) -> bool:
        """ffmpeg was killed by a signal none of ours sent (an operator, the OOM killer, a
        crash): the publisher is not at fault, so the stream goes on with a new one."""
        proc = self._proc
        return (
            proc is not None
            and proc.returncode is not None
            and proc.returncode < 0
            and not self._killed
            and self._error is None
            and not self._closed
            and self._thread_error is None
            and self.output_for is not None
            and self.restarts < MAX_RESTARTS
        )

    async def _restart(self) -> None:
        """A new ffmpeg for the rest of the stream, as a new publish of the session (a
        discontinuity and a new init segment: its media clock starts anew). MPEG-TS goes on
        from the next write (ffmpeg finds the packet sync and the PAT/PMT itself); FLV from
        the next tag boundary, after a new FLV header and the sequence headers seen."""
        proc = self._proc
        assert proc is not None
        assert self.output_for is not None
        self.restarts += 1
        self.meter.restarts = self.restarts
        tail = b"".join(self._stderr).decode("utf-8", "replace").strip()[-300:]
        log.warning(
            "live.packager_restarted",
            out_dir=str(self.out_dir),
            pid=proc.pid,
            returncode=proc.returncode,
            restarts=self.restarts,
            stderr=tail,
        )
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(BaseException):
                await self._stderr_task
        self._proc, self._threads, self._truncated, self._output_seen = None, [], None, False
        self._stderr.clear()
        self.encoder = None
        scanner = self._scanner
        names = [n for n, on in (("video", scanner.video), ("audio", scanner.audio)) if on]
        try:
            self.output = await asyncio.to_thread(self.output_for, names, datetime.now(UTC))
        except InvalidMedia as exc:
            await self._fail(exc)
        if isinstance(scanner, FlvScanner):
            self._resync = True  # the next write that holds a tag boundary starts it
        else:
            await self._spawn(names, b"")

    def _flv_restart(self, data: bytes, start: int) -> bytes | None:
        """What a new ffmpeg is fed from FLV ``data`` (its first byte at stream offset
        ``start``): an FLV header, the sequence headers, then ``data`` from its first tag
        boundary (each tag's trailer made to match); None when no boundary is in it."""
        scanner = self._scanner
        assert isinstance(scanner, FlvScanner)
        cut = next((o - start for o in scanner.tag_starts if o >= start), None)
        if cut is None or len(data) - cut < 4:
            return None
        flags = (0x01 if scanner.video else 0) | (0x04 if scanner.audio else 0)
        out = bytearray(b"FLV\x01" + bytes([flags]) + b"\x00\x00\x00\x09")
        prev = 0
        for tag in scanner.sequence_headers.values():
            out += struct.pack(">I", prev) + tag
            prev = len(tag)
        out += struct.pack(">I", prev) + data[cut + 4 :]
        return bytes(out)

    async def _send(self, data: bytes) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        if self._thread_error is not None:
            await self._fail_from_process()
        try:
            proc.stdin.write(data)
            await asyncio.wait_for(proc.stdin.drain(), WRITE_TIMEOUT)
        except (BrokenPipeError, ConnectionResetError):
            await self._fail_from_process()
        except TimeoutError:
            await self._fail(
                HostFailure(
                    HostCause.UNKNOWN,
                    f"the live packager's ffmpeg took no input for {WRITE_TIMEOUT:.0f} s",
                )
            )

    def _pump(self, name: str, fd: int) -> None:
        """Thread: read one fMP4 pipe to its end, handing fragments to the output."""
        output = self.output
        assert output is not None
        reader = Fmp4Reader()
        meter = self.meter
        scale = 1
        encoder: LadderEncoder | None = None
        try:
            with os.fdopen(fd, "rb", buffering=0) as pipe:
                while True:
                    data = pipe.read(READ_BYTES)
                    if not data:
                        break
                    for item in reader.feed(data):
                        if isinstance(item, Fragment):
                            self._output_seen = True
                            meter.fragment(
                                name,
                                item.decode_time / scale,
                                item.duration / scale,
                                sync=item.sync,
                                source=name == "video",
                            )
                            output.add_fragment(name, item)
                            if encoder is not None:
                                encoder.feed(item)
                        else:
                            output.add_init(name, item)
                            track = item.tracks[0]
                            scale = track.timescale or 1
                            meter.track(name, _track_info(track))
                            if name == "video" and self.ladder == "abr" and encoder is None:
                                encoder = self._start_ladder(item)
                        if self.tap is not None:
                            try:
                                self.tap(name, item)
                            except Exception:  # a viewer's problem never ends the stream
                                log.exception("live.tap_failed")
            try:
                if reader.init is not None:  # no output at all: nothing to check
                    reader.end()
            except Fmp4Error as exc:
                # Cut short: ffmpeg was killed or crashed (its exit status says so) or,
                # when it exited cleanly, wrote a broken stream (see _finish).
                self._truncated = self._truncated or exc
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop side
            if self._thread_error is None:
                self._thread_error = exc
            self._kill()
        finally:
            if encoder is not None:  # the source ended: the ladder finishes what it has
                encoder.end()
                encoder.join()

    def _start_ladder(self, init: InitSegment) -> LadderEncoder | None:
        """Thread: the lower rungs for the source video of ``init`` (none when the source is
        at or below the lowest standard rung)."""
        track = init.tracks[0]
        rungs = plan_live_ladder(track.width or 0, track.height or 0)
        output = self.output
        if not rungs or output is None:
            return None
        for rung in rungs:
            output.add_rendition(rung.name)
        self.meter.ladder = [
            {"name": r.name, "width": r.width, "height": r.height, "bitrate": r.bitrate}
            for r in rungs
        ]
        encoder = LadderEncoder(
            output, self.meter, rungs, ffmpeg=self.ffmpeg, preset=self.x264_preset
        )
        self.encoder = encoder
        encoder.start(init)
        return encoder

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        async for line in self._proc.stderr:
            self._stderr.append(line)

    def _kill(self) -> None:
        self._killed = True
        if self.encoder is not None:
            self.encoder.kill()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def _join_threads(self) -> None:
        """The pipe threads end at EOF, which ffmpeg's exit (or kill) brings."""
        for t in self._threads:
            await asyncio.to_thread(t.join, CLOSE_TIMEOUT)

    async def _finish(self) -> None:
        if self._proc is None and self._resync:  # restarted, and no tag came since
            assert self.output is not None
            await asyncio.to_thread(self.output.finish)
            return
        if self._proc is None:
            if self._nothing_sent():
                return  # nothing was published
            await self._start()
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
        except TimeoutError:
            self._kill()
            await self._fail(
                HostFailure(
                    HostCause.UNKNOWN,
                    f"the live packager's ffmpeg did not finish within {CLOSE_TIMEOUT:.0f} s",
                )
            )
        await self._join_threads()
        if proc.returncode != 0 or self._thread_error is not None:
            await self._fail_from_process()
        if self._truncated is not None:
            await self._fail(self._truncated)
        assert self.output is not None
        await asyncio.to_thread(self.output.finish)

    async def _fail_from_process(self) -> None:
        """ffmpeg stopped taking input or exited badly: say why, from the fMP4 reader's
        error or ffmpeg's exit status and stderr."""
        proc = self._proc
        assert proc is not None
        if self._thread_error is not None:
            self._kill()
        try:
            await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
        except TimeoutError:
            self._kill()
            await proc.wait()
        await self._join_threads()
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 2)
        if self._restartable():
            await self._restart()
            return
        error = self._thread_error
        if isinstance(error, MediaError):
            await self._fail(error)
        tail = b"".join(self._stderr).decode("utf-8", "replace").strip()
        failed = ProcessFailed("ffmpeg-live", proc.returncode or 0, tail, self.argv)
        if error is not None:  # an OSError writing files: the host's
            await self._fail(HostFailure(HostCause.DISK, f"writing the live output: {error}"))
        container = "FLV (RTMP)" if self.input_format == "flv" else "MPEG-TS (SRT)"
        what = "read" if self.transcode is None else f"decoded ({self._source_text()})"
        await self._fail(
            classify(
                failed,
                f"the live stream could not be {what}: send H.264 video and AAC audio in"
                f" {container} with a keyframe every 1-2 seconds",
            )
        )

    def _nothing_sent(self) -> bool:
        scanner = self._scanner
        return scanner.tags == 0 if isinstance(scanner, FlvScanner) else scanner.packets == 0

    async def _fail(self, error: MediaError) -> None:
        """End the stream: kill ffmpeg, close the playlists over what was written, keep
        ``error`` for the caller, and raise it."""
        if self._error is None:
            self._error = error
            self._kill()
            log.warning(
                "live.packager_failed",
                out_dir=str(self.out_dir),
                error=str(error),
                stderr=b"".join(self._stderr).decode("utf-8", "replace").splitlines()[-12:],
            )
            await self._reap()
            if self.output is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.output.finish)
        self._error_raised = True
        raise error

    async def _reap(self) -> None:
        """ffmpeg is gone and reaped, its pipes and threads done (on every path out)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        await self._join_threads()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(BaseException):
                await self._stderr_task

    def _raise_if_failed(self) -> None:
        """In ``write`` always, in ``close`` only if no call has raised it yet."""
        if self._error is not None and not (self._closed and self._error_raised):
            self._error_raised = True
            raise self._error


def _track_info(track: Track) -> dict[str, Any]:
    """What the health figures say about a source track."""
    info: dict[str, Any] = {"codec": track.codec}
    if track.kind == "video":
        info.update(width=track.width, height=track.height)
    return info


__all__ = ["FlvScanner", "LivePackager"]
