"""CMCD (CTA-5004, Common Media Client Data): the key/value grammar players send on
segment and manifest requests, as a ``CMCD=`` query argument or as the four headers
``CMCD-Object``, ``CMCD-Request``, ``CMCD-Session`` and ``CMCD-Status``.

The grammar (CTA-5004 §3.2): comma-separated pairs ``key[=value]``; a key alone is the
boolean true (false is sent by leaving the key out); a value is an integer or decimal
number, a quoted string (``"…"`` with ``\\"`` and ``\\\\`` escapes) or a token (an unquoted
word: ``ot=v``, ``sf=h``, ``st=v``). Keys are lowercase; custom keys carry a hyphen
(``com.example-mykey``). A value of the wrong type for a reserved key is dropped, not the
whole request's data. Everything is bounded: :data:`MAX_CMCD_CHARS` per field, 64 pairs,
:data:`MAX_STRING_CHARS` per string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from ._errors import InvalidCmcd

__all__ = ["CMCD_HEADERS", "CMCD_KEYS", "CmcdValue", "cmcd_of_request", "parse_cmcd"]

CmcdValue = bool | int | float | str

#: The longest CMCD field read (a query argument or a header); longer is refused.
MAX_CMCD_CHARS = 4096
#: Pairs read from one field at most.
MAX_PAIRS = 64
#: Strings longer are refused (CTA-5004 caps ``cid`` and ``sid`` at 64 characters; ``nor``
#: is a relative URL).
MAX_STRING_CHARS = 256

#: The header names a player sends CMCD in (lowercase, as ASGI hands them over).
CMCD_HEADERS = (b"cmcd-object", b"cmcd-request", b"cmcd-session", b"cmcd-status")

#: Every reserved key of CTA-5004 and the type of its value ("token": an unquoted word).
CMCD_KEYS: dict[str, str] = {
    "br": "int",  # encoded bitrate, kbps
    "bl": "int",  # buffer length, ms (rounded to 100 ms)
    "bs": "bool",  # buffer starvation since the last request
    "cid": "str",  # content id
    "d": "int",  # object duration, ms
    "dl": "int",  # deadline, ms
    "mtp": "int",  # measured throughput, kbps
    "nor": "str",  # next object request (relative URL)
    "nrr": "str",  # next range request ("start-end")
    "ot": "token",  # object type: m a v av i c tt k o
    "pr": "float",  # playback rate
    "rtp": "int",  # requested maximum throughput, kbps
    "sf": "token",  # streaming format: d (DASH) h (HLS) s (Smooth) o (other)
    "sid": "str",  # session id
    "st": "token",  # stream type: v (VOD) l (live)
    "su": "bool",  # startup
    "tb": "int",  # top bitrate, kbps
    "v": "int",  # CMCD version
}

_KEY = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~:/-]{0,63}\Z")
_INT = re.compile(r"-?[0-9]{1,15}\Z")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,9})?\Z")


def _split(text: str) -> Iterable[str]:
    """The comma-separated members of ``text``; a comma inside a quoted string stays."""
    start, quoted, i, n = 0, False, 0, len(text)
    while i < n:
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            yield text[start:i]
            start = i + 1
        i += 1
    if quoted:
        raise InvalidCmcd("a quoted string is not closed")
    yield text[start:]


def _string(raw: str) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1] not in '"\\':
                raise InvalidCmcd('a string has a bad escape (only \\" and \\\\)')
            out.append(body[i + 1])
            i += 2
            continue
        if c == '"':
            raise InvalidCmcd("a string has an unescaped quote")
        out.append(c)
        i += 1
    value = "".join(out)
    if len(value) > MAX_STRING_CHARS:
        raise InvalidCmcd(f"a string is longer than {MAX_STRING_CHARS} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidCmcd("a string has control characters")
    return value


def _value(raw: str) -> CmcdValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise InvalidCmcd("a quoted string is not closed")
        return _string(raw)
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    if raw in ("true", "false"):  # not in the grammar, but sent by some players
        return raw == "true"
    if _TOKEN.match(raw):
        return raw
    raise InvalidCmcd(f"{raw[:40]!r} is not a number, a quoted string or a token")


def _typed(key: str, value: CmcdValue) -> CmcdValue | None:
    """``value`` if it has the type CTA-5004 gives ``key`` (ints accepted as floats)."""
    kind = CMCD_KEYS.get(key)
    if kind is None:
        return value
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind == "int":
        return value if isinstance(value, int) else None
    if kind == "float":
        return float(value) if isinstance(value, (int, float)) else None
    return value if isinstance(value, str) else None  # a string or a token


def parse_cmcd(text: str, into: dict[str, CmcdValue] | None = None) -> dict[str, CmcdValue]:
    """The key/value pairs of one CMCD field (a header's value, or the ``CMCD`` query
    argument already URL-decoded).

    :raises InvalidCmcd: the field breaks the grammar or a bound (the whole field is
        refused: a player that sends garbage sends no data worth a partial read).
    """
    if len(text) > MAX_CMCD_CHARS:
        raise InvalidCmcd(f"the CMCD field is longer than {MAX_CMCD_CHARS} characters")
    out = {} if into is None else into
    text = text.strip()
    if not text:
        return out
    for n, member in enumerate(_split(text)):
        if n >= MAX_PAIRS:
            raise InvalidCmcd(f"more than {MAX_PAIRS} CMCD pairs")
        member = member.strip()
        if not member:
            continue
        key, eq, raw = member.partition("=")
        key = key.strip()
        if not _KEY.match(key):
            raise InvalidCmcd(f"{key[:40]!r} is not a CMCD key")
        value: CmcdValue = True if not eq else _value(raw.strip())
        typed = _typed(key, value)
        if typed is not None:
            out[key] = typed
    return out


def cmcd_of_request(
    query: bytes | str, headers: Iterable[tuple[bytes, bytes]] | Mapping[str, str]
) -> dict[str, CmcdValue]:
    """Every CMCD pair a request carries: its ``CMCD=`` query argument and its four CMCD
    headers (the headers win where both name a key).

    :raises InvalidCmcd: as :func:`parse_cmcd`.
    """
    out: dict[str, CmcdValue] = {}
    q = query.decode("latin-1") if isinstance(query, bytes) else query
    if "CMCD=" in q:
        for arg in q.split("&"):
            if arg.startswith("CMCD="):
                raw = arg[5:]
                if len(raw) > 3 * MAX_CMCD_CHARS:
                    raise InvalidCmcd(f"the CMCD field is longer than {MAX_CMCD_CHARS} characters")
                parse_cmcd(unquote(raw.replace("+", "%20")), out)
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        lname = name.lower() if isinstance(name, str) else name.decode("latin-1").lower()
        if lname.startswith("cmcd-"):
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            parse_cmcd(text, out)
    return out
