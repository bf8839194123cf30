"""Object store on a local directory tree.

Objects are created 0640 and directories 0750 (the umask may take more away, never add):
what a creator uploaded is for the server's user and its group, not every local account.
Every path built from a key is resolved and checked to stay inside the store's root,
symlinks included. An area (:meth:`LocalStore.area`) is a store on the directory ``~name``
under the root; names starting with ``~`` are never listed as objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat as stat_mod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from ._base import (
    AREA_MARK,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    check_range,
    validate_area,
    validate_key,
    validate_prefix,
)

# '~' is not a key character, so a temp file can never shadow or be listed as an object.
_TMP_PREFIX = "~tmp."
_COPY_CHUNK = 1 << 20
#: Modes before the umask: objects (and temp files) for the owner and its group only.
FILE_MODE = 0o640
DIR_MODE = 0o750


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with :data:`DIR_MODE` (``Path.mkdir`` gives
    parents the default 0777)."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(DIR_MODE)


def _etag(st: os.stat_result) -> str:
    # The inode is included because an atomic replace always makes a new one, so two
    # same-size writes inside one mtime tick still get different etags.
    raw = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
    return ObjectInfo(key=key, size=st.st_size, etag=_etag(st), modified=modified)


def open_tmp(directory: Path) -> tuple[Path, IO[bytes]]:
    """Create a fresh temp file in ``directory``, mode :data:`FILE_MODE` under the umask."""
    while True:
        tmp = directory / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            continue
        return tmp, os.fdopen(fd, "wb")


_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def _copy_range(src: int, dst: int, count: int, src_pos: int, dst_pos: int) -> int:
    """Copy up to ``count`` bytes between files inside the kernel where it can; return
    how many were copied."""
    if hasattr(os, "copy_file_range"):
        try:
            return os.copy_file_range(src, dst, count, src_pos, dst_pos)
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
    chunk = os.pread(src, min(count, _COPY_CHUNK * 8), src_pos)
    _pwrite_all(dst, chunk, dst_pos)
    return len(chunk)


def _pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        pos += n
        view = view[n:]


def append_file(
    fd: int, pos: int, path: Path, name: str, size: int, *, what: str = "object"
) -> None:
    """Copy the first ``size`` bytes of the file ``path`` (the ``what`` called ``name``,
    for messages) to the open file ``fd`` at ``pos``, inside the kernel where it can."""
    try:
        src = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise StorageError(f"no {what} {name!r}") from None
    try:
        held = os.fstat(src).st_size
        if held < size:
            raise StorageError(f"{what} {name!r} holds {held} bytes, not {size}")
        copied = 0
        while copied < size:
            n = _copy_range(src, fd, size - copied, copied, pos + copied)
            if n == 0:
                raise StorageError(f"{what} {name!r} ended early")
            copied += n
    finally:
        os.close(src)


class LocalStore:
    """Objects as files under ``root``; writes are atomic (temp file + ``os.replace``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        """Open ``file:///abs/dir`` or a plain filesystem path."""
        if "://" not in url:
            return cls(Path(url))
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise StorageError(f"unsupported file URL {url!r}; use file:///absolute/dir")
        return cls(Path(unquote(parts.path)))

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = (self.root / key).resolve()
        # validate_key already rules out '..'; this catches symlinks that point outside.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"object key {key!r} resolves outside the store root")
        return path

    def _stat(self, key: str, path: Path) -> os.stat_result:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r} in {self.url}: {exc}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise ObjectNotFound(f"no object {key!r} in {self.url} (a prefix, not an object)")
        return st

    def _write(self, key: str, fill: Callable[[IO[bytes]], object]) -> ObjectInfo:
        path = self._path(key)
        tmp: Path | None = None
        try:
            make_dirs(path.parent)
            tmp, out = open_tmp(path.parent)
            with out:
                fill(out)
            st = tmp.stat()  # mtime and inode survive the rename
            tmp.replace(path)
            tmp = None
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} to {self.url}: {exc}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return _info(key, st)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Copy the local file ``path`` under ``key`` in 1 MiB chunks."""
        with Path(path).open("rb") as src:
            return self._write(key, lambda out: shutil.copyfileobj(src, out, _COPY_CHUNK))

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store ``data`` under ``key``."""
        return self._write(key, lambda out: out.write(data))

    def get_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)``; raises :class:`ObjectNotFound`."""
        check_range(start, end)
        path = self._path(key)
        fd = self._open(key, path)
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else min(end, size)
            chunks: list[bytes] = []
            pos = start
            while pos < stop:
                chunk = os.pread(fd, min(stop - pos, _COPY_CHUNK * 16), pos)
                if not chunk:
                    break
                chunks.append(chunk)
                pos += len(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} from {self.url}: {exc}") from exc
        finally:
            os.close(fd)

    def _open(self, key: str, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot open {key!r} in {self.url}: {exc}") from exc
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ObjectNotFound(f"no object {key!r} in {self.url} (a prefix, not an object)")
        return fd

    def download(self, key: str, path: Path) -> None:
        """Copy the object to the local file ``path``, replacing it atomically."""
        src_path = self._path(key)
        fd = self._open(key, src_path)
        with os.fdopen(fd, "rb") as src:
            dest = Path(path)
            tmp, out = open_tmp(dest.parent)
            try:
                with out:
                    shutil.copyfileobj(src, out, _COPY_CHUNK)
                tmp.replace(dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's metadata; raises :class:`ObjectNotFound`."""
        return _info(key, self._stat(key, self._path(key)))

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self._stat(key, self._path(key))
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} from {self.url}: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Remove the directory tree under ``prefix``; return how many objects it held."""
        validate_prefix(prefix, allow_empty=False)
        directory = self._path(prefix[:-1])
        if not directory.is_dir():
            return 0
        count = sum(1 for _ in self._walk(directory, prefix))
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {prefix!r} from {self.url}: {exc}") from exc
        return count

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object under ``prefix`` (``""`` or ending with ``/``)."""
        validate_prefix(prefix, allow_empty=True)
        directory = self._path(prefix[:-1]) if prefix else self.root
        return self._walk(directory, prefix)

    def _walk(self, directory: Path, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {prefix!r} in {self.url}: {exc}") from exc
        for entry in entries:
            if entry.name.startswith("~"):  # temp files and staged objects are not keys
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{prefix}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    yield _info(prefix + entry.name, entry.stat(follow_symlinks=False))

    def local_path(self, key: str) -> Path:
        """Return the object's file path; raises :class:`ObjectNotFound`."""
        path = self._path(key)
        self._stat(key, path)
        return path

    def move_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the local file ``path`` under ``key`` by renaming it (no copy): it must be on
        the store's filesystem, and it is gone afterwards. Its mode stays as it was made."""
        dest = self._path(key)
        try:
            make_dirs(dest.parent)
            st = path.stat()  # mtime and inode survive the rename
            path.replace(dest)
        except OSError as exc:
            raise StorageError(
                f"cannot move {str(path)!r} to {key!r} in {self.url}: {exc}"
            ) from exc
        return _info(key, st)

    def compose(
        self, key: str, sources: Sequence[tuple[str, int]], *, source: ObjectStore | None = None
    ) -> ObjectInfo:
        """Write the sources' first bytes one after the other into ``key`` (an in-kernel
        copy_file_range from files, a read-back from a remote source)."""
        origin: ObjectStore = self if source is None else source

        def fill(out: IO[bytes]) -> None:
            pos = 0
            for name, size in sources:
                local = origin.local_path(name)
                if local is not None:
                    append_file(out.fileno(), pos, local, name, size)
                else:
                    data = origin.get_bytes(name, 0, size)
                    if len(data) < size:
                        raise StorageError(f"object {name!r} holds {len(data)} bytes, not {size}")
                    _pwrite_all(out.fileno(), data, pos)
                pos += size

        return self._write(key, fill)

    def area(self, name: str) -> LocalStore:
        """A store on the directory ``~name`` under the root (hidden from listings)."""
        return LocalStore(self.root / f"{AREA_MARK}{validate_area(name)}")

    async def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` in chunks of at most ``chunk_size``, read in a thread."""
        check_range(start, end)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        path = self._path(key)
        fd = await asyncio.to_thread(self._open, key, path)
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else min(end, size)
            pos = start
            while pos < stop:
                try:
                    chunk = await asyncio.to_thread(os.pread, fd, min(chunk_size, stop - pos), pos)
                except OSError as exc:
                    raise StorageError(f"cannot read {key!r} from {self.url}: {exc}") from exc
                if not chunk:
                    break
                pos += len(chunk)
                yield chunk
        finally:
            os.close(fd)
