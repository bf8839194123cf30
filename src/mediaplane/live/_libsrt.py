"""A ctypes binding to the few libsrt 1.5 calls the SRT ingest uses (no SRT binding is on
PyPI; libsrt ships with ffmpeg as ``libsrt-gnutls.so.1.5``, without headers).

Values are from Haivision's ``srtcore/srt.h`` and ``srtcore/access_control.h`` of the 1.5
series (the enum values are part of its ABI and unchanged since 1.3/1.4). Every call here may
block on libsrt's locks: call them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading
from typing import Any

# SRT_SOCKOPT (srt.h)
SRTO_SNDSYN = 1
SRTO_RCVSYN = 2
SRTO_RCVBUF = 6
SRTO_LINGER = 7
SRTO_RCVTIMEO = 14
SRTO_RCVDATA = 20
SRTO_TSBPDMODE = 22
SRTO_LATENCY = 23
SRTO_PASSPHRASE = 26
SRTO_CONNTIMEO = 36
SRTO_STREAMID = 46
SRTO_PAYLOADSIZE = 49
SRTO_TRANSTYPE = 50
SRTO_PEERIDLETIMEO = 55

SRTT_LIVE = 0  # SRT_TRANSTYPE
#: srt.h: the default SRTO_PAYLOADSIZE in live mode, 7 MPEG-TS packets of 188 bytes.
SRT_LIVE_DEF_PLSIZE = 1316
#: srt.h: the largest live payload (MTU 1500 - UDP/IP 28 - SRT header 16).
SRT_LIVE_MAX_PLSIZE = 1456

# SRT_SOCKSTATUS (srt.h)
SRTS_CONNECTED = 5
SRTS_BROKEN = 6
SRTS_CLOSED = 8
SRTS_NONEXIST = 9

# SRT_EPOLL_OPT (srt.h)
SRT_EPOLL_IN = 0x1
SRT_EPOLL_ERR = 0x8

# SRT_ERRNO (srt.h)
SRT_ECONNLOST = 2001
SRT_ENOCONN = 2002
SRT_EINVSOCK = 5004
SRT_EASYNCRCV = 6002
SRT_ETIMEOUT = 6003

# Reject codes a listener callback may set (access_control.h): 1400 + the HTTP status.
SRT_REJX_BAD_REQUEST = 1400
SRT_REJX_UNAUTHORIZED = 1401
SRT_REJX_OVERLOAD = 1402
SRT_REJX_FORBIDDEN = 1403
SRT_REJX_BAD_MODE = 1405
SRT_REJX_ISE = 1500

LOG_ERR = 3  # srt_setloglevel takes syslog levels

SONAME = "libsrt-gnutls.so.1.5"

#: ``int (*)(void* opaque, SRTSOCKET ns, int hsversion, const sockaddr* peer, const char* sid)``
LISTEN_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)


class SrtError(OSError):
    """A libsrt call failed; ``code`` is its SRT_ERRNO."""

    def __init__(self, call: str, code: int, message: str) -> None:
        super().__init__(f"{call}: {message} (SRT error {code})")
        self.code = code


class SrtEpollEvent(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_int)]


_lock = threading.Lock()
_lib: Any = None


def load() -> Any:
    """libsrt, loaded and declared once; :class:`RuntimeError` with a clear message when it is
    not installed."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = _declare(_open())
        return _lib


def _open() -> ctypes.CDLL:
    names = [n for n in (ctypes.util.find_library("srt-gnutls"), SONAME) if n]
    names += [n for n in (ctypes.util.find_library("srt"), "libsrt.so.1.5") if n]
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise RuntimeError(
        "SRT ingest needs libsrt 1.5 (Debian: libsrt1.5-gnutls, installed with ffmpeg); "
        f"tried {', '.join(dict.fromkeys(names))}: {'; '.join(errors) or 'not found'}"
    )


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    i, p, vp = ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "srt_startup": (i, []),
        "srt_cleanup": (i, []),
        "srt_getversion": (ctypes.c_uint32, []),
        "srt_create_socket": (i, []),
        "srt_setsockflag": (i, [i, i, vp, i]),
        "srt_getsockflag": (i, [i, i, vp, p]),
        "srt_bind": (i, [i, vp, i]),
        "srt_listen": (i, [i, i]),
        "srt_listen_callback": (i, [i, LISTEN_CALLBACK, vp]),
        "srt_accept": (i, [i, vp, p]),
        "srt_connect": (i, [i, vp, i]),
        "srt_recvmsg": (i, [i, ctypes.c_char_p, i]),
        "srt_sendmsg": (i, [i, ctypes.c_char_p, i, i, i]),
        "srt_getsockname": (i, [i, vp, p]),
        "srt_getsockstate": (i, [i]),
        "srt_setrejectreason": (i, [i, i]),
        "srt_getrejectreason": (i, [i]),
        "srt_epoll_create": (i, []),
        "srt_epoll_add_usock": (i, [i, i, p]),
        "srt_epoll_uwait": (i, [i, ctypes.POINTER(SrtEpollEvent), i, ctypes.c_int64]),
        "srt_epoll_release": (i, [i]),
        "srt_close": (i, [i]),
        "srt_getlasterror": (i, [p]),
        "srt_getlasterror_str": (ctypes.c_char_p, []),
        "srt_setloglevel": (None, [i]),
    }
    for name, (restype, argtypes) in sigs.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes
    return lib


def last_error() -> tuple[int, str]:
    """This thread's last libsrt error: (SRT_ERRNO, message)."""
    lib = load()
    code = int(lib.srt_getlasterror(None))
    message = lib.srt_getlasterror_str() or b""
    return code, message.decode("utf-8", "replace")


def check(call: str, result: int) -> int:
    """``result`` unless it is SRT_ERROR (-1): then :class:`SrtError` from the last error."""
    if result == -1:
        code, message = last_error()
        raise SrtError(call, code, message)
    return result


def set_int(sock: int, opt: int, value: int) -> None:
    v = ctypes.c_int(value)
    check("srt_setsockflag", load().srt_setsockflag(sock, opt, ctypes.byref(v), 4))


def get_int(sock: int, opt: int) -> int:
    v = ctypes.c_int(0)
    n = ctypes.c_int(4)
    check("srt_getsockflag", load().srt_getsockflag(sock, opt, ctypes.byref(v), ctypes.byref(n)))
    return v.value


def set_bool(sock: int, opt: int, value: bool) -> None:
    set_int(sock, opt, 1 if value else 0)


def set_str(sock: int, opt: int, value: str) -> None:
    raw = value.encode()
    check("srt_setsockflag", load().srt_setsockflag(sock, opt, raw, len(raw)))


def get_str(sock: int, opt: int, size: int = 512) -> str:
    buf = ctypes.create_string_buffer(size + 1)
    n = ctypes.c_int(size)
    check("srt_getsockflag", load().srt_getsockflag(sock, opt, buf, ctypes.byref(n)))
    return buf.raw[: n.value].decode("utf-8", "replace")


def sockaddr(host: str, port: int) -> bytes:
    """A ``sockaddr_in``/``sockaddr_in6`` for a numeric or resolvable ``host``."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    ip = str(addr[0])
    if family == socket.AF_INET6:
        scope = int(addr[3]) if len(addr) > 3 else 0
        return struct.pack("=H", socket.AF_INET6) + struct.pack(
            ">HI16sI", port, 0, socket.inet_pton(socket.AF_INET6, ip), scope
        )
    return (
        struct.pack("=H", socket.AF_INET)
        + struct.pack(">H4s", port, socket.inet_aton(ip))
        + bytes(8)
    )


def parse_sockaddr(raw: bytes) -> tuple[str, int]:
    """``(address, port)`` from a ``sockaddr_in``/``sockaddr_in6``; ``("?", 0)`` otherwise."""
    if len(raw) < 8:
        return "?", 0
    (family,) = struct.unpack_from("=H", raw)
    (port,) = struct.unpack_from(">H", raw, 2)
    if family == socket.AF_INET:
        return socket.inet_ntoa(raw[4:8]), port
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return "?", 0


def peer_of(pointer: int | None) -> tuple[str, int]:
    """The address a ``const sockaddr*`` from libsrt points at (28 bytes hold either kind)."""
    if not pointer:
        return "?", 0
    return parse_sockaddr(ctypes.string_at(pointer, 28))


def sockname(sock: int) -> tuple[str, int]:
    buf = ctypes.create_string_buffer(128)
    n = ctypes.c_int(128)
    check("srt_getsockname", load().srt_getsockname(sock, buf, ctypes.byref(n)))
    return parse_sockaddr(buf.raw[: n.value])


def version() -> str:
    v = int(load().srt_getversion())
    return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
