"""Every upload body is read through here: bytes are counted as they arrive.

Content-Length is only a hint (a chunked request has none, and a client may lie): the
counter refuses the first chunk that would pass the limit, before it is handed on, so no
path (multipart, tus PATCH, URL import) ever writes a byte past it. A multipart body is
parsed here too, straight into one temp file of ours (no spool elsewhere), so the limit
holds before anything reaches the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ._errors import IngestError, UploadError, UploadTooLarge

if TYPE_CHECKING:
    from starlette.requests import Request

#: Boundaries, part headers and the text fields a multipart body carries beside its file.
FORM_OVERHEAD = 64 * 1024
_MAX_FIELD_BYTES = 16 * 1024
_MAX_FIELDS = 10
#: File bytes gathered before one write (in a thread): memory stays under this plus a chunk.
_WRITE_BATCH = 1 << 20


class InvalidForm(UploadError):
    """A multipart body we cannot take (400); ``code`` says which way it is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ByteLimit:
    """Counts bytes as they arrive and refuses the chunk that would pass ``limit``.

    :param limit: the most bytes allowed, inclusive.
    :param message: what the 413 says; ``{limit}`` is replaced by the limit.
    """

    limit: int
    message: str = "The upload is larger than the limit of {limit} bytes; nothing was stored."
    seen: int = 0

    def _refuse(self) -> UploadTooLarge:
        return UploadTooLarge(self.message.replace("{limit}", str(self.limit)))

    def declared(self, length: str | int | None) -> None:
        """Refuse early when a declared length (Content-Length) is over the limit."""
        if isinstance(length, str):
            length = int(length) if length.strip().isdigit() else None
        if length is not None and length > self.limit:
            raise self._refuse()

    def add(self, n: int) -> None:
        """Count ``n`` more bytes; raises :class:`UploadTooLarge` past the limit."""
        self.seen += n
        if self.seen > self.limit:
            raise self._refuse()

    def chunks(self, source: Iterable[bytes]) -> Iterator[bytes]:
        """``source``'s chunks, counted; the one that passes the limit is not yielded."""
        for chunk in source:
            self.add(len(chunk))
            yield chunk


class BodyCut(IngestError):
    """The client went away before its request body ended."""


async def request_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive; :class:`BodyCut` when the client leaves."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BodyCut("the client disconnected mid-body") from None


async def counted(
    chunks: AsyncIterable[bytes], limit: ByteLimit, declared: str | int | None = None
) -> AsyncIterator[bytes]:
    """Non-empty ``chunks``, counted against ``limit`` (after the ``declared`` length)."""
    limit.declared(declared)
    async for chunk in chunks:
        if chunk:
            limit.add(len(chunk))
            yield chunk


async def body_chunks(request: Request, limit: ByteLimit) -> AsyncIterator[bytes]:
    """The request body as it arrives, counted against ``limit`` (Content-Length or not)."""
    limit.declared(request.headers.get("content-length"))
    async for chunk in request.stream():
        if chunk:
            limit.add(len(chunk))
            yield chunk


@dataclass
class ReceivedFile:
    """A multipart upload's file, stored in a temp file of ours, and its text fields.

    :param path: the temp file (mode 0600); the caller deletes it.
    :param size: bytes in it.
    :param sha256: hex digest of them.
    """

    path: Path
    size: int
    sha256: str
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


def _open_temp(directory: Path) -> tuple[Path, int]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        path = directory / f"upload-{secrets.token_hex(12)}"
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue


class _Form:
    """python-multipart callbacks: text fields into memory (bounded), the one file part
    into batches the caller writes out."""

    def __init__(self, file_field: str, text_fields: Collection[str]) -> None:
        self.file_field = file_field
        self.text_fields = text_fields
        self._discard = False
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_seen = False
        self.in_file = False
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.file_bytes = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._text = bytearray()
        self._skip = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._text = bytearray()
        self.in_file = self._skip = self._discard = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > _MAX_FIELD_BYTES:
            raise InvalidForm("invalid_multipart", "A multipart part header is too long.")

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise InvalidForm("invalid_multipart", "A multipart part has no field name.")
        self._name = name.decode("utf-8", "replace")
        if b"filename" in options:
            if self._name in self.text_fields:
                raise InvalidForm(
                    "invalid_request",
                    f"The form field `{self._name}` must be text, not a file.",
                )
            if self._name != self.file_field:
                self._discard = True  # a file we did not ask for: read past, never kept
                return
            if self.file_seen:
                raise InvalidForm("too_many_files", "Send one file per request.")
            self.file_seen = self.in_file = True
            raw = options[b"filename"].decode("utf-8", "replace")
            self.filename = raw or None
            return
        if len(self.fields) >= _MAX_FIELDS:
            raise InvalidForm("too_many_fields", f"At most {_MAX_FIELDS} form fields are read.")
        # A repeated text field keeps its first value, as Starlette's FormData.get did.
        self._skip = self._name in self.fields

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._discard:
            return
        if self.in_file:
            chunk = data[start:end]
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
            return
        self._text += data[start:end]
        if len(self._text) > _MAX_FIELD_BYTES:
            raise InvalidForm(
                "field_too_large",
                f"The form field `{self._name}` is over {_MAX_FIELD_BYTES} bytes.",
            )

    def _part_end(self) -> None:
        if not self.in_file and not self._skip and not self._discard:
            self.fields[self._name] = self._text.decode("utf-8", "replace")
        self.in_file = False


def _write_out(fd: int, digest: Any, batch: list[bytes]) -> None:
    for chunk in batch:
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


async def receive_form(
    request: Request,
    directory: Path,
    max_file_bytes: int,
    *,
    file_field: str = "file",
    text_fields: Collection[str] = (),
) -> ReceivedFile:
    """Parse a ``multipart/form-data`` body into a temp file under ``directory``.

    The file is the part named ``file_field``; a file sent as one of ``text_fields`` is
    refused, one under any other name is read past and dropped.

    The body is counted as it arrives (``max_file_bytes`` plus :data:`FORM_OVERHEAD`) and
    so is the file part (``max_file_bytes``): past either, :class:`UploadTooLarge`, and
    the temp file is gone. Other errors: :class:`InvalidForm` (400).
    """
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidForm("invalid_multipart", "The multipart body has no boundary.")
    too_large = (
        f"The file is larger than the upload limit of {max_file_bytes} bytes; nothing was stored."
    )
    body = ByteLimit(max_file_bytes + FORM_OVERHEAD, too_large)
    file_limit = ByteLimit(max_file_bytes, too_large)
    form = _Form(file_field, text_fields)
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    path, fd = await run_in_threadpool(_open_temp, directory)
    digest = hashlib.sha256()
    counted = 0  # of form.pending_bytes, already added to file_limit
    try:
        try:
            async for chunk in body_chunks(request, body):
                parser.write(chunk)
                file_limit.add(form.pending_bytes - counted)
                counted = form.pending_bytes
                if counted >= _WRITE_BATCH:
                    batch, form.pending, form.pending_bytes = form.pending, [], 0
                    counted = 0
                    await run_in_threadpool(_write_out, fd, digest, batch)
            parser.finalize()
        except FormParserError as exc:
            raise InvalidForm(
                "invalid_multipart", f"The multipart body is not valid: {exc}"
            ) from exc
        if form.pending:
            await run_in_threadpool(_write_out, fd, digest, form.pending)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)
    if not form.file_seen:
        path.unlink(missing_ok=True)
        raise InvalidForm("missing_file", f"The multipart body needs a `{file_field}` field.")
    if file_limit.seen == 0:
        path.unlink(missing_ok=True)
        raise InvalidForm("empty_file", "The uploaded file is empty.")
    return ReceivedFile(path, file_limit.seen, digest.hexdigest(), form.filename, form.fields)


async def read_body(request: Request, limit: int) -> bytes:
    """A small request body (JSON), read whole but never past ``limit`` bytes."""
    counter = ByteLimit(limit, "The request body is larger than {limit} bytes.")
    return b"".join([chunk async for chunk in body_chunks(request, counter)])
