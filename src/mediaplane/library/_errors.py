"""The library package's errors::

LibraryError                one root; ``code`` is stable for clients
├── InvalidLibraryInput     a bad position, name or playlist position (400)
└── LibraryFull             too many playlists, or items in one (409)
PlaylistNotFound            no such playlist of the caller's (a mediaplane.errors.NotFound: 404)
"""

from __future__ import annotations

from mediaplane.errors import NotFound


class LibraryError(Exception):
    """Root of the errors a caller of the library can cause."""

    code = "library_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidLibraryInput(LibraryError):
    code = "invalid_request"


class LibraryFull(LibraryError):
    code = "limit_reached"
    status = 409


class PlaylistNotFound(NotFound):
    """No playlist with that id belongs to the caller (another user's is not found either)."""
