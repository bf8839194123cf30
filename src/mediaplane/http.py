"""Shared HTTP plumbing: the JSON error shape and the runtime dependency.

Routers raise :class:`ApiError` for what they refuse themselves; a domain's "not found"
(any :class:`mediaplane.errors.NotFound`) reaches the client as a 404 through the one
handler installed here.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediaplane.errors import Forbidden, NotFound
from mediaplane.runtime import Runtime

__all__ = ["ApiError", "error_body", "install_error_handlers", "read_small_body", "runtime_dep"]

log = structlog.get_logger("mediaplane.http")


class ApiError(Exception):
    """An error a client caused (4xx) or may retry (503), with a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), 404, headers=dict(exc.headers))

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), 403)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled", path=request.url.path, method=request.method)
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it was logged."), 500
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            error_body("invalid_request", f"{where}: {first.get('msg', 'invalid')}"), 400
        )


def runtime_dep(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def read_small_body(request: Request, limit: int) -> bytes:
    """A small request body (JSON), read whole but never past ``limit`` bytes: a declared
    Content-Length over it is refused before reading, and so is the first chunk past it
    (413, the connection closes)."""
    too_large = ApiError(
        413,
        "payload_too_large",
        f"The request body is larger than {limit} bytes.",
        headers={"Connection": "close"},
    )
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    seen, chunks = 0, []
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
