"""Where a pipeline job works: its scratch folder, the local source, and clean-up after an
asset deleted while it ran."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mediaplane.catalog import Asset

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

#: Sources downloaded for chunk jobs are kept per worker host this long after last use.
SOURCE_CACHE_SECONDS = 6 * 3600


def work_dir(rt: Runtime, job_id: str, *, tag: str = "") -> Path:
    """A new scratch folder for one job attempt, under the data path (removed by the caller)."""
    root = rt.settings.data_path / "work"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{job_id}-{tag}", dir=root))


def _cache_dir(rt: Runtime) -> Path:
    return rt.settings.data_path / "cache" / "sources"


def _expire_cached_sources(cache: Path) -> None:
    """Remove sources of assets finished (or deleted) on other hosts."""
    now = time.time()
    for old in cache.iterdir():
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > SOURCE_CACHE_SECONDS:
                old.unlink()


def source_file(rt: Runtime, asset_id: str, key: str, work: Path, *, shared: bool) -> Path:
    """A local path of the asset's source: the object itself on a local store; otherwise a
    download, into ``work`` or, when ``shared``, into this host's source cache so that the
    chunk jobs of one asset running here download it once."""
    local = rt.store.local_path(key)
    if local is not None:
        return local
    if not shared:
        rt.store.download(key, work / "source")
        return work / "source"
    cache = _cache_dir(rt)
    cache.mkdir(parents=True, exist_ok=True)
    _expire_cached_sources(cache)
    path = cache / asset_id
    with (cache / f"{asset_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            rt.store.download(key, path)
        os.utime(path)
    return path


def drop_cached_source(rt: Runtime, asset_id: str) -> None:
    """Remove this host's cached copy of the asset's source."""
    cache = _cache_dir(rt)
    for name in (asset_id, f"{asset_id}.lock"):
        (cache / name).unlink(missing_ok=True)


def forget_if_deleted(rt: Runtime, asset_id: str) -> None:
    """Objects written for an asset deleted meanwhile are removed again."""
    with rt.db.session() as s:
        gone = s.get(Asset, asset_id) is None
    if gone:
        rt.store.delete_prefix(f"assets/{asset_id}/")
        drop_cached_source(rt, asset_id)
