"""Payloads of the asset jobs (the job table in ``mediaplane.app`` pairs each with its
handler). They live here, the lowest package both the enqueuers (catalog, ingest, the
pipeline) and the handlers import; each names its job type, as stored in ``jobs.type``."""

from __future__ import annotations

from typing import ClassVar

from mediaplane.jobs import JobPayload
from mediaplane.media import Chunk, Rung


class AssetJob(JobPayload):
    """What every asset job carries: the asset it works on (also the job's subject)."""

    asset_id: str


class ImportUrl(AssetJob):
    """Fetch ``url`` into the asset's source, then process it."""

    job_type: ClassVar[str] = "asset.import_url"
    url: str


class ProcessAsset(AssetJob):
    """Probe, encode, package and publish the asset's source."""

    job_type: ClassVar[str] = "asset.process"


class FingerprintAudio(AssetJob):
    """Fingerprint the asset's audio and link assets with the same audio."""

    job_type: ClassVar[str] = "asset.fingerprint"


class EncodeChunk(AssetJob):
    """Encode one chunk of one rung of a chunked ladder."""

    job_type: ClassVar[str] = "asset.encode_chunk"
    rung: Rung
    chunk: Chunk
    #: Chunks of the rung in all.
    chunks: int


class StitchRung(AssetJob):
    """Join a rung's chunks, package the rung and publish it."""

    job_type: ClassVar[str] = "asset.stitch_rung"
    rung: Rung
    chunks: int


class RepackageAsset(AssetJob):
    """Package the asset's stored renditions again under ``protection`` (no re-encode):
    the policy changed."""

    job_type: ClassVar[str] = "asset.repackage"
    protection: str
    #: Protected to protected: new keys (a policy change) or the keys in force (imported).
    rotate_keys: bool = True


class FinishRecording(AssetJob):
    """Make a live session's recording playable as VOD: its CMAF segments, as the live
    packager wrote them (no re-encode), stored under the asset and listed in its
    presentation."""

    job_type: ClassVar[str] = "live.finish_recording"
    live_stream_id: str
    session_id: str
