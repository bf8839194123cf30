"""Live: live streams as a resource (/api/v1/live-streams), the publish side the ingests
call (a stream key opens a :class:`PublishTarget`; sessions with a reconnect window), and
what the origin resolves a live playback id to (:func:`resolve_live_playback`).

Ingest and packaging: :class:`RtmpServer` takes RTMP publishers on one port, checks each
stream key through an ``authorize`` callback before any media, and writes each publisher's
FLV to the :class:`PublishSink` that ``open_sink`` returns; :class:`SrtServer` does the same
for SRT publishers on one UDP port (libsrt through ctypes), routed by stream id
(:func:`parse_stream_id`), writing MPEG-TS; :class:`LivePackager` turns one publish into
CMAF segments, LL-HLS parts and playlists in a directory the origin serves.

Protection: a stream's ``protection`` (``none``, ``cenc``, ``cbcs``; a change applies from
its next publish) has :class:`LiveOutput` encrypt its segments and parts itself
(:class:`mediaplane.media.CencWriter`), with content keys from the key store owned by the
live stream and rotated every ``MEDIAPLANE_LIVE_KEY_ROTATION_SEGMENTS`` segments (a new key
epoch: a new init segment, EXT-X-KEY + EXT-X-MAP in HLS, a new Period in the MPD); the
manifests name the licence server as :data:`LICENCE_PLACEHOLDER`, which the origin
replaces with the absolute ``/drm/clearkey`` URL (:mod:`._protection`). WHEP is off for a
protected stream, and a protected stream cannot be recorded yet.

Recording: a stream with ``record`` keeps every segment of a session; when the session
ends, :func:`finish_recording` (the ``live.finish_recording`` job) stores them, as they
are, as its recording asset's VOD presentation.

A stream belongs to a channel like an asset does (members read it, editors change it,
admins everything). Status ``idle`` → ``active`` → ``idle`` (or ``disabled``); every change
writes its ``video.live_stream.*`` event to the outbox in the same transaction, its data
the stream as the API returns it without the stream key.

Errors::

    LiveError
    ├── LiveStreamNotFound  (also a mediaplane.errors.NotFound: 404)
    ├── InvalidProtection   a protection policy a live stream cannot have (also a
    │                       ValueError; 400 ``invalid_protection``)
    └── PublishRefused      a publisher may not go live now (``code``)
"""

from __future__ import annotations

from ._api import router
from ._errors import InvalidProtection, LiveError, LiveStreamNotFound, PublishRefused
from ._ingest import LiveIngest, segment_target, serve_ingest, session_dir
from ._models import (
    LatencyMode,
    LivePlaybackId,
    LiveSessionRow,
    LiveStream,
    LiveStreamStatus,
    new_stream_key,
    stream_key_hash,
)
from ._output import LiveOutput
from ._packager import FlvScanner, LivePackager
from ._playback import LivePlayback, resolve_live_playback
from ._protection import LICENCE_PLACEHOLDER, LIVE_PROTECTIONS, LiveProtection, stream_protection
from ._publish import (
    LiveSession,
    PublishTarget,
    authenticate_publisher,
    idle_expired_sessions,
    is_publish_allowed,
    publisher_connected,
    publisher_disconnected,
    session_idle,
)
from ._recording import finish_recording, read_recording, recording_presentation
from ._rtmp import Authorize, OpenSink, PublishSink, RtmpServer
from ._service import (
    LiveAction,
    add_live_playback_id,
    authorized_live_stream,
    create_live_stream,
    delete_live_stream,
    disable_live_stream,
    enable_live_stream,
    live_stream_to_api,
    live_stream_view,
    live_stream_views,
    live_visible_to,
    recording_finished,
    remove_live_playback_id,
    reset_stream_key,
)
from ._srt import SrtServer, StreamId, StreamIdError, parse_stream_id
from ._webrtc import WebRtcHost, check_sdp
from ._webrtc_api import webrtc_router

__all__ = [
    "LICENCE_PLACEHOLDER",
    "LIVE_PROTECTIONS",
    "LiveProtection",
    "stream_protection",
    "SrtServer",
    "StreamId",
    "StreamIdError",
    "parse_stream_id",
    "LiveIngest",
    "Authorize",
    "FlvScanner",
    "LatencyMode",
    "LiveAction",
    "InvalidProtection",
    "LiveError",
    "LiveOutput",
    "LivePackager",
    "LivePlayback",
    "LivePlaybackId",
    "LiveSession",
    "LiveSessionRow",
    "LiveStream",
    "LiveStreamNotFound",
    "LiveStreamStatus",
    "OpenSink",
    "PublishRefused",
    "PublishSink",
    "PublishTarget",
    "RtmpServer",
    "add_live_playback_id",
    "authenticate_publisher",
    "authorized_live_stream",
    "create_live_stream",
    "delete_live_stream",
    "disable_live_stream",
    "enable_live_stream",
    "finish_recording",
    "idle_expired_sessions",
    "is_publish_allowed",
    "live_stream_to_api",
    "live_stream_view",
    "live_stream_views",
    "live_visible_to",
    "new_stream_key",
    "publisher_connected",
    "publisher_disconnected",
    "read_recording",
    "recording_finished",
    "recording_presentation",
    "remove_live_playback_id",
    "reset_stream_key",
    "resolve_live_playback",
    "router",
    "segment_target",
    "serve_ingest",
    "session_dir",
    "session_idle",
    "stream_key_hash",
    "WebRtcHost",
    "check_sdp",
    "webrtc_router",
]
