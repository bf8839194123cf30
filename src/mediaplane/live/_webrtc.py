"""WebRTC on the live ingest: WHIP publishers and WHEP viewers, their peer connections held
by the process that runs :class:`~._ingest.LiveIngest`.

Why there: ``mediaplane up`` answers HTTP in Granian worker processes, but the publishers'
sessions and packagers live in the ingest's thread of the main process. The HTTP routes
(:mod:`._webrtc_api`) therefore only check the request (key, size, SDP shape) and relay the
offer over a Unix socket in the data directory (:func:`control_socket`, one JSON line each
way) to :class:`WebRtcHost`, which makes the peer connection, answers, and owns it until it
ends; a ``DELETE`` reaching any web process is relayed the same way. A WHIP publisher then
feeds its session's sink in this process (:class:`~._whip.WhipPublisher`); a WHEP viewer
reads the stream's H.264 straight from its packager (:class:`~._whep.H264Fanout`): no
per-process fan-out, no media between processes.

Bounds: viewers per stream (``webrtc_max_viewers``), publishers and viewers at once
(``live_max_connections`` each), a peer that does not connect within
``webrtc_peer_timeout_seconds`` (or drops for that long) is closed; every peer's
resources (tracks, encoder, sink) are closed when it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from mediaplane.media import Fragment, InitSegment

from ._errors import PublishRefused
from ._ice import ice_host_addresses
from ._playback import resolve_live_playback
from ._whep import H264Fanout, ViewerTrack
from ._whep_audio import AudioViewer, OpusFanout
from ._whip import WhipPublisher

if TYPE_CHECKING:
    from collections.abc import Callable

    from mediaplane.config import Settings

    from ._ingest import LiveIngest

__all__ = ["MAX_SDP_BYTES", "WebRtcHost", "check_sdp", "control_socket"]

log = structlog.get_logger("mediaplane.live")
# aioice logs every ICE check at INFO: a line per candidate pair per peer.
logging.getLogger("aioice").setLevel(logging.WARNING)

#: An SDP offer larger than this is refused (a browser's is 4-8 KiB).
MAX_SDP_BYTES = 32 * 1024
#: A control request (JSON with the offer) at most.
MAX_REQUEST_BYTES = 2 * MAX_SDP_BYTES + 4096
#: Seconds the host takes to answer one request (the relay waits a little longer).
ANSWER_TIMEOUT = 10.0
_SDP_LINE_TYPES = set("vosiuepcbtrzkam")


def control_socket(settings: Settings) -> Path:
    """The Unix socket the ingest's WebRTC host listens on (in the data directory, beside
    ``live/``, whose entries are streams)."""
    return settings.data_path / "webrtc.sock"


def check_sdp(sdp: str) -> str | None:
    """Why ``sdp`` is not an SDP offer we take (None when it looks like one): its size,
    ``v=0`` first, every line ``<letter>=…``, at least one ``m=`` line, ICE credentials and
    a DTLS fingerprint (WebRTC needs both, RFC 8829)."""
    if len(sdp) > MAX_SDP_BYTES:
        return f"the SDP offer is larger than {MAX_SDP_BYTES} bytes"
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        return "the body is not an SDP offer (it must start with v=0)"
    for line in lines:
        if len(line) < 2 or line[1] != "=" or line[0] not in _SDP_LINE_TYPES:
            return f"the SDP offer has a malformed line: {line[:40]!r}"
        if not line.isprintable():
            return "the SDP offer has control characters"
    if not any(line.startswith("m=") for line in lines):
        return "the SDP offer has no media (m=) section"
    if not any(line.startswith("a=ice-ufrag:") for line in lines):
        return "the SDP offer has no ICE credentials (a=ice-ufrag)"
    if not any(line.startswith("a=fingerprint:") for line in lines):
        return "the SDP offer has no DTLS fingerprint (a=fingerprint)"
    return None


def _reply(status: int, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"status": status, "message": message, **extra}


@dataclass
class _Peer:
    """One WHIP publisher's or WHEP viewer's peer connection and what it holds."""

    kind: str  # whip | whep
    resource: str
    pc: Any
    live_stream_id: str
    publisher: WhipPublisher | None = None
    viewer: ViewerTrack | None = None
    audio: AudioViewer | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    run: asyncio.Task[None] | None = None  # a publisher's media path
    closed: bool = False


class WebRtcHost:
    """The WHIP and WHEP peers of one live ingest (see the module docstring)."""

    def __init__(self, ingest: LiveIngest) -> None:
        self.ingest = ingest
        self.settings = ingest.settings
        self.peers: dict[str, _Peer] = {}
        self.runs: set[asyncio.Task[None]] = set()  # publishers' media paths, to their end
        self.fanouts: dict[str, H264Fanout] = {}
        self.audio: dict[str, OpusFanout] = {}
        self.server: asyncio.AbstractServer | None = None
        self.path: Path | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on :func:`control_socket` (a stale socket file is replaced). When it
        cannot (a data directory whose path is too long for a Unix socket, ~107 bytes),
        WebRTC is logged as unavailable and RTMP and SRT go on."""
        path = control_socket(self.settings)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self.server = await asyncio.start_unix_server(
                self._serve, path=str(path), limit=MAX_REQUEST_BYTES
            )
            path.chmod(0o600)
        except OSError as exc:
            log.error("live.webrtc_unavailable", socket=str(path), error=str(exc))
            return
        self.path = path

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None
        for peer in list(self.peers.values()):
            await self._close_peer(peer)
        if self.runs:  # the publishers' encoders finish, their sinks close (bounded)
            await asyncio.wait(list(self.runs), timeout=30)
        for video in self.fanouts.values():
            video.end()
        for audio in self.audio.values():
            audio.end()
        self.fanouts.clear()
        self.audio.clear()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # -- the packager side ----------------------------------------------------------------

    def tap(self, live_stream_id: str) -> Callable[[str, InitSegment | Fragment], None]:
        """What the stream's packager hands its init segments and fragments to (from its
        pipe threads): the stream's video and audio fan-outs, which outlive a packager."""
        loop = asyncio.get_running_loop()
        video = self.fanouts.get(live_stream_id)
        if video is None:
            video = H264Fanout(loop, self.settings.webrtc_max_viewers)
            self.fanouts[live_stream_id] = video
        audio = self.audio.get(live_stream_id)
        if audio is None:
            audio = OpusFanout(loop)
            self.audio[live_stream_id] = audio

        def feed(name: str, item: InitSegment | Fragment) -> None:
            video.feed(name, item)
            audio.feed(name, item)

        return feed

    def stream_idle(self, live_stream_id: str) -> None:
        """The stream's session ended: its viewers' tracks end (their peers close)."""
        video, audio = self.fanouts.pop(live_stream_id, None), self.audio.pop(live_stream_id, None)
        if video is not None:
            video.end()
        if audio is not None:
            audio.end()
        for peer in list(self.peers.values()):  # the viewers' connections go too
            if peer.kind == "whep" and peer.live_stream_id == live_stream_id:
                task = asyncio.get_running_loop().create_task(self._close_peer(peer))
                peer.tasks.add(task)

    # -- the control socket ---------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError
            except (ValueError, asyncio.LimitOverrunError, TimeoutError):
                reply = _reply(400, "malformed control request")
            else:
                try:
                    reply = await asyncio.wait_for(self.handle(request), ANSWER_TIMEOUT)
                except TimeoutError:
                    reply = _reply(503, "the WebRTC answer took too long")
                except Exception:
                    log.exception("live.webrtc_failed", op=request.get("op"))
                    reply = _reply(500, "the WebRTC request failed")
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one relayed request: ``whip`` (stream_key, sdp), ``whep`` (playback_id,
        sdp) or ``delete`` (kind, resource)."""
        op = request.get("op")
        if op == "delete":
            peer = self.peers.get(str(request.get("resource", "")))
            if peer is None or peer.kind != request.get("kind"):
                return _reply(404, "no such WebRTC session")
            await self._close_peer(peer)
            return _reply(200)
        sdp = request.get("sdp")
        if not isinstance(sdp, str) or (why := check_sdp(sdp)) is not None:
            return _reply(400, why or "no SDP offer")
        if op == "whip":
            return await self.whip(str(request.get("stream_key", "")), sdp)
        if op == "whep":
            return await self.whep(str(request.get("playback_id", "")), sdp)
        return _reply(400, "unknown control request")

    # -- peers ----------------------------------------------------------------------------

    def _count(self, kind: str) -> int:
        return sum(1 for p in self.peers.values() if p.kind == kind)

    def _peer_connection(self) -> Any:
        from aiortc import RTCConfiguration, RTCPeerConnection

        # No ICE servers: aiortc would otherwise ask a public STUN server; host candidates.
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _negotiate(self, pc: Any, sdp: str) -> str | None:
        """Apply the offer and make the answer; None when aiortc cannot take the offer."""
        from aiortc import RTCSessionDescription

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc's parser raises ValueError, KeyError, IndexError, …
            log.info("live.webrtc_offer_refused", error=str(exc)[:200])
            return None
        answer = await pc.createAnswer()
        # Waits for ICE gathering: host candidates on webrtc_ice_addresses (or every
        # non-loopback interface when that is empty).
        with ice_host_addresses(self.settings.webrtc_ice_addresses):
            await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    def _watch(self, peer: _Peer) -> None:
        """Close the peer when its connection fails or closes, or does not connect in time."""
        pc, timeout = peer.pc, self.settings.webrtc_peer_timeout_seconds

        async def later() -> None:
            await asyncio.sleep(timeout)
            if pc.connectionState != "connected":
                log.info("live.webrtc_timeout", kind=peer.kind, resource=peer.resource)
                await self._close_peer(peer)

        def spawn(coro: Any) -> None:
            task = asyncio.get_running_loop().create_task(coro)
            peer.tasks.add(task)
            task.add_done_callback(peer.tasks.discard)

        def _changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                spawn(self._close_peer(peer))
            elif pc.connectionState == "disconnected":
                spawn(later())

        pc.on("connectionstatechange", _changed)
        spawn(later())

    async def whip(self, stream_key: str, sdp: str) -> dict[str, Any]:
        """A WHIP publisher's offer: 401 for a key that opens no stream (before any media),
        409 when the stream has a publisher, else 201 with the answer."""
        target = await self.ingest.authorize("whip", stream_key)
        if target is None:
            return _reply(401, "the stream key opens no live stream (unknown or disabled)")
        if self._count("whip") >= self.settings.live_max_connections:
            return _reply(503, "the live ingest holds as many WHIP publishers as it may")
        pc = self._peer_connection()
        resource = secrets.token_urlsafe(18)
        peer = _Peer("whip", resource, pc, target.live_stream_id)
        tracks: list[Any] = []
        pc.on("track", tracks.append)
        answer = await self._negotiate(pc, sdp)
        kinds = {t.kind for t in tracks}
        if answer is None or not kinds & {"video", "audio"}:
            await pc.close()
            return _reply(400, "the SDP offer sends no audio or video aiortc can take")
        try:
            sink = await self.ingest.open_sink(target, protocol="whip", input_format="mpegts")
        except PublishRefused as exc:
            await pc.close()
            return _reply(409 if exc.code == "already_publishing" else 403, exc.message)
        publisher = WhipPublisher(
            sink,
            ffmpeg=self.settings.ffmpeg_path,
            preset=self.settings.x264_preset,
            gop_seconds=_gop_seconds(target.latency_mode),
        )
        for track in tracks:
            publisher.add_track(track)
        peer.publisher = publisher
        self.peers[resource] = peer
        self._watch(peer)

        async def publish() -> None:
            try:
                await publisher.run()
            finally:
                await self._close_peer(peer)

        peer.run = asyncio.get_running_loop().create_task(publish())
        self.runs.add(peer.run)
        peer.run.add_done_callback(self.runs.discard)
        log.info("live.whip_publishing", live_stream_id=target.live_stream_id, tracks=sorted(kinds))
        return _reply(201, resource=resource, sdp=answer)

    async def whep(self, playback_id: str, sdp: str) -> dict[str, Any]:
        """A WHEP viewer's offer: 404 for an unknown playback id or a stream not live here,
        403 for a signed one (a token is not taken over WHEP yet), 503 when the stream has
        as many viewers as allowed, else 201 with the answer."""
        playback = await asyncio.to_thread(resolve_live_playback, self.ingest.runtime, playback_id)
        if playback is None or playback.session_id is None:
            return _reply(404, "no live stream is playing on that playback id")
        if playback.policy != "public":
            return _reply(403, "signed live playback is not offered over WHEP")
        stream = self.ingest.streams.get(playback.live_stream_id)
        fanout = self.fanouts.get(playback.live_stream_id)
        if stream is None or fanout is None or not fanout.h264:
            return _reply(404, "the live stream has no H.264 video here yet")
        if self._count("whep") >= self.settings.live_max_connections * 8:
            return _reply(503, "the live ingest holds as many WHEP viewers as it may")
        viewer = fanout.subscribe()
        if viewer is None:
            return _reply(503, "the live stream has as many WebRTC viewers as allowed")
        pc = self._peer_connection()
        resource = secrets.token_urlsafe(18)
        peer = _Peer("whep", resource, pc, playback.live_stream_id, viewer=viewer)
        offered = _offered_kinds(sdp)
        if "video" not in offered:
            fanout.unsubscribe(viewer)
            await pc.close()
            return _reply(400, "the SDP offer receives no video")
        pc.addTrack(viewer.track)
        audio_fanout = self.audio.get(playback.live_stream_id)
        if "audio" in offered and audio_fanout is not None:
            peer.audio = audio_fanout.subscribe()  # None: the stream has no audio
            if peer.audio is not None:
                pc.addTrack(peer.audio.track)
        _prefer(pc)
        answer = await self._negotiate(pc, sdp)
        if answer is None or "H264" not in answer:
            await self._close_peer(peer)
            return _reply(400, "the SDP offer does not receive H.264 video")
        self.peers[resource] = peer
        self._watch(peer)
        log.info("live.whep_viewer", live_stream_id=playback.live_stream_id, resource=resource)
        return _reply(201, resource=resource, sdp=answer)

    async def _close_peer(self, peer: _Peer) -> None:
        """Everything the peer holds is let go: its tracks, its publisher (the encoder
        finishes, the sink closes), its connection."""
        if peer.closed:
            return
        peer.closed = True
        self.peers.pop(peer.resource, None)
        if peer.viewer is not None:
            peer.viewer.track.stop()
        if peer.audio is not None:
            peer.audio.track.stop()
        if peer.publisher is not None:
            peer.publisher.stop()
        with contextlib.suppress(Exception):
            await peer.pc.close()
        for task in list(peer.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        log.info("live.webrtc_closed", kind=peer.kind, resource=peer.resource)


def _prefer(pc: Any) -> None:
    """The senders send what the stream has, as it is: H.264 video (a browser would
    otherwise pick VP8 from its offer, and get H.264 bytes as VP8), Opus audio."""
    from aiortc import RTCRtpSender

    video = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in video if c.mimeType.lower() == "video/h264"]
    rtx = [c for c in video if c.mimeType.lower() == "video/rtx"]
    opus = [
        c
        for c in RTCRtpSender.getCapabilities("audio").codecs
        if c.mimeType.lower() == "audio/opus"
    ]
    for transceiver in pc.getTransceivers():
        transceiver.setCodecPreferences(h264 + rtx if transceiver.kind == "video" else opus)


def _offered_kinds(sdp: str) -> set[str]:
    return {line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")}


def _gop_seconds(latency_mode: str) -> float:
    """Keyframe interval of a WHIP publisher's re-encoded video: half a segment (a WHEP
    viewer starts at the next keyframe; a segment still ends at its target)."""
    from ._ingest import segment_target

    return segment_target(latency_mode) / 2
