"""The key of viewer pseudonyms: MEDIAPLANE_ANALYTICS_KEY, else ``<data-dir>/analytics-key``
(made 0600 on first start, like the accounts' secret key). Without it nobody can tell which
viewer a pseudonym is, nor test a guess; rotating it starts every viewer afresh."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediaplane.config import Settings

__all__ = ["account_viewer_id", "ensure_analytics_key"]


def ensure_analytics_key(settings: Settings) -> bytes:
    """The pseudonymisation key of ``settings`` (made and kept on first use)."""
    if settings.analytics_key is not None:
        return settings.analytics_key.get_secret_value().encode()
    path = settings.data_path / "analytics-key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
    for _ in range(50):  # a process that made it may still be writing it
        key = path.read_text().strip()
        if key:
            return key.encode()
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it to make a new analytics key")


def account_viewer_id(settings: Settings, user_id: str) -> str:
    """The viewer id our own pages hand the QoE snippet for a signed-in account: a keyed
    hash of the account (the same on every device; the account id never reaches the page)."""
    msg = b"account\0" + user_id.encode()
    return hmac.new(ensure_analytics_key(settings), msg, hashlib.sha256).hexdigest()[:32]
