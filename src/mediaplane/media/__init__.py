"""Media: probe, ladder planning, one-pass ladder encode, CMAF packaging, manifests, thumbnails
and storyboards.

``ffmpeg.py`` is the only module that builds ffmpeg/ffprobe/packager command lines; every
subprocess runs inside a :class:`ManagedProcess` (timeout, memory limit, killed with its parent).

Formats are models with ``parse()`` and ``render()`` and no I/O: HLS playlists in ``_hls.py``
(:class:`MasterPlaylist`, :class:`MediaPlaylist`; their tags in ``_hls_tags.py``), DASH MPDs
in ``_dash.py`` (:class:`MPD`).
``_manifests.py`` builds them from a :class:`Presentation` (:func:`hls_master`,
:func:`hls_media`, :func:`dash_mpd`; ``render_*`` give the text).

Errors::

    MediaError
    ├── ToolMissing       ffmpeg/ffprobe/packager missing or too old (at startup)
    ├── InvalidMedia      the input cannot become an asset (message for the creator)
    ├── HostFailure       the host, not the input: disk, memory, signal, encoder (retried)
    ├── ProcessFailed     a subprocess exited non-zero
    ├── ProcessTimeout    a subprocess ran past its limit
    └── ManifestError     a playlist or MPD that cannot be parsed (also a ValueError)

:func:`classify` turns a ProcessFailed into InvalidMedia or HostFailure, in one place.
"""

from __future__ import annotations

from ._audio import AudioTrack, audio_tracks, language_tag
from ._dash import (
    MPD,
    AdaptationSet,
    ContentProtection,
    Descriptor,
    Event,
    EventStream,
    Node,
    Period,
    Representation,
    SegmentTemplate,
    TimelineEntry,
    iso_duration,
    parse_iso_duration,
)
from ._errors import (
    HostCause,
    HostFailure,
    InvalidMedia,
    ManifestError,
    MediaError,
    ProcessFailed,
    ProcessTimeout,
    ToolMissing,
    classify,
)
from ._hls import MasterPlaylist, MediaPlaylist, MediaSegment, parse_playlist
from ._hls_tags import (
    DateRange,
    Key,
    Map,
    Media,
    Part,
    PreloadHint,
    RenditionReport,
    ServerControl,
    Skip,
    Start,
    Tag,
    Variant,
)
from ._ladder import Chunk, Rung, plan_chunks, plan_ladder, plan_source_ladder, source_fps
from ._manifests import (
    dash_mpd,
    hls_master,
    hls_media,
    render_hls_master,
    render_hls_media,
    render_mpd,
)
from ._mp4 import AAC_LC, avc_codec_string
from ._package import Packager, PackagerInput, PackagingOptions, ShakaPackager
from ._picture import Picture, parse_idet
from ._presentation import AudioRole, Presentation, Rendition, Segment
from ._probe import AudioStream, MediaInfo, parse_probe, probe
from ._process import ManagedProcess
from ._storyboard import (
    MAX_FRAMES,
    STORYBOARD_WIDTHS,
    THUMBNAIL_WIDTHS,
    StoryboardFrame,
    make_storyboard,
    snap_thumbnail,
    storyboard_points,
    thumbnail_name,
)
from ._transcode import (
    PlaylistEntry,
    concat_chunks,
    encode_chunk,
    encode_ladder,
    encode_preview,
    encode_timeout,
    extract_thumbnail,
    read_playlist,
    waveform_image,
)
from .ffmpeg import Toolchain, find_packager

__all__ = [
    "MPD",
    "AdaptationSet",
    "ContentProtection",
    "DateRange",
    "Descriptor",
    "Event",
    "EventStream",
    "Key",
    "ManifestError",
    "Map",
    "MasterPlaylist",
    "Media",
    "MediaPlaylist",
    "MediaSegment",
    "Node",
    "Part",
    "Period",
    "PreloadHint",
    "RenditionReport",
    "Representation",
    "SegmentTemplate",
    "ServerControl",
    "Skip",
    "Start",
    "Tag",
    "TimelineEntry",
    "Variant",
    "dash_mpd",
    "hls_master",
    "hls_media",
    "iso_duration",
    "parse_iso_duration",
    "parse_playlist",
    "AAC_LC",
    "MAX_FRAMES",
    "STORYBOARD_WIDTHS",
    "THUMBNAIL_WIDTHS",
    "StoryboardFrame",
    "make_storyboard",
    "snap_thumbnail",
    "storyboard_points",
    "thumbnail_name",
    "AudioRole",
    "AudioStream",
    "AudioTrack",
    "audio_tracks",
    "language_tag",
    "waveform_image",
    "Chunk",
    "concat_chunks",
    "encode_chunk",
    "plan_chunks",
    "PlaylistEntry",
    "avc_codec_string",
    "encode_preview",
    "HostCause",
    "HostFailure",
    "classify",
    "read_playlist",
    "InvalidMedia",
    "ManagedProcess",
    "MediaError",
    "MediaInfo",
    "Picture",
    "parse_idet",
    "plan_source_ladder",
    "source_fps",
    "Packager",
    "PackagerInput",
    "PackagingOptions",
    "Presentation",
    "ProcessFailed",
    "ProcessTimeout",
    "Rendition",
    "Rung",
    "Segment",
    "ShakaPackager",
    "Toolchain",
    "ToolMissing",
    "encode_ladder",
    "encode_timeout",
    "extract_thumbnail",
    "find_packager",
    "parse_probe",
    "plan_ladder",
    "probe",
    "render_hls_master",
    "render_hls_media",
    "render_mpd",
]
