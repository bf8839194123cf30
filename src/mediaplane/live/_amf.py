"""AMF0 (Action Message Format 0) encoding and decoding, for RTMP commands and FLV script tags.

Pure functions over bytes, bounded for hostile input: the nesting depth is capped, a count or
length never runs past the end of the buffer, and AMF3, references and typed objects other than
the plain ones raise :class:`AmfError` instead of being guessed at.

Values map to Python as: number → ``float``, boolean → ``bool``, string and long string →
``str``, object and ECMA array → ``dict[str, object]``, strict array → ``list``, null and
undefined → ``None``, date → ``float`` (milliseconds since the epoch).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10

#: Deepest nesting of objects and arrays that decoding follows.
MAX_DEPTH = 16

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class AmfError(ValueError):
    """Bytes that are not AMF0 this decoder accepts (truncated, too deep, unsupported type)."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise AmfError("truncated AMF0 value")
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise AmfError("truncated AMF0 value")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def utf8(self, n: int) -> str:
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmfError("AMF0 string is not UTF-8") from exc

    def short_string(self) -> str:
        (n,) = _U16.unpack(self.take(2))
        return self.utf8(n)

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _read_pairs(r: _Reader, depth: int) -> dict[str, object]:
    out: dict[str, object] = {}
    while True:
        key = r.short_string()
        if key == "":
            if r.u8() != OBJECT_END:
                raise AmfError("AMF0 object with an empty key")
            return out
        out[key] = _read_value(r, depth + 1)


def _read_value(r: _Reader, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise AmfError(f"AMF0 nesting deeper than {MAX_DEPTH}")
    marker = r.u8()
    if marker == NUMBER:
        return _DOUBLE.unpack(r.take(8))[0]
    if marker == BOOLEAN:
        return r.u8() != 0
    if marker == STRING:
        return r.short_string()
    if marker in (OBJECT, TYPED_OBJECT):
        if marker == TYPED_OBJECT:
            r.short_string()  # the class name: nothing here needs it
        return _read_pairs(r, depth)
    if marker in (NULL, UNDEFINED):
        return None
    if marker == ECMA_ARRAY:
        r.take(4)  # the count is a hint only; the pairs end with an object-end marker
        return _read_pairs(r, depth)
    if marker == STRICT_ARRAY:
        (count,) = _U32.unpack(r.take(4))
        if count > r.remaining():  # every value takes at least one byte
            raise AmfError("AMF0 strict array longer than its message")
        return [_read_value(r, depth + 1) for _ in range(count)]
    if marker == DATE:
        ms = _DOUBLE.unpack(r.take(8))[0]
        r.take(2)  # time zone, reserved
        return ms
    if marker in (LONG_STRING, XML_DOCUMENT):
        (n,) = _U32.unpack(r.take(4))
        return r.utf8(n)
    raise AmfError(f"unsupported AMF0 type 0x{marker:02x}")


def decode_one(data: bytes | memoryview, pos: int = 0) -> tuple[object, int]:
    """One AMF0 value from ``data`` at ``pos``; returns it and the position after it."""
    r = _Reader(data, pos)
    value = _read_value(r, 0)
    return value, r.pos


def decode_all(data: bytes | memoryview) -> list[object]:
    """Every AMF0 value in ``data``, in order (a command's name, transaction id, arguments)."""
    out: list[object] = []
    pos = 0
    while pos < len(data):
        value, pos = decode_one(data, pos)
        out.append(value)
    return out


def _write_string_body(s: str, out: bytearray) -> None:
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfError("AMF0 key longer than 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


def _write_value(value: object, out: bytearray) -> None:
    if value is None:
        out.append(NULL)
    elif isinstance(value, bool):
        out.append(BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            out.append(LONG_STRING)
            out += _U32.pack(len(raw))
        else:
            out.append(STRING)
            out += _U16.pack(len(raw))
        out += raw
    elif isinstance(value, dict):
        out.append(OBJECT)
        for k, v in value.items():
            if k == "":
                raise AmfError("AMF0 objects cannot hold an empty key (it ends the object)")
            _write_string_body(str(k), out)
            _write_value(v, out)
        out += b"\x00\x00"
        out.append(OBJECT_END)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for v in value:
            _write_value(v, out)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode(*values: object) -> bytes:
    """The AMF0 encoding of ``values`` one after another."""
    return encode_all(values)


def encode_all(values: Iterable[object]) -> bytes:
    out = bytearray()
    for v in values:
        _write_value(v, out)
    return bytes(out)
