"""Media: probe, ladder planning, one-pass ladder encode, CMAF packaging, manifests, thumbnails
and storyboards.

``ffmpeg.py`` is the only module that builds ffmpeg/ffprobe/packager command lines; every
subprocess runs inside a :class:`ManagedProcess` (timeout, memory limit, killed with its parent).

Formats are models with ``parse()`` and ``render()`` and no I/O: HLS playlists in ``_hls.py``
(:class:`MasterPlaylist`, :class:`MediaPlaylist`; their tags in ``_hls_tags.py``), DASH MPDs
in ``_dash.py`` (:class:`MPD`).
``_fmp4.py`` reads fragmented MP4 as it streams (:class:`Fmp4Reader`: the init segment,
then each fragment's timing and whether it starts with a sync sample), for the live packager;
``_cenc.py`` (:class:`CencWriter`) encrypts that stream itself (ISO/IEC 23001-7 ``cenc`` and
``cbcs``, subsamples from the H.264 slice headers of ``_h264.py``), for protected live streams.
``_manifests.py`` builds them from a :class:`Presentation` (``hls_master``, ``hls_media``,
``dash_mpd``; the exported :func:`render_hls_master`, :func:`render_hls_media` and
:func:`render_mpd` give the text).

``__all__`` is what other packages use; media's own tests import the rest (the tag and MPD
node models, parsers' helpers) from the private modules.

Errors::

    MediaError
    ├── ToolMissing       ffmpeg/ffprobe/packager missing or too old (at startup)
    ├── InvalidMedia      the input cannot become an asset (message for the creator)
    ├── HostFailure       the host, not the input: disk, memory, signal, encoder (retried)
    ├── ProcessFailed     a subprocess exited non-zero
    ├── ProcessTimeout    a subprocess ran past its limit
    ├── ManifestError     a playlist or MPD that cannot be parsed (also a ValueError)
    └── Fmp4Error         a fragmented MP4 stream that cannot be read (also a ValueError)

:func:`classify` turns a ProcessFailed into InvalidMedia or HostFailure, in one place.
"""

from __future__ import annotations

from ._audio import audio_tracks
from ._cenc import CENC_SCHEMES, CencWriter, Subsample
from ._dash import (
    MPD,
    AdaptationSet,
    ContentProtection,
    Descriptor,
    Node,
    Period,
    Representation,
    SegmentTemplate,
    TimelineEntry,
    iso_duration,
)
from ._errors import (
    Fmp4Error,
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
from ._fmp4 import Fmp4Reader, Fragment, InitSegment, Track
from ._hls import MasterPlaylist, MediaPlaylist, MediaSegment, parse_playlist
from ._hls_tags import Key, Map, Media, Part, PreloadHint, RenditionReport, ServerControl, Variant
from ._ladder import Chunk, Rung, plan_chunks, plan_ladder, plan_source_ladder
from ._manifests import (
    content_protection,
    render_hls_master,
    render_hls_media,
    render_mpd,
    sample_key,
)
from ._mp4 import AAC_LC, avc_codec_string
from ._package import PackagerInput, PackagingOptions, ShakaPackager
from ._presentation import Presentation, Rendition, Segment
from ._probe import AudioStream, MediaInfo, probe
from ._process import ChildOptions, ManagedProcess
from ._protection import (
    COMMON_SYSTEM_ID,
    SCHEMES,
    DrmBox,
    DrmUrls,
    Encryption,
    TrackKey,
    common_pssh,
    decrypt_segment,
    encrypt_segment,
    segment_iv,
)
from ._storyboard import (
    MAX_FRAMES,
    STORYBOARD_WIDTHS,
    THUMBNAIL_WIDTHS,
    make_storyboard,
    snap_thumbnail,
    snap_width,
    storyboard_points,
    thumbnail_name,
)
from ._transcode import (
    PlaylistEntry,
    concat_chunks,
    encode_chunk,
    encode_ladder,
    encode_preview,
    extract_thumbnail,
    read_playlist,
    waveform_image,
)
from .ffmpeg import (
    LIVE_LADDER_RUNGS,
    PREVIEW_DIR,
    LiveRung,
    LiveTranscode,
    Source,
    Toolchain,
    chromaprint_argv,
    has_muxer,
    live_ladder_argv,
    live_package_argv,
    muxers_argv,
    plan_live_ladder,
)

__all__ = [
    "AAC_LC",
    "CENC_SCHEMES",
    "CencWriter",
    "content_protection",
    "sample_key",
    "Key",
    "ContentProtection",
    "Subsample",
    "COMMON_SYSTEM_ID",
    "SCHEMES",
    "DrmBox",
    "DrmUrls",
    "Encryption",
    "TrackKey",
    "common_pssh",
    "decrypt_segment",
    "encrypt_segment",
    "segment_iv",
    "AudioStream",
    "ChildOptions",
    "Chunk",
    "Fmp4Error",
    "Fmp4Reader",
    "Fragment",
    "HostCause",
    "HostFailure",
    "InitSegment",
    "InvalidMedia",
    "MAX_FRAMES",
    "MPD",
    "AdaptationSet",
    "Descriptor",
    "Period",
    "Representation",
    "SegmentTemplate",
    "TimelineEntry",
    "iso_duration",
    "ManagedProcess",
    "ManifestError",
    "Map",
    "MasterPlaylist",
    "Media",
    "MediaError",
    "MediaInfo",
    "MediaPlaylist",
    "MediaSegment",
    "Node",
    "PREVIEW_DIR",
    "PackagerInput",
    "PackagingOptions",
    "Part",
    "PlaylistEntry",
    "PreloadHint",
    "Presentation",
    "ProcessFailed",
    "ProcessTimeout",
    "Rendition",
    "RenditionReport",
    "Rung",
    "STORYBOARD_WIDTHS",
    "Segment",
    "ServerControl",
    "ShakaPackager",
    "Source",
    "THUMBNAIL_WIDTHS",
    "ToolMissing",
    "Toolchain",
    "Track",
    "Variant",
    "audio_tracks",
    "avc_codec_string",
    "chromaprint_argv",
    "classify",
    "concat_chunks",
    "encode_chunk",
    "encode_ladder",
    "encode_preview",
    "extract_thumbnail",
    "has_muxer",
    "LIVE_LADDER_RUNGS",
    "LiveRung",
    "LiveTranscode",
    "live_ladder_argv",
    "live_package_argv",
    "plan_live_ladder",
    "make_storyboard",
    "snap_width",
    "muxers_argv",
    "parse_playlist",
    "plan_chunks",
    "plan_ladder",
    "plan_source_ladder",
    "probe",
    "read_playlist",
    "render_hls_master",
    "render_hls_media",
    "render_mpd",
    "snap_thumbnail",
    "storyboard_points",
    "thumbnail_name",
    "waveform_image",
]
