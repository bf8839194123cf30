"""The Mediaplane API client: what the `mediaplane` command uses, and what tests and users
can import. It speaks HTTP (httpx) and nothing else; progress goes to callbacks (the CLI draws
the bars)::

    from mediaplane.client import Client, UploadState

    with Client("http://127.0.0.1:8080", token) as mp:
        upload = mp.upload(Path("talk.mp4"), title="Talk", state=UploadState())
        asset = mp.wait(upload["asset_id"])
        print(asset["playback"]["hls"])

Uploads use tus 1.0 (resumable): :meth:`Client.start_upload` creates the upload, or resumes
the one an interrupted run left in :class:`UploadState`; :meth:`TusUpload.send` sends the
rest in chunks. :meth:`Client.import_library` uploads a whole library, skipping files the
server already has (same sha256).

Errors::

    ClientError
    ├── RequestFailed      the API answered 4xx/5xx: ``status``, ``code``, ``message``
    │   └── TokenRefused   401 or 403: the token is missing, wrong or not allowed
    ├── Unreachable        no usable answer: refused, reset, timed out
    └── UploadStalled      the upload kept failing; running it again resumes it
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypedDict, cast
from urllib.parse import urljoin

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import TracebackType

__all__ = [
    "Asset",
    "AssetPage",
    "Client",
    "ClientError",
    "ImportReporter",
    "ImportSummary",
    "Library",
    "LibraryItem",
    "RequestFailed",
    "TokenRefused",
    "TusUpload",
    "Unreachable",
    "Upload",
    "UploadStalled",
    "UploadState",
    "ladder_done",
]

TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
CHUNK_SIZE = 64 << 20  # bytes per PATCH
PIECE = 256 << 10  # bytes per write inside a PATCH (the unit of progress and rate limiting)
RETRIES = 8  # failed PATCHes in a row before an upload gives up


class ClientError(Exception):
    """Root of the client's errors."""


class RequestFailed(ClientError):
    """The API answered an error: ``status``, and the ``code`` and ``message`` of its
    ``{"error": {...}}`` body (``code`` is None when the body is not ours, e.g. a proxy's)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(
            f"HTTP {status}: {message} ({code})" if code else f"HTTP {status}: {message}"
        )

    @classmethod
    def from_response(cls, r: httpx.Response) -> RequestFailed:
        kind = TokenRefused if r.status_code in (401, 403) else RequestFailed
        try:
            err = r.json()["error"]
            return kind(r.status_code, str(err["code"]), str(err["message"]))
        except (ValueError, KeyError, TypeError):
            return kind(r.status_code, None, r.text[:500])


class TokenRefused(RequestFailed):
    """401 or 403: the API token is missing, wrong, or may not do this."""


class Unreachable(ClientError):
    """The server did not answer (connection refused or reset, timed out)."""


class UploadStalled(ClientError):
    """The upload failed ``RETRIES`` times in a row; what reached the server is kept, so the
    same upload run again (with the same :class:`UploadState`) resumes it."""


class Rendition(TypedDict, total=False):
    id: str
    type: str
    status: str
    width: int
    height: int


class Playback(TypedDict, total=False):
    hls: str
    dash: str
    watch: str
    thumbnail: str


class Asset(TypedDict, total=False):
    """An asset as the API returns it (the fields the client reads; the rest are there too)."""

    id: str
    title: str
    status: str  # "preparing", "ready" or "errored"
    progress: float  # percent; 100 once every rendition is published
    renditions: list[Rendition]
    playback: Playback
    errors: dict[str, Any] | None
    content_hash: str | None
    duplicate_of: str | None
    source_filename: str | None


class Upload(TypedDict, total=False):
    """A tus upload's JSON (``GET /api/v1/uploads/{id}``)."""

    id: str
    status: str  # "waiting", "asset_created", "errored" or "cancelled"
    offset: int
    length: int | None
    asset_id: str | None
    error: str | None


@dataclass(frozen=True)
class AssetPage:
    """One page of ``GET /api/v1/assets`` (newest first)."""

    assets: list[Asset]
    page: int
    limit: int
    total: int


def ladder_done(asset: Asset) -> bool:
    """Processing is over: the asset errored, or it is ready with every rendition ready
    (``ready`` alone means its first rendition plays while the rest encode)."""
    if asset["status"] == "errored":
        return True
    renditions = asset.get("renditions") or []
    return (
        asset["status"] == "ready"
        and (asset.get("progress") or 0) >= 100
        and all(r.get("status") == "ready" for r in renditions)
    )


class UploadState:
    """Upload URLs of unfinished uploads, keyed by server + file identity, in a JSON file
    (default ``$XDG_CACHE_HOME/mediaplane/uploads.json``, else ``~/.cache/...``), so a run
    that was cut off resumes where it stopped. Saving is best effort: never a failure."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            path = Path(root) / "mediaplane" / "uploads.json"
        self.path = path

    @staticmethod
    def key(base_url: str, file: Path) -> str:
        st = file.stat()
        return f"{base_url}|{file.resolve()}|{st.st_size}|{st.st_mtime_ns}"

    def _load(self) -> dict[str, str]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
        return {}

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def set(self, key: str, url: str | None) -> None:
        data = self._load()
        if url is None:
            data.pop(key, None)
        else:
            data[key] = url
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(self.path)


def _pieces(
    f: BinaryIO, offset: int, n: int, rate: int | None, on_sent: Callable[[int], None]
) -> Iterator[bytes]:
    """``n`` bytes of ``f`` from ``offset`` in :data:`PIECE` pieces, at most ``rate`` B/s;
    ``on_sent`` gets the file position after each piece."""
    f.seek(offset)
    sent, t0 = 0, time.monotonic()
    while sent < n:
        piece = f.read(min(PIECE, n - sent))
        if not piece:
            raise OSError("the file shrank while it was being uploaded")
        sent += len(piece)
        yield piece
        on_sent(offset + sent)
        if rate:
            ahead = sent / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


@dataclass
class TusUpload:
    """A tus upload of ``file`` at ``url``, created or resumed by :meth:`Client.start_upload`;
    ``offset`` bytes are on the server (``resumed``: an earlier run sent them)."""

    client: Client
    url: str
    file: Path
    size: int
    offset: int
    resumed: bool
    state: UploadState | None = None
    state_key: str = ""

    def send(
        self,
        *,
        chunk_size: int = CHUNK_SIZE,
        rate: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Upload:
        """Send the rest of the file, ``chunk_size`` bytes per PATCH, at most ``rate`` bytes
        per second; ``on_progress(bytes_done, size)`` follows the bytes as they go. A failed
        PATCH is retried from the server's offset (back-off up to 10 s); after
        :data:`RETRIES` failures in a row it raises :class:`UploadStalled`. Returns the
        upload's JSON (``asset_id`` once the server has made the asset)."""
        progress = on_progress or (lambda done, total: None)
        failures = 0
        with self.file.open("rb") as f:
            while self.offset < self.size:
                reason = self._patch(f, min(chunk_size, self.size - self.offset), rate, progress)
                if reason is None:
                    failures = 0
                    continue
                failures += 1
                if failures > RETRIES:
                    raise UploadStalled(reason)
                time.sleep(min(0.5 * 2**failures, 10.0))
                self._refresh_offset()
        progress(self.size, self.size)
        upload = self.client.get_upload(self.url)
        if self.state is not None:
            self.state.set(self.state_key, None)
        return upload

    def _patch(
        self, f: BinaryIO, n: int, rate: int | None, progress: Callable[[int, int], None]
    ) -> str | None:
        """One PATCH of ``n`` bytes; None when it took, else why it failed (worth a retry)."""
        headers = {
            **TUS_HEADERS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(self.offset),
            "Content-Length": str(n),
        }
        body = _pieces(f, self.offset, n, rate, lambda done: progress(done, self.size))
        try:
            r = self.client.http.patch(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            return str(exc)
        if r.status_code == 204:
            self.offset = int(r.headers["upload-offset"])
            return None
        if r.status_code not in (409, 423) and r.status_code < 500:
            raise RequestFailed.from_response(r)
        return f"HTTP {r.status_code}"

    def _refresh_offset(self) -> None:
        """Read the server's offset after a failure; no answer leaves it for the next try.
        A refusal is explained by a GET (a HEAD has no body to say why)."""
        try:
            head = self.client.http.head(self.url, headers=TUS_HEADERS)
            if head.status_code in (200, 423):
                if head.status_code == 200:
                    self.offset = int(head.headers["upload-offset"])
                return
            r = self.client.http.get(self.url, headers={"Accept": "application/json"})
        except httpx.TransportError:
            return
        if r.status_code >= 400:
            raise RequestFailed.from_response(r)
        status = r.json()["data"]["status"]
        raise RequestFailed(head.status_code, None, f"the upload cannot go on: it is {status}")


class LibraryItem(Protocol):
    """One file of a library: its path under the folder (or key under the prefix), and size."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...


class Library(Protocol):
    """Where a bulk import's files come from (``mediaplane.ingest.open_library`` opens a
    folder or an S3 prefix)."""

    description: str

    def files(self) -> Sequence[LibraryItem]:
        """Every video file, sorted by name."""
        ...

    def read(self, f: Any, scratch: Path, on_chunk: Callable[[bytes], None]) -> Path:
        """A local path holding ``f``'s bytes, each chunk of which goes to ``on_chunk``
        once; raises OSError when it cannot be read."""
        ...


class ImportReporter(Protocol):
    """Where a bulk import's progress goes (the CLI draws one bar of the library's bytes)."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def file(self, index: int, name: str, action: str) -> None: ...

    def advance(self, nbytes: float) -> None: ...


@dataclass
class ImportSummary:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (name, new asset id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def line(self) -> str:
        return (
            f"imported {len(self.imported)}, skipped {len(self.skipped)} duplicates, "
            f"failed {len(self.failed)}"
        )


class _CountingReader:
    """A file object for httpx's multipart body that reports bytes as they are sent."""

    def __init__(self, f: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self.f, self.on_bytes = f, on_bytes

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        self.on_bytes(len(chunk))
        return chunk


class Client:
    """The Mediaplane API at ``base_url`` with an API ``token``.

    :param timeout: seconds to connect and to wait for each answer (sending a body has no
        limit: a large upload takes as long as it takes).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, write=None),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request; an error answer raises :class:`RequestFailed`, none
        :class:`Unreachable`."""
        try:
            r = self.http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        if r.status_code >= 400:
            raise RequestFailed.from_response(r)
        return r

    def _data(self, method: str, url: str, **kw: Any) -> Any:
        return self._request(method, url, **kw).json()["data"]

    # -- assets ---------------------------------------------------------------------------

    def get_asset(self, asset_id: str) -> Asset:
        return cast("Asset", self._data("GET", f"/api/v1/assets/{asset_id}"))

    def list_assets(
        self, *, content_hash: str | None = None, limit: int = 25, page: int = 1
    ) -> AssetPage:
        """Assets, newest first; ``content_hash`` (sha256 hex) finds copies of a file."""
        params: dict[str, str | int] = {"limit": limit, "page": page}
        if content_hash is not None:
            params["content_hash"] = content_hash
        body = self._request("GET", "/api/v1/assets", params=params).json()
        p = body["pagination"]
        return AssetPage(body["data"], int(p["page"]), int(p["limit"]), int(p["total"]))

    def create_asset(
        self,
        file: Path,
        *,
        title: str = "",
        filename: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Asset:
        """Upload ``file`` in one multipart request (not resumable: :meth:`upload` is);
        ``on_bytes(n)`` hears of each ``n`` bytes read into the request."""
        with file.open("rb") as src:
            body = cast("BinaryIO", _CountingReader(src, on_bytes)) if on_bytes else src
            files = {"file": (filename or file.name, body)}
            data = self._data("POST", "/api/v1/assets", files=files, data={"title": title})
        return cast("Asset", data)

    def import_url(self, url: str, *, title: str = "") -> Asset:
        """Have the server fetch ``url`` into a new asset (the fetch runs as a job)."""
        body = {"input": {"url": url}, "title": title}
        return cast("Asset", self._data("POST", "/api/v1/assets", json=body))

    def update_asset(self, asset_id: str, **changes: Any) -> Asset:
        """Change ``title`` and/or ``rights`` (``rights=None`` removes them)."""
        return cast("Asset", self._data("PATCH", f"/api/v1/assets/{asset_id}", json=changes))

    def delete_asset(self, asset_id: str) -> None:
        self._request("DELETE", f"/api/v1/assets/{asset_id}")

    def wait(
        self,
        asset_id: str,
        *,
        on_update: Callable[[Asset], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> Asset:
        """Poll the asset until its whole ladder is ready or it errored (see
        :func:`ladder_done`); ``on_update`` gets the asset after each poll (its
        ``progress`` reaches 100 only when every rendition is published).

        :param interval: seconds between polls.
        :param timeout: seconds before :class:`TimeoutError`; None waits for ever.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            asset = self.get_asset(asset_id)
            if on_update is not None:
                on_update(asset)
            if ladder_done(asset):
                return asset
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"asset {asset_id} is still {asset['status']}")
            time.sleep(interval)

    # -- tus uploads ----------------------------------------------------------------------

    def get_upload(self, url: str) -> Upload:
        """A tus upload's JSON, by its URL (or ``/api/v1/uploads/{id}`` path)."""
        return cast("Upload", self._data("GET", url, headers={"Accept": "application/json"}))

    def start_upload(
        self, file: Path, *, title: str, state: UploadState | None = None
    ) -> TusUpload:
        """Resume the upload of ``file`` that ``state`` remembers, when the server still has
        it; else create one (``POST /api/v1/uploads``) and remember it in ``state``."""
        key = UploadState.key(self.base_url, file) if state is not None else ""
        size = file.stat().st_size
        url = state.get(key) if state is not None else None
        if url is not None:
            offset = self._resume_offset(url)
            if offset is not None:
                return TusUpload(self, url, file, size, offset, True, state, key)
        url = self._create_upload(file.name, title, size)
        if state is not None:
            state.set(key, url)
        return TusUpload(self, url, file, size, 0, False, state, key)

    def _resume_offset(self, url: str) -> int | None:
        """The server's offset of an earlier upload; None when it is gone (expired,
        cancelled or unknown there: start again)."""
        try:
            r = self.http.head(url, headers=TUS_HEADERS)
        except httpx.TransportError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        if r.status_code in (401, 403):
            self.get_upload(url)  # a HEAD has no body: the GET raises with the reason
            raise TokenRefused(r.status_code, None, "the server refused the API token")
        if r.status_code == 200 and "upload-offset" in r.headers:
            return int(r.headers["upload-offset"])
        return None

    def _create_upload(self, filename: str, title: str, size: int) -> str:
        meta = {"filename": filename, "title": title}
        encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
        headers = {**TUS_HEADERS, "Upload-Length": str(size), "Upload-Metadata": encoded}
        r = self._request("POST", "/api/v1/uploads", headers=headers)
        if r.status_code != 201:
            raise RequestFailed(r.status_code, None, r.text[:500])
        return urljoin(self.base_url + "/", r.headers["location"])

    def upload(
        self,
        file: Path,
        *,
        title: str,
        state: UploadState | None = None,
        chunk_size: int = CHUNK_SIZE,
        rate: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Upload:
        """Upload ``file`` with tus (:meth:`start_upload`, then :meth:`TusUpload.send`)."""
        tus = self.start_upload(file, title=title, state=state)
        return tus.send(chunk_size=chunk_size, rate=rate, on_progress=on_progress)

    # -- bulk import ----------------------------------------------------------------------

    def import_library(self, library: Library, reporter: ImportReporter) -> ImportSummary:
        """Import every file of ``library`` that the server does not have yet (same sha256,
        not errored: a file whose only copies errored is uploaded again, which is how a
        failed import is retried). One file at a time: the server spools each upload to
        disk, so parallel uploads would only contend for the same disk.

        Progress counts bytes of the library: reading (hashing; fetching a remote file) is
        the first half of a file's bytes, uploading it the second half, and a file that
        needs no upload counts whole once hashed. A refused token or an unreachable server
        stops the import (:class:`TokenRefused`; and :class:`Unreachable` or
        :class:`RequestFailed` from the first request, which checks both); any other
        failure is one file's, listed in the summary.
        """
        self.list_assets(limit=1)  # the server answers and takes the token
        files = library.files()
        summary = ImportSummary()
        reporter.begin(len(files), sum(f.size for f in files))
        importer = _BulkImport(self, library, reporter, summary)
        with tempfile.TemporaryDirectory(prefix="mediaplane-import-") as tmp:
            for index, f in enumerate(files, start=1):
                done = importer.one(index, f, Path(tmp) / "fetched")
                if done < f.size:  # skipped or failed: the rest of its bytes count now
                    reporter.advance(f.size - done)
        return summary


class _BulkImport:
    """The per-file steps of :meth:`Client.import_library`."""

    def __init__(
        self, client: Client, library: Library, reporter: ImportReporter, summary: ImportSummary
    ) -> None:
        self.client, self.library, self.reporter, self.summary = client, library, reporter, summary
        self.seen: dict[str, str] = {}  # sha256 → name, within this run
        self.counted = 0.0

    def half(self, n: int) -> None:
        self.counted += n / 2
        self.reporter.advance(n / 2)

    def existing(self, digest: str) -> str | None:
        """The id of an asset on the server with these bytes that did not error, if any."""
        found = self.client.list_assets(content_hash=digest, limit=100).assets
        live = [a for a in found if a.get("status") != "errored"]
        return str(live[-1]["id"]) if live else None  # newest first: the last is the oldest

    def one(self, index: int, f: LibraryItem, scratch: Path) -> float:
        """Import one file; returns how much of its size the bar has been advanced by."""
        self.counted = 0.0
        if f.size == 0:
            self.summary.failed.append((f.name, "the file is empty"))
            return 0.0
        try:
            self.reporter.file(index, f.name, "reading")
            outcome = self._hash_and_upload(index, f, scratch)
        except TokenRefused:
            raise
        except (ClientError, OSError) as exc:
            self.summary.failed.append((f.name, str(exc) or type(exc).__name__))
        else:
            kind, text = outcome
            (self.summary.imported if kind == "imported" else self.summary.skipped).append(
                (f.name, text)
            )
        finally:
            scratch.unlink(missing_ok=True)
        return self.counted

    def _hash_and_upload(self, index: int, f: LibraryItem, scratch: Path) -> tuple[str, str]:
        """("imported", new asset id) or ("skipped", why)."""
        digest = hashlib.sha256()

        def read_chunk(chunk: bytes) -> None:
            digest.update(chunk)
            self.half(len(chunk))

        path = self.library.read(f, scratch, read_chunk)
        hexdigest = digest.hexdigest()
        if hexdigest in self.seen:
            return "skipped", f"same file as {self.seen[hexdigest]}"
        self.seen[hexdigest] = f.name
        existing = self.existing(hexdigest)
        if existing is not None:
            return "skipped", f"already in as asset {existing}"
        self.reporter.file(index, f.name, "uploading")
        name = Path(f.name).name
        asset = self.client.create_asset(
            path, title=Path(name).stem, filename=name, on_bytes=self.half
        )
        return "imported", str(asset["id"])
