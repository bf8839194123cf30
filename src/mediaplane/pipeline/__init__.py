"""The asset pipeline: probe → plan → encode → package → publish, as steps and the job
handlers that compose them.

Steps (each a function of data — tools, settings, paths, rungs — not of a job, so live and
protection reuse them with another source and another output)::

    _probe.py      probe the source; record its facts on the asset
    _plan.py       the ladder of rungs (LadderPlan)
    _encode.py     the preview and a one-pass ladder in two threads; audio only
    _package.py    encoded MP4s → one set of CMAF segments (Shaka Packager)
    _publish.py    store the segments; add renditions to the asset's presentation
    _preview.py    the lowest rung published segment by segment while it encodes
    _chromaprint.py audio fingerprints and their comparison

Job handlers (named in the jobs table)::

    _vod.py          process_asset: the processing job of an asset
    _repackage.py    repackage_asset: the stored renditions packaged again under a new
                     protection policy (no re-encode; _protection.py gives the keys);
                     retire_replaced_renditions (a watchdog pass) deletes the replaced
                     ones once their grace is over
    _chunked.py      encode_chunk_job, stitch_rung_job: a ladder as chunk jobs on the fleet
    _fingerprint.py  fingerprint_asset, fingerprint_gave_up: audio duplicate detection
    _assets.py       asset_gave_up, and what every asset job checks first

Support: ``_workspace.py`` (scratch folders, the host's source cache, clean-up after an
asset deleted mid-job), ``_progress.py`` (how a job's percentage is made up).

Errors: the steps raise ``mediaplane.media`` errors; the handlers turn an invalid input into
``mediaplane.jobs.PermanentJobError`` (no retry) and let everything else be retried.
"""

from __future__ import annotations

from ._assets import asset_gave_up
from ._chunked import encode_chunk_job, stitch_rung_job
from ._encode import encode_audio, encode_with_preview
from ._fingerprint import fingerprint_asset, fingerprint_gave_up
from ._package import audio_inputs, package, packaging_options, video_inputs
from ._plan import LadderPlan, plan_rungs
from ._probe import probe_source
from ._publish import cmaf_prefix, publish_renditions, store_packaged, update_presentation
from ._repackage import repackage_asset, retire_replaced_renditions
from ._vod import process_asset

__all__ = [
    "LadderPlan",
    "asset_gave_up",
    "audio_inputs",
    "cmaf_prefix",
    "encode_audio",
    "encode_chunk_job",
    "encode_with_preview",
    "fingerprint_asset",
    "fingerprint_gave_up",
    "package",
    "packaging_options",
    "plan_rungs",
    "probe_source",
    "process_asset",
    "publish_renditions",
    "repackage_asset",
    "retire_replaced_renditions",
    "stitch_rung_job",
    "store_packaged",
    "update_presentation",
    "video_inputs",
]
