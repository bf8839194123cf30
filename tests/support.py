"""Shared test helpers: generated media, a real `mediaplane up` server, service checks."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.clips import AAC, H264, Clip, picture, sine

ROOT = Path(__file__).resolve().parents[1]
MEDIA_CACHE = ROOT / ".cache" / "test-media"
REQUIRE_SERVICES = os.environ.get("MEDIAPLANE_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("MEDIAPLANE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("MEDIAPLANE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def skip_or_fail(reason: str) -> None:
    """Skip, or fail in CI (MEDIAPLANE_REQUIRE_SERVICES=1) where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    """A UDP port free now on loopback (SRT listens on UDP; :func:`free_port` is TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def make_clip(
    name: str,
    *,
    seconds: float = 2,
    size: str = "640x360",
    rate: int = 30,
    audio: bool = True,
    extra: list[str] | None = None,
) -> Path:
    """A lavfi test clip (testsrc2 + a 440 Hz sine at 44.1 kHz), made once and cached
    outside git."""
    clip = Clip(
        seconds=seconds,
        video=picture(size, rate),
        audio=(sine(440, 44100),) if audio else (),
        extra=tuple(extra or ()),
    )
    return clip.make(MEDIA_CACHE / name, timeout=300)


def worst_psnr(a: Path, b: Path) -> float:
    """The lowest per-frame PSNR between two videos of equal frame count."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b)]
        + ["-lavfi", "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    values = [float(v) for v in re.findall(r"psnr_avg:(\S+)", out) if v != "inf"]
    return min(values, default=float("inf"))


@dataclass
class Backend:
    """Where a server keeps its state: the embedded defaults or the scale-out services.

    ``env_for(data_dir)`` gives one server its own database, queues and storage prefix, the
    same ones again for the same data dir (a restarted server finds its state).
    """

    name: str
    env: dict[str, str] = field(default_factory=dict)
    cleanup: list[Any] = field(default_factory=list)
    s3: Any = None
    _databases: dict[str, str] = field(default_factory=dict)

    def env_for(self, data_dir: Path) -> dict[str, str]:
        if self.s3 is None:
            return dict(self.env)
        tag = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
        if tag not in self._databases:
            url, drop = postgres_database()
            self._databases[tag] = url
            self.cleanup.append(drop)
        return {
            **self.env,
            "MEDIAPLANE_DATABASE_URL": self._databases[tag],
            "MEDIAPLANE_QUEUE_NAMESPACE": f"mp_test_{tag}",
            "MEDIAPLANE_STORAGE_URL": self.s3.url(f"mp-{tag}"),
        }


def embedded_backend() -> Backend:
    return Backend("sqlite")


def postgres_database(*, migrated: bool = False) -> tuple[str, Any]:
    """A fresh PostgreSQL database, empty or (``migrated``) a copy of this process's
    migrated template; returns (url, drop callback)."""
    import psycopg

    if not port_open("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"mp_test_{uuid.uuid4().hex[:10]}"
    template = f' TEMPLATE "{_postgres_template()}"' if migrated else ""
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
    except psycopg.Error as exc:
        skip_or_fail(f"cannot create a PostgreSQL database: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


#: Migrated schemas, made once per test process (a worker of its own under pytest-xdist):
#: migrating costs about a second each time, a copy milliseconds. Migrations only create
#: schema (no rows, nothing random), so a copy is what a fresh migration would make.
_templates: dict[str, Any] = {}


def _postgres_template() -> str:
    if "postgres" not in _templates:
        import psycopg

        from mediaplane.db import migrate

        name = f"mp_test_template_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        atexit.register(drop)
        migrate(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")  # it disposes its engine
        _templates["postgres"] = name
    template: str = _templates["postgres"]
    return template


def migrated_sqlite(path: Path) -> str:
    """A new SQLite database at ``path`` (0600, as ``migrate`` makes it) holding a copy of
    this process's migrated template; its URL."""
    import sqlite3

    from mediaplane.db import migrate

    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="mp-test-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        migrate(f"sqlite:///{folder / 'db.sqlite'}")
        _templates["sqlite"] = folder / "db.sqlite"
    url = f"sqlite:///{path}"
    if path.exists():  # a database from before: bring it up to date
        migrate(url)
        return url
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # the backup API copies what is committed, whatever sits in the template's WAL
    with contextlib.closing(sqlite3.connect(_templates["sqlite"])) as src:
        with contextlib.closing(sqlite3.connect(path)) as dst:
            src.backup(dst)
    return url


@contextlib.contextmanager
def migrated_runtime(
    database: str, data_dir: Path, *, job_table: Any = None, **settings: Any
) -> Iterator[Any]:
    """A Runtime on a fresh, migrated ``database`` ("sqlite" in ``data_dir``, or a new
    PostgreSQL database dropped afterwards), with ``settings`` on top of the defaults and
    the app's job table (or ``job_table``: a function of the settings)."""
    from mediaplane.app import job_table as app_job_table
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

    drop = None
    if database == "sqlite":
        url = migrated_sqlite(data_dir / "db.sqlite")
    else:
        url, drop = postgres_database(migrated=True)
    rt = Runtime(
        Settings(data_dir=data_dir, database_url=url, **settings),
        job_table=job_table or app_job_table,
    )
    try:
        yield rt
    finally:
        rt.db.dispose()
        if drop:
            drop()


def services_backend(s3: Any) -> Backend:
    """A fleet's configuration: PostgreSQL for data, RabbitMQ as the Celery broker, S3 storage."""
    if not port_open("127.0.0.1", 5672):
        skip_or_fail("RabbitMQ is not listening on 127.0.0.1:5672")
    if not port_open("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not listening on 127.0.0.1:5432")
    env = {
        "MEDIAPLANE_BROKER_URL": AMQP_URL,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }
    return Backend("postgres+rabbitmq+s3", env, s3=s3)


@dataclass
class Server:
    """A real `mediaplane up` process on a free loopback port."""

    url: str
    token: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def rtmp_url(self) -> str:
        """Where publishers push: ``{rtmp_url}/{stream_key}``."""
        return f"rtmp://127.0.0.1:{self.env['MEDIAPLANE_RTMP_PORT']}/live"

    def srt_url(self, stream_key: str) -> str:
        """Where SRT publishers push ``stream_key`` (the plain stream id form)."""
        return f"srt://127.0.0.1:{self.env['MEDIAPLANE_SRT_PORT']}?streamid={stream_key}"

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60, **kw
        )

    def store(self) -> Any:
        """The server's object store, opened with the server's own URL and credentials."""
        from mediaplane.storage import S3Store, open_store

        url = self.env.get("MEDIAPLANE_STORAGE_URL")
        if url is None:
            return open_store(str(self.data_dir / "objects"))
        return S3Store.from_url(
            url,
            access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]

    def upload(
        self, path: Path, title: str = "test", filename: str | None = None
    ) -> dict[str, Any]:
        with self.client() as c, path.open("rb") as f:
            r = c.post(
                "/api/v1/assets", files={"file": (filename or path.name, f)}, data={"title": title}
            )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    def wait(
        self, asset_id: str, timeout: float = 180, *, playable: bool = False
    ) -> dict[str, Any]:
        """Poll until the asset is errored or fully processed (every rendition packaged), or
        with ``playable`` until it first becomes ready (its first rendition plays)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                r = c.get(f"/api/v1/assets/{asset_id}")
                assert r.status_code == 200, r.text
                asset: dict[str, Any] = r.json()["data"]
                if asset["status"] == "errored" or (
                    asset["status"] == "ready" and (playable or asset["progress"] == 100)
                ):
                    return asset
                if time.monotonic() > deadline:
                    raise AssertionError(f"asset {asset_id} still preparing\n{self.log()}")
                time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds: a test server's warm shutdown
        (Celery's takes 5–7 s) is not under test here, and its data is thrown away or, where a
        test restarts on it, survives a kill (tests/integration/test_jobs_recovery.py). Its
        workers (sessions of their own) and their ffmpeg are killed with it: left to die with
        their parent they went on for seconds, on the next test's CPU."""
        kids = descendants(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers in the group
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


#: Seconds a stopping test server gets before it is killed (its HTTP side closes in less;
#: each second here was a second per server start of the suite, about 60 of them).
STOP_GRACE = 0.3


def start_server(data_dir: Path, backend: Backend, **settings: str) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = "test-" + uuid.uuid4().hex
    env = {
        **os.environ,
        "MEDIAPLANE_HOST": "127.0.0.1",
        "MEDIAPLANE_PORT": str(port),
        "MEDIAPLANE_RTMP_PORT": str(free_port()),
        "MEDIAPLANE_SRT_PORT": str(free_udp_port()),
        "MEDIAPLANE_DATA_DIR": str(data_dir),
        "MEDIAPLANE_ADMIN_TOKEN": token,
        "MEDIAPLANE_WATCHDOG_INTERVAL_SECONDS": "1",
        # rights, revocations and grants take effect within a second, not five
        "MEDIAPLANE_PLAYBACK_CACHE_SECONDS": "1",
        "MEDIAPLANE_X264_PRESET": "ultrafast",
        # WebRTC ICE on loopback only (aioice skips it by default: it would use the LAN's)
        "MEDIAPLANE_WEBRTC_ICE_ADDRESSES": "127.0.0.1",
        **backend.env_for(data_dir),
        **{f"MEDIAPLANE_{k.upper()}": v for k, v in settings.items()},
    }
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediaplane", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=data_dir,
    )
    server = Server(f"http://127.0.0.1:{port}", token, data_dir, env, proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mediaplane up exited ({proc.returncode}):\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200 and _worker_ready(
                server
            ):
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"mediaplane up did not become ready:\n{server.log()}")
        time.sleep(0.3)


def _worker_ready(server: Server) -> bool:
    return "ready." in server.log()


def ffprobe_json(path_or_url: str | Path, *extra: str, data: bytes | None = None) -> dict[str, Any]:
    """ffprobe's streams and format of a file, or of ``data`` fed on stdin."""
    import json

    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            *extra,
            "pipe:0" if data is not None else str(path_or_url),
        ],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    info: dict[str, Any] = json.loads(out)
    return info


def probe_decodes(data: bytes) -> dict[str, Any]:
    """ffprobe ``data`` (e.g. init + media segments) decoding every frame; each stream must
    yield frames."""
    info = ffprobe_json("", "-count_frames", data=data)
    assert all(int(s.get("nb_read_frames", "1")) > 0 for s in info["streams"]), info
    return info


def which(name: str) -> str | None:
    return shutil.which(name)


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc; Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    out: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def until(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Poll ``check()`` every 0.2 s until it returns something not None (that value), or
    fail after ``timeout`` seconds saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def live_publisher(
    url: str, seconds: int, container: str = "flv", *extra: str
) -> subprocess.Popen[bytes]:
    """ffmpeg pushing a clock pattern (keyframe every 0.5 s) with a tone, at real time, as
    FLV (RTMP, RTMPS) or MPEG-TS (SRT) to ``url``; ``extra``: output options before it
    (e.g. TLS ones)."""
    clip = Clip(
        seconds=seconds,
        video=picture("320x180", 30),
        audio=(sine(440, 48000),),
        codecs=(*H264, "-tune", "zerolatency", "-g", "15", *AAC, "-b:a", "64k"),
        extra=("-f", container, *extra),
    )
    return subprocess.Popen(
        clip.argv(url, realtime=True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def live_stream(server: Server, **body: Any) -> Iterator[dict[str, Any]]:
    """A live stream created on ``server`` (``body``: the create request's fields), deleted
    after: ``yield from live_stream(…)`` in a fixture."""
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json=body)
        assert r.status_code == 201, r.text
        stream: dict[str, Any] = r.json()["data"]
    try:
        yield stream
    finally:
        with server.client() as c:
            c.delete(f"/api/v1/live-streams/{stream['id']}")


def live_segment_decodes(media_url: str) -> Any:
    """Wait for the live media playlist at ``media_url`` to list a complete segment, then
    fetch its init segment and that segment (their URIs as the playlist writes them,
    relative to it) and check they decode; the playlist (a
    :class:`mediaplane.media.MediaPlaylist`)."""
    from mediaplane.media import MediaPlaylist

    def with_segment() -> Any:
        p = MediaPlaylist.parse(httpx.get(media_url).text)
        return p if any(s.uri is not None for s in p.segments) else None

    playlist = until("a complete segment", with_segment)
    done = next(s for s in playlist.segments if s.uri is not None)
    init = next(s.map for s in playlist.segments if s.map is not None)
    base = media_url.rsplit("/", 1)[0]
    data = b"".join(_ok(httpx.get(f"{base}/{uri}")).content for uri in (init.uri, done.uri))
    assert probe_decodes(data)["streams"]
    return playlist


def _ok(r: httpx.Response) -> httpx.Response:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate for ``host`` (EC P-256, an hour valid) and its key, as
    PEM files ``cert.pem`` and ``key.pem`` in ``folder``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


#: The password of the users :func:`signed_in` makes.
PASSWORD = "correct horse battery"


@contextlib.contextmanager
def signed_in(server: Server, email: str, role: str = "admin") -> Iterator[httpx.Client]:
    """A browser-like client signed in through the form as a new verified user of ``role``
    (made in the server's database)."""
    from mediaplane.accounts import create_user
    from mediaplane.config import Settings
    from mediaplane.db import Database

    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        with db.session() as s:
            create_user(s, email, PASSWORD, role, email_verified=True)
    finally:
        db.dispose()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/signin").text)
        assert token is not None, "no CSRF token on /signin"
        form = {"csrf_token": token.group(1), "email": email, "password": PASSWORD}
        r = c.post("/signin", data=form)
        assert r.status_code == 303, r.text
        yield c


def session_cookie(server: Server, email: str, role: str = "admin") -> dict[str, str]:
    """The session cookie of a new user signed in through the form (for a browser context)."""
    with signed_in(server, email, role) as c:
        return {"name": "mp_session", "value": c.cookies["mp_session"], "url": server.url}
