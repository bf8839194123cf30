"""The per-process runtime: settings plus the database, object store and job broker they name.

Built once per process (and again after a fork, so no connection crosses a fork).
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

from mediaplane.config import Settings, get_settings
from mediaplane.db import Database

if TYPE_CHECKING:
    from celery import Celery

    from mediaplane.media import Toolchain
    from mediaplane.storage import ObjectStore

__all__ = ["Runtime"]


class Runtime:
    """Settings and the adapters they choose; cheap to build, lazy to connect."""

    _current: ClassVar[Runtime | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.db = Database(settings.effective_database_url)

    @cached_property
    def store(self) -> ObjectStore:
        from mediaplane.storage import open_store

        return open_store(self.settings.effective_storage_url)

    @cached_property
    def celery(self) -> Celery:
        from mediaplane.jobs import make_celery

        return make_celery(self.settings)

    @cached_property
    def toolchain(self) -> Toolchain:
        from mediaplane.media import Toolchain

        return Toolchain.discover(self.settings)

    @classmethod
    def get(cls, settings: Settings | None = None) -> Runtime:
        """This process's runtime, built from ``settings`` or the environment on first use."""
        with cls._lock:
            cur = cls._current
            if (
                cur is None
                or cur.pid != os.getpid()
                or (settings is not None and cur.settings is not settings)
            ):
                cur = cls(settings or get_settings())
                cls._current = cur
            return cur

    @classmethod
    def install(cls, runtime: Runtime) -> None:
        with cls._lock:
            cls._current = runtime
