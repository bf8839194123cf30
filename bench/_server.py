"""A real `mediaplane up` for the benchmarks, on free loopback ports (shared by them)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mediaplane:
    url: str
    rtmp: str  # where RTMP publishers push: {rtmp}/{stream key}
    token: str
    data: Path
    proc: subprocess.Popen[bytes]

    def api(self) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_mediaplane(data: Path, token: str, *args: str, **settings: str) -> Mediaplane:
    """`mediaplane up [args…]` on ``data`` with ``settings`` (``web_workers="2"`` sets
    MEDIAPLANE_WEB_WORKERS); returns once /readyz answers 200 (else exits the benchmark)."""
    data.mkdir(parents=True, exist_ok=True)
    port, rtmp = free_port(), free_port()
    env = {
        **os.environ,
        "MEDIAPLANE_HOST": "127.0.0.1",
        "MEDIAPLANE_PORT": str(port),
        "MEDIAPLANE_RTMP_PORT": str(rtmp),
        "MEDIAPLANE_SRT_PORT": str(free_port(socket.SOCK_DGRAM)),
        "MEDIAPLANE_DATA_DIR": str(data),
        "MEDIAPLANE_ADMIN_TOKEN": token,
        **{f"MEDIAPLANE_{k.upper()}": v for k, v in settings.items()},
    }
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediaplane", "up", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=data,
    )
    mp = Mediaplane(f"http://127.0.0.1:{port}", f"rtmp://127.0.0.1:{rtmp}/live", token, data, proc)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mediaplane up exited:\n{(data / 'server.log').read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(mp.url + "/readyz", timeout=2).status_code == 200:
                return mp
        time.sleep(0.3)
    mp.stop()
    raise SystemExit("mediaplane up did not become ready")
