"""The ingest ports' one admission rule (:class:`IngestLimits`): places in all and per
address, given back once whatever the path, shared by the servers it is given to."""

from __future__ import annotations

import threading

import pytest

from mediaplane.live._limits import IngestLimits, Refusal, Slot
from mediaplane.live._rtmp import RtmpServer
from mediaplane.live._srt import SrtServer


def _slot(limits: IngestLimits, address: str) -> Slot:
    slot = limits.admit(address)
    assert isinstance(slot, Slot), slot
    return slot


def test_in_all_and_per_address() -> None:
    limits = IngestLimits(max_connections=3, max_connections_per_address=2)
    a1, a2 = _slot(limits, "10.0.0.1"), _slot(limits, "10.0.0.1")
    assert limits.admit("10.0.0.1") == Refusal("too_many_connections_from_address")
    b1 = _slot(limits, "10.0.0.2")
    assert limits.admit("10.0.0.3") == Refusal("too_many_connections")  # the port is full
    assert (limits.held, limits.held_from("10.0.0.1")) == (3, 2)
    a1.release()
    a1.release()  # a second release gives nothing back twice
    assert (limits.held, limits.held_from("10.0.0.1")) == (2, 1)
    _slot(limits, "10.0.0.3")
    for s in (a2, b1):
        s.release()
    assert limits.held == 1 and limits.held_from("10.0.0.1") == 0


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        IngestLimits(max_connections=0)
    with pytest.raises(ValueError, match="positive"):
        IngestLimits(handshake_timeout=0)


def test_threads_admitting_at_once_never_exceed_the_limit() -> None:
    limits = IngestLimits(max_connections=50, max_connections_per_address=50)
    got: list[Slot | Refusal] = []
    lock = threading.Lock()

    def admit() -> None:
        for _ in range(40):
            r = limits.admit("10.0.0.9")
            with lock:
                got.append(r)

    threads = [threading.Thread(target=admit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    slots = [r for r in got if isinstance(r, Slot)]
    assert len(got) == 160 and len(slots) == 50 == limits.held
    for s in slots:
        s.release()
    assert limits.held == 0 and limits.held_from("10.0.0.9") == 0


async def _nothing(*_: object) -> None:
    return None


def test_both_servers_take_one_rule() -> None:
    limits = IngestLimits(max_connections=2, max_connections_per_address=1, handshake_timeout=1.5)
    rtmp = RtmpServer(_nothing, _nothing, limits=limits)  # type: ignore[arg-type]
    rtmps = RtmpServer(_nothing, _nothing, limits=limits)  # type: ignore[arg-type]
    srt = SrtServer(_nothing, _nothing, limits=limits)  # type: ignore[arg-type]
    assert rtmp.limits is rtmps.limits is srt.limits is limits
    assert rtmp.handshake_timeout == 1.5
    own = RtmpServer(_nothing, _nothing, max_connections=7, max_connections_per_address=3)  # type: ignore[arg-type]
    assert (own.limits.max_connections, own.limits.max_connections_per_address) == (7, 3)
