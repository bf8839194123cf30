"""The signature header: ``Mediaplane-Signature: t=<unix>,v1=<hex>`` where the hex is
HMAC-SHA256 of ``"<t>.<body>"`` with the endpoint's secret (the scheme Stripe and Mux
use). While a rotated-out secret still verifies, a second ``v1=`` carries its signature."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Mediaplane-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<sig>[,v1=<sig>…]``: one ``v1`` per secret, the current first."""
    parts = [f"t={timestamp}"] + [f"v1={signature(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)
