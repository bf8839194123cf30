"""The per-process runtime: settings plus the database, object store, job broker, event bus,
key store and job table they name.

Built once per process (and again after a fork, so no connection crosses a fork). The job
table comes from the app's wiring (``mediaplane.app.job_table``), passed in by whoever
starts the process; a runtime rebuilt after a fork keeps it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from mediaplane.config import Settings, get_settings
from mediaplane.db import Database
from mediaplane.events import Bus, open_bus
from mediaplane.jobs import JobTable, make_celery
from mediaplane.media import Toolchain
from mediaplane.protect import KeyStore, open_kms
from mediaplane.storage import ObjectStore, open_store

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["JobTableFactory", "Runtime"]

#: Builds the job table for a configuration (rows read attempts and timeouts from it).
JobTableFactory = Callable[[Settings], JobTable]
T = TypeVar("T")


class Runtime:
    """Settings and the adapters they choose; cheap to build, lazy to connect.

    :param job_table: the job types this process dispatches and runs; without one, every
        dispatch fails with UnknownJobType.
    """

    _current: ClassVar[Runtime | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings, job_table: JobTableFactory | None = None) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.db = Database(settings.effective_database_url)
        self.job_table = job_table
        self._shared: dict[Callable[[Runtime], Any], Any] = {}
        # re-entrant: a maker may ask for another shared service (the beacon intake's lake)
        self._shared_lock = threading.RLock()

    def shared(self, make: Callable[[Runtime], T]) -> T:
        """The one object ``make(self)`` built for this runtime (made on first use, once,
        whichever thread asks first): the services a package keeps per process, like the
        analytics lake or the origin's token checker."""
        try:
            return self._shared[make]  # type: ignore[no-any-return]
        except KeyError:
            pass
        with self._shared_lock:
            if make not in self._shared:
                self._shared[make] = make(self)
            return self._shared[make]  # type: ignore[no-any-return]

    @cached_property
    def jobs(self) -> JobTable:
        return self.job_table(self.settings) if self.job_table is not None else JobTable()

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(self.settings.effective_storage_url)

    @cached_property
    def celery(self) -> Celery:
        return make_celery(self.settings, type(self).get)

    @cached_property
    def bus(self) -> Bus:
        """The event bus ``events_url`` names (the relay publishes to it)."""
        return open_bus(self.settings.events_url, self.db, self.settings.queue_namespace)

    @cached_property
    def keys(self) -> KeyStore:
        """The content-key store, its KEKs wrapped by the KMS ``kms_url`` names."""
        return KeyStore(self.db, open_kms(self.settings))

    @cached_property
    def toolchain(self) -> Toolchain:
        return Toolchain.discover(self.settings)

    @classmethod
    def get(
        cls, settings: Settings | None = None, *, job_table: JobTableFactory | None = None
    ) -> Runtime:
        """This process's runtime, built from ``settings`` or the environment on first use
        (and after a fork, from the same settings and job table)."""
        with cls._lock:
            cur = cls._current
            if (
                cur is None
                or cur.pid != os.getpid()
                or (settings is not None and cur.settings is not settings)
                or (job_table is not None and cur.job_table is not job_table)
            ):
                if settings is None:
                    settings = cur.settings if cur is not None else get_settings()
                if job_table is None and cur is not None:
                    job_table = cur.job_table
                cur = cls(settings, job_table)
                cls._current = cur
            return cur

    @classmethod
    def install(cls, runtime: Runtime) -> None:
        with cls._lock:
            cls._current = runtime
