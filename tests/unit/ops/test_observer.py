"""The request bookkeeping shared by the middleware and the playback fast path."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from mediaplane.ops import Metrics, RequestObserver
from tests.support import migrated_runtime


def test_request_ids_echo_truncate_or_count(tmp_path: Path) -> None:
    with migrated_runtime("sqlite", tmp_path) as rt:
        observer = RequestObserver(Metrics(rt))
    given = {"headers": [(b"host", b"x"), (b"x-request-id", b"r" * 80)]}
    assert observer.request_id(given) == b"r" * 64
    a, b = observer.request_id({"headers": []}), observer.request_id({"headers": []})
    assert a != b and len(a) == len(b) == 32 and a[:16] == b[:16]  # one prefix, a counter
    assert observer.request_id({"headers": [(b"x-request-id", b"")]}) not in (a, b, b"")


def test_observe_keeps_the_histogram_names(tmp_path: Path) -> None:
    with migrated_runtime("sqlite", tmp_path) as rt:
        metrics = Metrics(rt)
        observer = RequestObserver(metrics)
        for _ in range(3):
            observer.observe("GET", "/play/{playback_id}/master.m3u8", 200, 0.002)
        text = generate_latest(metrics.registry).decode()
    line = (
        'mediaplane_http_request_duration_seconds_bucket{le="0.0025",method="GET",'
        'route="/play/{playback_id}/master.m3u8",status="200"} 3.0'
    )
    assert line in text
    assert 'mediaplane_http_request_duration_seconds_count{method="GET"' in text
