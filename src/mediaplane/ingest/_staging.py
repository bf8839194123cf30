"""Staged uploads: a resumable upload's bytes, appended at recorded offsets and invisible
until published as one object, built on the object store's primitives.

A staged object is named like a key (``uploads/<id>``) and lives in the store's ``staged``
area (:meth:`mediaplane.storage.ObjectStore.area`), so no key reaches it and no listing
shows it. Two ways to keep one, chosen by :func:`staging_for`:

* :class:`FileStaging`, on a local store: one file appended in place (``pwrite``; durable
  once the kernel has it), published by a rename onto its key (no copy); concatenation
  appends the other files onto the first inside the kernel (``copy_file_range``). Files
  are 0640 and directories 0750 at most, like the store's objects.
* :class:`PartStaging`, on any other store (S3): a run of part objects of
  :data:`PART_SIZE` (bar the last of a write), each named by its start offset, so one part
  is held in memory per writer; published by :meth:`~mediaplane.storage.ObjectStore.compose`
  (on S3 a multipart upload whose parts S3 copies itself).

A writer reopened at the recorded offset drops what lies past it (bytes written but never
recorded); fewer bytes than the offset is a :class:`~mediaplane.storage.StorageError`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mediaplane.storage import (
    FILE_MODE,
    InvalidKey,
    LocalStore,
    ObjectInfo,
    ObjectStore,
    StorageError,
    append_file,
    make_dirs,
    validate_key,
)

__all__ = [
    "PART_SIZE",
    "STAGING_AREA",
    "FileStaging",
    "PartStaging",
    "StagedWriter",
    "Staging",
    "staging_for",
]

#: The store area staged objects live in.
STAGING_AREA = "staged"
#: A part object holds at least this many bytes, bar the last of a write.
PART_SIZE = 8 << 20


class StagedWriter(Protocol):
    """Appends to one staged object; see :meth:`Staging.open`.

    Not thread-safe: one writer per staged object at a time (the caller holds a lock).
    """

    @property
    def durable(self) -> int:
        """Bytes of the staged object stored so far; they survive this process dying."""
        ...

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` (may be buffered); return :attr:`durable` afterwards."""
        ...

    def close(self) -> int:
        """Store whatever is buffered and return the final :attr:`durable` size."""
        ...

    def abort(self) -> None:
        """Drop everything this writer appended, back to the offset it was opened at."""
        ...


class Staging(Protocol):
    """Staged objects of one store."""

    def open(self, name: str, offset: int) -> StagedWriter:
        """Open the staged object ``name`` (key rules apply) to append at byte ``offset``.

        Bytes it holds past ``offset`` are dropped; fewer raises :class:`StorageError`.
        Offset 0 starts a new one.
        """
        ...

    def commit(self, name: str, size: int, key: str) -> ObjectInfo:
        """Publish the first ``size`` bytes of ``name`` as the object ``key``; the staged
        object is gone afterwards. Raises :class:`StorageError` if it holds fewer bytes."""
        ...

    def commit_concat(self, parts: Sequence[tuple[str, int]], key: str) -> ObjectInfo:
        """Publish the staged objects ``(name, size)``, the first ``size`` bytes of each,
        one after the other as ``key``; they are gone afterwards. Raises
        :class:`StorageError` if one holds fewer bytes. Safe to retry after a crash."""
        ...

    def discard(self, name: str) -> None:
        """Delete the staged object ``name``; a missing one is not an error."""
        ...


def staging_for(store: ObjectStore) -> Staging:
    """The staging that suits ``store``: files on a local store, part objects elsewhere."""
    if isinstance(store, LocalStore):
        return FileStaging(store)
    return PartStaging(store)


# -- a local store: one file per staged object ---------------------------------------------


class _FileWriter:
    """Appends to one file; every write is durable once the kernel has it (no fsync: a
    crashed process loses nothing, a crashed host may lose the tail, as with put_file)."""

    def __init__(self, path: Path, name: str, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"offset {offset} is negative")
        try:
            make_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise StorageError(f"cannot open staged object {name!r}: {exc}") from exc
        size = os.fstat(fd).st_size
        if size < offset:
            os.close(fd)
            raise StorageError(
                f"staged object {name!r} holds {size} bytes, fewer than the {offset} recorded"
            )
        if size > offset:
            os.ftruncate(fd, offset)
        self._fd: int | None = fd
        self._name = name
        self._start = offset
        self._pos = offset

    @property
    def durable(self) -> int:
        return self._pos

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._fd is None:
            raise StorageError(f"staged writer for {self._name!r} is closed")
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self._fd, view, self._pos)
                self._pos += n
                view = view[n:]
        except OSError as exc:
            raise StorageError(f"cannot write staged object {self._name!r}: {exc}") from exc
        return self._pos

    def close(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self._pos

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._start)
            self._pos = self._start
        self.close()


class FileStaging:
    """Staged objects as files in a local store's staging area."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.root = store.area(STAGING_AREA).root

    def _path(self, name: str) -> Path:
        validate_key(name)
        path = (self.root / name).resolve()
        # As for keys: a staged name (built from an upload id) never leaves the staging
        # area, not through '..' (ruled out above) nor through a symlink.
        area = self.root.resolve()
        if not path.is_relative_to(area) or path == area:
            raise InvalidKey(f"staged name {name!r} resolves outside the staging area")
        return path

    def open(self, name: str, offset: int) -> _FileWriter:
        return _FileWriter(self._path(name), name, offset)

    def commit(self, name: str, size: int, key: str) -> ObjectInfo:
        """Rename the staged file onto ``key`` (no copy), cut to ``size`` bytes."""
        src = self._path(name)
        validate_key(key)
        try:
            held = src.stat().st_size
            if held < size:
                raise StorageError(f"staged object {name!r} holds {held} bytes, not {size}")
            if held > size:
                os.truncate(src, size)
        except FileNotFoundError:
            raise StorageError(f"no staged object {name!r} in {self.store.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot publish {name!r} as {key!r}: {exc}") from exc
        return self.store.move_file(key, src)

    def commit_concat(self, parts: Sequence[tuple[str, int]], key: str) -> ObjectInfo:
        """Append the other staged files onto the first (an in-kernel copy_file_range) and
        rename it onto ``key``: the first one's bytes are never copied.

        A marker file beside the first says appending has begun, so a retry after a crash
        knows the bytes past its size are appended ones: it keeps the whole sources it
        finds there and appends the rest again. The sources are deleted only at the end.
        """
        if not parts:
            raise StorageError("nothing to concatenate: no staged objects given")
        if len(parts) == 1:
            return self.commit(parts[0][0], parts[0][1], key)
        head_name, head_size = parts[0]
        head = self._path(head_name)
        marker = head.with_name(head.name + ".concat")
        bounds = list(itertools.accumulate(size for _, size in parts))
        sources = [(self._path(name), name, size) for name, size in parts[1:]]
        try:
            fd = os.open(head, os.O_WRONLY)
        except FileNotFoundError:
            raise StorageError(f"no staged object {head_name!r} in {self.store.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot open staged object {head_name!r}: {exc}") from exc
        try:
            held = os.fstat(fd).st_size
            if held < head_size:
                raise StorageError(
                    f"staged object {head_name!r} holds {held} bytes, not {head_size}"
                )
            # Without the marker, bytes past head_size are a tail nobody recorded.
            done = sum(1 for b in bounds if b <= held) if marker.exists() else 1
            pos = bounds[done - 1]
            os.ftruncate(fd, pos)
            marker.touch(FILE_MODE)
            for path, name, size in sources[done - 1 :]:
                append_file(fd, pos, path, name, size, what="staged object")
                pos += size
        except OSError as exc:
            raise StorageError(f"cannot concatenate staged objects into {key!r}: {exc}") from exc
        finally:
            os.close(fd)
        info = self.commit(head_name, bounds[-1], key)
        for path, _, _ in sources:
            path.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        return info

    def discard(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".concat").unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete staged object {name!r}: {exc}") from exc


# -- any other store: part objects, composed -----------------------------------------------


def _part_key(name: str, offset: int) -> str:
    return f"{name}/{offset:020d}"


class _PartWriter:
    """Buffers up to :data:`PART_SIZE`, then stores the buffer as one part object."""

    def __init__(self, staging: PartStaging, name: str, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"offset {offset} is negative")
        self._area = staging.area
        self._name = name
        covered = 0
        for part_offset, size, key in staging.parts(name):
            if part_offset >= offset:  # written but never recorded: drop it
                self._area.delete(key)
            elif part_offset == covered:
                covered += size
        if covered != offset:
            raise StorageError(
                f"staged object {name!r} holds {covered} bytes in a row, not the {offset} recorded"
            )
        self._pos = offset
        self._buf = bytearray()
        self._written: list[str] = []

    @property
    def durable(self) -> int:
        return self._pos

    def _flush(self) -> None:
        key = _part_key(self._name, self._pos)
        self._area.put_bytes(key, bytes(self._buf))
        self._written.append(key)
        self._pos += len(self._buf)
        self._buf.clear()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        if len(self._buf) >= PART_SIZE:
            self._flush()
        return self._pos

    def close(self) -> int:
        if self._buf:
            self._flush()
        return self._pos

    def abort(self) -> None:
        self._buf.clear()
        for key in self._written:
            self._area.delete(key)
        self._written.clear()


class PartStaging:
    """Staged objects as part objects in a store's staging area, composed on commit."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.area = store.area(STAGING_AREA)

    def parts(self, name: str) -> tuple[tuple[int, int, str], ...]:
        """The part objects of ``name``: (start offset, size, key in the area), in order."""
        validate_key(name)
        prefix = f"{name}/"
        found = []
        for info in self.area.list(prefix):
            tail = info.key[len(prefix) :]
            if tail.isdigit():
                found.append((int(tail), info.size, info.key))
        return tuple(sorted(found))

    def open(self, name: str, offset: int) -> _PartWriter:
        validate_key(name)
        return _PartWriter(self, name, offset)

    def _chain(self, name: str, size: int) -> list[tuple[str, int]]:
        """The part objects ``(key, size)`` holding the first ``size`` bytes of ``name``."""
        chain: list[tuple[str, int]] = []
        covered = 0
        for part_offset, part_size, key in self.parts(name):
            if part_offset == covered and covered < size:
                chain.append((key, part_size))
                covered += part_size
        if covered != size:
            raise StorageError(f"staged object {name!r} holds {covered} bytes, not {size}")
        return chain

    def commit(self, name: str, size: int, key: str) -> ObjectInfo:
        """Compose the parts into ``key`` (on S3 inside the server: no byte is read back,
        bar parts under 5 MiB that a multipart upload cannot copy)."""
        return self.commit_concat([(name, size)], key)

    def commit_concat(self, parts: Sequence[tuple[str, int]], key: str) -> ObjectInfo:
        """Compose every part object of the staged objects into ``key``, in one go."""
        validate_key(key)
        if not parts:
            raise StorageError("nothing to concatenate: no staged objects given")
        chain = [piece for name, size in parts for piece in self._chain(name, size)]
        info = self.store.compose(key, chain, source=self.area)
        for name, _ in parts:
            self.discard(name)
        return info

    def discard(self, name: str) -> None:
        for _, _, key in self.parts(name):
            self.area.delete(key)
