"""tus upload throughput benchmark: a 1 GiB file over loopback against ``cp`` on the same disk.

What it measures
    A file of random bytes (``--size-mib``, 1024 by default) is uploaded to a real
    ``mediaplane up`` (embedded SQLite, local object store, no worker pool: the asset that
    results is never processed) with the tus protocol: one POST, then PATCH requests of
    ``--chunk-mib`` (64 by default). The client is a minimal HTTP/1.1 client on one
    keep-alive socket that sends each body with ``sendfile`` (no copy in Python), so the
    server is what is measured. The clock starts before the POST and stops when the last
    PATCH returns 204 (the server has stored the bytes, renamed them onto the asset's
    source key and created the asset row). While it runs, the resident memory (VmRSS from
    /proc) of the server's process tree is sampled every 20 ms; its peak is printed beside
    the idle figure to show memory stays flat however large the upload.

Baselines (same run, same file, same disk)
    ``cp SRC DEST`` into the directory tree the server writes to (the named baseline; on
    Linux cp copies inside the kernel with copy_file_range, into the page cache). Also
    ``cp`` + fsync against tus + fsync of the stored source (bytes really on the disk),
    and a bare Granian ASGI app that reads and discards the same PATCH bodies: the
    ceiling of the HTTP stack itself, before any byte is stored.

Target
    ratio = tus MiB/s / cp MiB/s >= 0.7.

Usage::

    .venv/bin/python bench/upload.py [--size-mib 1024] [--chunk-mib 64] [--rounds 2] [--s3]
        [--parallel 1,2,4]

``--parallel N,...`` uploads the file as N partial uploads at once, each on its own
connection, then creates the final upload that joins them (tus concatenation), for each
N given, against ``cp``; the final POST's time (claiming the partials, joining their
bytes and creating the asset) is printed beside the throughput.

With several rounds the order alternates (cp,tus then tus,cp, ...) and medians are
compared. ``--s3`` stores objects on a local SeaweedFS instead (throughput and memory of
the S3 path, whose completion composes the parts into one object inside S3 with
UploadPartCopy). Each tus run also prints how long its final PATCH took and, beyond a
median earlier PATCH of the same size, what completing the upload cost.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import descendants, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1 << 20


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pids = [pid, *descendants(pid)]
        self.idle = _rss(self.pids)
        self.peak = self.idle
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, _rss(self.pids))

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Server:
    url: str
    token: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, data_dir: Path, extra_env: dict[str, str]) -> Server:
        port, token = free_port(), "bench-" + os.urandom(8).hex()
        env = {
            **os.environ,
            **extra_env,
            "MEDIAPLANE_HOST": "127.0.0.1",
            "MEDIAPLANE_PORT": str(port),
            "MEDIAPLANE_DATA_DIR": str(data_dir),
            "MEDIAPLANE_ADMIN_TOKEN": token,
            "MEDIAPLANE_LOG_LEVEL": "WARNING",
        }
        log = (data_dir / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediaplane", "up", "--no-worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=data_dir,
        )
        server = cls(f"http://127.0.0.1:{port}", token, proc)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"mediaplane up exited: {(data_dir / 'server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                    return server
            if time.monotonic() > deadline:
                server.stop()
                raise SystemExit("mediaplane up did not become ready")
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def make_source(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 16 * MIB)
            f.write(os.urandom(n))
            left -= n


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_cp(src: Path, dest_dir: Path, *, sync: bool) -> float:
    dest = dest_dir / "cp-copy.bin"
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dest)], check=True)
    if sync:
        _fsync(dest)
    seconds = time.perf_counter() - t0
    dest.unlink()
    return seconds


class RawClient:
    """HTTP/1.1 over one keep-alive socket; bodies go out with sendfile (no copy in Python),
    so the client costs next to nothing and the server is what is measured."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port))
        self.reader = self.sock.makefile("rb")
        self.token = token

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def request(
        self, method: str, target: str, headers: dict[str, str], body: tuple[BinaryIO, int, int]
    ) -> tuple[int, dict[str, str]]:
        f, offset, n = body
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"Authorization: Bearer {self.token}", f"Content-Length: {n}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        while sent < n:
            sent += self.sock.sendfile(f, offset + sent, n - sent)
        status = int(self.reader.readline().split()[1])
        got: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            got[key.strip().lower()] = value.strip()
        self.reader.read(int(got.get("content-length", "0")))
        return status, got


@dataclass
class TusRun:
    """One timed tus upload: whole upload, each PATCH, and the server's RSS."""

    seconds: float
    patches: list[float]
    idle: int
    peak: int

    @property
    def completion(self) -> float:
        """Seconds the final PATCH took beyond a median earlier PATCH of the same size:
        what publishing the upload (composing the stored object) cost."""
        if len(self.patches) < 2:
            return self.patches[-1] if self.patches else 0.0
        return max(0.0, self.patches[-1] - statistics.median(self.patches[:-1]))


def run_tus(server: Server, src: Path, chunk: int, *, sync_dir: Path | None) -> TusRun:
    """Time the whole upload (plus an fsync of the stored source when ``sync_dir`` is
    given) and each PATCH, and sample the server tree's idle and peak RSS in bytes."""
    size = src.stat().st_size
    meta = "filename " + base64.b64encode(src.name.encode()).decode()
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    client = RawClient(server.url, server.token)
    try:
        with src.open("rb") as f:
            t0 = time.perf_counter()
            status, h = client.request(
                "POST",
                "/api/v1/uploads",
                {**TUS, "Upload-Length": str(size), "Upload-Metadata": meta},
                (f, 0, 0),
            )
            assert status == 201, status
            target, offset = urlsplit(h["location"]).path, 0
            patches: list[float] = []
            while offset < size:
                n = min(chunk, size - offset)
                headers = {
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                }
                t_patch = time.perf_counter()
                status, h = client.request("PATCH", target, headers, (f, offset, n))
                patches.append(time.perf_counter() - t_patch)
                assert status == 204, status
                offset = int(h["upload-offset"])
            if sync_dir is not None:
                for stored in (sync_dir / "assets").glob("*/source"):
                    _fsync(stored)
            seconds = time.perf_counter() - t0
    finally:
        client.close()
        sampler.stop()
    with httpx.Client(headers={"Authorization": f"Bearer {server.token}"}) as c:
        up = c.get(server.url + target).json()["data"]
    assert up["status"] == "asset_created", up
    return TusRun(seconds, patches, sampler.idle, sampler.peak)


@dataclass
class ParallelRun:
    """One timed parallel upload: N partial uploads at once, then the final upload."""

    seconds: float
    final: float  # the final POST: claiming the partials and publishing the asset
    peak: int


def _send_partial(
    server: Server, src: Path, start: int, end: int, chunk: int, urls: list[str], i: int
) -> None:
    """Create a partial upload of bytes [start, end) and PATCH it on its own connection."""
    client = RawClient(server.url, server.token)
    try:
        with src.open("rb") as f:
            headers = {**TUS, "Upload-Concat": "partial", "Upload-Length": str(end - start)}
            status, h = client.request("POST", "/api/v1/uploads", headers, (f, 0, 0))
            assert status == 201, status
            target, offset = urlsplit(h["location"]).path, 0
            urls[i] = target
            while offset < end - start:
                n = min(chunk, end - start - offset)
                patch = {
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                }
                status, h = client.request("PATCH", target, patch, (f, start + offset, n))
                assert status == 204, status
                offset = int(h["upload-offset"])
    finally:
        client.close()


def run_parallel(server: Server, src: Path, chunk: int, n: int) -> ParallelRun:
    """Upload ``src`` as ``n`` partial uploads on ``n`` connections at once (tus
    concatenation), then create the final upload; time the whole and the final POST."""
    size = src.stat().st_size
    bounds = [size * i // n for i in range(n + 1)]
    urls = [""] * n
    errors: list[BaseException] = []
    sampler = RssSampler(server.proc.pid)
    sampler.start()

    def part(i: int) -> None:
        try:
            _send_partial(server, src, bounds[i], bounds[i + 1], chunk, urls, i)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=part, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        meta = "filename " + base64.b64encode(src.name.encode()).decode()
        client = RawClient(server.url, server.token)
        try:
            t_final = time.perf_counter()
            headers = {**TUS, "Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": meta}
            with src.open("rb") as f:
                status, h = client.request("POST", "/api/v1/uploads", headers, (f, 0, 0))
            end = time.perf_counter()
        finally:
            client.close()
        assert status == 201, status
    finally:
        sampler.stop()
    with httpx.Client(headers={"Authorization": f"Bearer {server.token}"}) as c:
        up = c.get(server.url + urlsplit(h["location"]).path).json()["data"]
    assert up["status"] == "asset_created", up
    return ParallelRun(end - t0, end - t_final, sampler.peak)


def parallel_rounds(
    args: argparse.Namespace, size: int, server: Server, src: Path, work: Path
) -> None:
    """cp against parallel uploads of N = each of ``--parallel``; medians over rounds."""
    objects = work / "data" / "objects"
    chunk = args.chunk_mib * MIB
    counts = [int(x) for x in args.parallel.split(",")]
    mib = size / MIB
    cp: list[float] = []
    runs: dict[int, list[ParallelRun]] = {n: [] for n in counts}
    for i in range(args.rounds):
        cp.append(run_cp(src, objects, sync=False))
        print(f"  round {i + 1} cp          : {mib / cp[-1]:7.1f} MiB/s", flush=True)
        for n in counts if i % 2 == 0 else reversed(counts):
            run = run_parallel(server, src, chunk, n)
            runs[n].append(run)
            shutil.rmtree(objects / "assets", ignore_errors=True)
            print(
                f"  round {i + 1} parallel {n:<3}: {mib / run.seconds:7.1f} MiB/s"
                f"  (final POST {run.final:.2f} s, server RSS peak {run.peak / MIB:.0f} MiB)",
                flush=True,
            )
    cp_rate = mib / statistics.median(cp)
    print()
    _print_setup(args)
    print(f"cp             : {cp_rate:8.1f} MiB/s   (into the page cache)")
    for n in counts:
        rate = mib / statistics.median(r.seconds for r in runs[n])
        final = statistics.median(r.final for r in runs[n])
        print(
            f"parallel {n:<6}: {rate:8.1f} MiB/s   ratio vs cp {rate / cp_rate:5.2f}"
            f"   final POST (concatenation + asset) {final:.2f} s"
        )


CEILING_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = [(b"upload-offset", str(size).encode()), (b"location", b"/x")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
"""


def run_ceiling(work: Path, src: Path, chunk: int) -> float:
    """The same PATCHes against a bare Granian ASGI app that discards the body."""
    (work / "ceiling_app.py").write_text(CEILING_APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "ceiling_app:app"],
        cwd=work,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            if time.monotonic() > deadline:
                raise SystemExit("granian did not start")
            time.sleep(0.1)
        size = src.stat().st_size
        client = RawClient(f"http://127.0.0.1:{port}", "x")
        with src.open("rb") as f:
            t0 = time.perf_counter()
            for offset in range(0, size, chunk):
                n = min(chunk, size - offset)
                status, _ = client.request("PATCH", "/x", {}, (f, offset, n))
                assert status == 204, status
            seconds = time.perf_counter() - t0
        client.close()
        return seconds
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _print_setup(args: argparse.Namespace) -> None:
    print(
        f"machine        : {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"file           : {args.size_mib} MiB, PATCHes of {args.chunk_mib} MiB, "
        f"{args.rounds} rounds (medians)"
    )
    print(f"store          : {'SeaweedFS S3' if args.s3 else 'local directory (same disk as cp)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--s3", action="store_true", help="store objects on a local SeaweedFS")
    parser.add_argument(
        "--parallel",
        metavar="N[,N...]",
        help="upload as N partial uploads on N connections plus a final one (tus concatenation)",
    )
    parser.add_argument(
        "--web-workers", type=int, default=1, help="server processes (MEDIAPLANE_WEB_WORKERS)"
    )
    args = parser.parse_args()
    size = args.size_mib * MIB
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upload-", dir=args.dir))
    try:
        src = work / "source.bin"
        print(f"making {args.size_mib} MiB of random bytes in {src} ...", flush=True)
        make_source(src, size)
        data_dir = work / "data"
        (data_dir / "objects").mkdir(parents=True)
        with contextlib.ExitStack() as stack:
            env: dict[str, str] = {"MEDIAPLANE_WEB_WORKERS": str(args.web_workers)}
            if args.s3:
                from tests.seaweed import running_seaweed

                (work / "weed").mkdir()
                s3 = stack.enter_context(running_seaweed(work / "weed"))
                env |= {
                    "MEDIAPLANE_STORAGE_URL": s3.url("bench"),
                    "AWS_ACCESS_KEY_ID": s3.access_key,
                    "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                }
                print(f"objects go to SeaweedFS S3 at {s3.endpoint} (cp still writes to disk)")
            server = Server.start(data_dir, env)
            try:
                if args.parallel:
                    parallel_rounds(args, size, server, src, work)
                else:
                    rounds(args, size, server, src, work)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rounds(args: argparse.Namespace, size: int, server: Server, src: Path, work: Path) -> None:
    """Run the rounds, alternating the order, and print medians and ratios."""
    objects = work / "data" / "objects"
    chunk = args.chunk_mib * MIB
    times: dict[str, list[float]] = {k: [] for k in ("cp", "tus", "cp+fsync", "tus+fsync")}
    peaks: list[int] = []
    last_patch: list[float] = []
    completion: list[float] = []
    idle = 0
    mib = size / MIB
    for i in range(args.rounds):
        order = ["cp", "tus"] if i % 2 == 0 else ["tus", "cp"]
        for what in order:
            for sync in (False, True):
                if sync and args.s3:
                    continue
                name = f"{what}+fsync" if sync else what
                if what == "cp":
                    seconds = run_cp(src, objects, sync=sync)
                    extra = ""
                else:
                    run = run_tus(server, src, chunk, sync_dir=objects if sync else None)
                    seconds, idle, peak = run.seconds, run.idle, run.peak
                    peaks.append(peak)
                    if not sync:
                        last_patch.append(run.patches[-1])
                        completion.append(run.completion)
                    extra = (
                        f"  (server RSS idle {idle / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB;"
                        f" final PATCH {run.patches[-1]:.2f} s, completion ~{run.completion:.2f} s)"
                    )
                    # each upload became an asset; drop its bytes before the next round
                    shutil.rmtree(objects / "assets", ignore_errors=True)
                times[name].append(seconds)
                print(f"  round {i + 1} {name:<10}: {mib / seconds:7.1f} MiB/s{extra}", flush=True)
    ceiling = run_ceiling(work, src, chunk)
    rate = {k: mib / statistics.median(v) for k, v in times.items() if v}
    print()
    _print_setup(args)
    print(f"cp             : {rate['cp']:8.1f} MiB/s   (into the page cache)")
    print(f"tus upload     : {rate['tus']:8.1f} MiB/s")
    print(f"ratio          : {rate['tus'] / rate['cp']:8.2f}   (target >= 0.70)")
    if "tus+fsync" in rate:
        print(f"cp + fsync     : {rate['cp+fsync']:8.1f} MiB/s   (bytes on the disk)")
        print(f"tus + fsync    : {rate['tus+fsync']:8.1f} MiB/s")
        print(f"ratio (on disk): {rate['tus+fsync'] / rate['cp+fsync']:8.2f}")
    print(
        f"bare Granian   : {mib / ceiling:8.1f} MiB/s   (ASGI app that discards the body: the HTTP stack's ceiling)"
    )
    print(f"tus / ceiling  : {rate['tus'] / (mib / ceiling):8.2f}")
    print(
        f"final PATCH    : {statistics.median(last_patch):8.2f} s   (of which completion, beyond"
        f" a median earlier PATCH: {statistics.median(completion):.2f} s)"
    )
    print(
        f"server RSS     : idle {idle / MIB:.0f} MiB, peak during uploads {max(peaks) / MIB:.0f} MiB"
    )


if __name__ == "__main__":
    main()
