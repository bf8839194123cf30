"""Object store on a local directory tree.

Objects are created 0640 and directories 0750 (the umask may take more away, never add):
what a creator uploaded is for the server's user and its group, not every local account.
Every path built from a key or a staged name is resolved and checked to stay inside its
root (the store's, or the staging area's), symlinks included.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
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
    STAGED_PREFIX,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    check_range,
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
    view = memoryview(chunk)
    while view:
        n = os.pwrite(dst, view, dst_pos)
        dst_pos += n
        view = view[n:]
    return len(chunk)


class _LocalStagedWriter:
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

    def _staged_path(self, name: str) -> Path:
        validate_key(name)
        area = self.root / STAGED_PREFIX.rstrip("/")
        path = (area / name).resolve()
        # As for keys: a staged name (built from an upload id) never leaves the staging
        # area, not through '..' (ruled out above) nor through a symlink.
        if not path.is_relative_to(area.resolve()) or path == area.resolve():
            raise InvalidKey(f"staged name {name!r} resolves outside the staging area")
        return path

    def open_staged(self, name: str, offset: int) -> _LocalStagedWriter:
        """Open the staged file ``name`` to append at ``offset`` (see the Protocol)."""
        return _LocalStagedWriter(self._staged_path(name), name, offset)

    def commit_staged(self, name: str, size: int, key: str) -> ObjectInfo:
        """Rename the staged file onto ``key`` (no copy), cut to ``size`` bytes."""
        src = self._staged_path(name)
        dest = self._path(key)
        try:
            held = src.stat().st_size
            if held < size:
                raise StorageError(f"staged object {name!r} holds {held} bytes, not {size}")
            if held > size:
                os.truncate(src, size)
            make_dirs(dest.parent)
            st = src.stat()
            src.replace(dest)
        except FileNotFoundError:
            raise StorageError(f"no staged object {name!r} in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot publish {name!r} as {key!r}: {exc}") from exc
        return _info(key, st)

    def commit_staged_concat(self, parts: Sequence[tuple[str, int]], key: str) -> ObjectInfo:
        """Append the other staged files onto the first (an in-kernel copy_file_range) and
        rename it onto ``key``: the first one's bytes are never copied.

        A marker file beside the first says appending has begun, so a retry after a crash
        knows the bytes past its size are appended ones: it keeps the whole sources it
        finds there and appends the rest again. The sources are deleted only at the end.
        """
        if not parts:
            raise StorageError("nothing to concatenate: no staged objects given")
        if len(parts) == 1:
            return self.commit_staged(parts[0][0], parts[0][1], key)
        head_name, head_size = parts[0]
        head = self._staged_path(head_name)
        marker = head.with_name(head.name + ".concat")
        bounds = list(itertools.accumulate(size for _, size in parts))
        sources = [(self._staged_path(name), name, size) for name, size in parts[1:]]
        try:
            fd = os.open(head, os.O_WRONLY)
        except FileNotFoundError:
            raise StorageError(f"no staged object {head_name!r} in {self.url}") from None
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
                self._append(fd, pos, path, name, size)
                pos += size
        except OSError as exc:
            raise StorageError(f"cannot concatenate staged objects into {key!r}: {exc}") from exc
        finally:
            os.close(fd)
        info = self.commit_staged(head_name, bounds[-1], key)
        for path, _, _ in sources:
            path.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        return info

    @staticmethod
    def _append(fd: int, pos: int, path: Path, name: str, size: int) -> None:
        """Copy the first ``size`` bytes of the file ``path`` to ``fd`` at ``pos``."""
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise StorageError(f"no staged object {name!r}") from None
        try:
            if os.fstat(src).st_size < size:
                raise StorageError(
                    f"staged object {name!r} holds {os.fstat(src).st_size} bytes, not {size}"
                )
            copied = 0
            while copied < size:
                n = _copy_range(src, fd, size - copied, copied, pos + copied)
                if n == 0:
                    raise StorageError(f"staged object {name!r} ended early")
                copied += n
        finally:
            os.close(src)

    def discard_staged(self, name: str) -> None:
        """Delete the staged file ``name``."""
        path = self._staged_path(name)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".concat").unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete staged object {name!r}: {exc}") from exc

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
