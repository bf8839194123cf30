"""The `mediaplane` command: up, worker, live, ingest, migrate, token, events, analytics."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import structlog
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mediaplane import __version__
from mediaplane.client import (
    Asset,
    Client,
    ClientError,
    RequestFailed,
    TokenRefused,
    Unreachable,
    Upload,
    UploadStalled,
    UploadState,
    ladder_done,
)
from mediaplane.clips import Clip, picture, sine
from mediaplane.config import Settings, misspelled_env
from mediaplane.media import Toolchain, ToolMissing

if TYPE_CHECKING:
    from mediaplane.events import Event
    from mediaplane.ingest import ImportAborted

app = typer.Typer(
    help="Mediaplane: upload a video, get adaptive HLS and DASH.", no_args_is_help=True
)
console = Console(stderr=True)
log = structlog.get_logger("mediaplane.cli")


def _transfer_columns() -> tuple[ProgressColumn, ...]:
    """Rich columns for every byte-counting bar (uploads, imports); fresh per bar."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )


def _setting(field: str, *decls: str, help: str) -> Any:
    """An option that overrides the Settings field ``field``: its help shows the field's
    default and its ``MEDIAPLANE_*`` variable (which Click reads too)."""
    default = Settings.model_fields[field].get_default(call_default_factory=True)
    return typer.Option(
        *decls,
        envvar=f"MEDIAPLANE_{field.upper()}",
        show_envvar=True,
        show_default=str(default),
        help=help,
    )


DataDir = Annotated[Path | None, _setting("data_dir", "--data-dir", help="Where data lives")]
Server = Annotated[
    str | None,
    typer.Option(
        envvar="MEDIAPLANE_SERVER",
        show_default="MEDIAPLANE_PUBLIC_URL, else http://MEDIAPLANE_HOST:MEDIAPLANE_PORT",
        help="Server URL",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="MEDIAPLANE_TOKEN",
        show_default="MEDIAPLANE_ADMIN_TOKEN, else DATA_DIR/admin-token",
        help="API token",
    ),
]


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment; flags override and are exported for child processes."""
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"MEDIAPLANE_{key.upper()}"] = str(value)
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "MEDIAPLANE_" + "_".join(str(p) for p in err["loc"]).upper()
            console.print(f"[red]error:[/] {name}: {err['msg']}", highlight=False)
        raise typer.Exit(2) from None


def _start_logging(settings: Settings) -> None:
    """Log lines for a long-running command (`up`, `worker`), and a warning for each
    MEDIAPLANE_* variable that nothing reads (a typo silently falls back to a default)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.ops import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    for name, message in misspelled_env().items():
        log.warning(message, variable=name)


def _fatal(message: str) -> NoReturn:
    """Say what stops the command on stderr, as a line a person reads (not a log record:
    where those go depends on how logging was set up), and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _check_tools(settings: Settings) -> None:
    try:
        Toolchain.discover(settings)
    except ToolMissing as exc:
        _fatal(str(exc))


def _spawn_worker(ready: threading.Event) -> subprocess.Popen[bytes]:
    """Start `mediaplane worker` for `up`; ``ready`` is set once it consumes jobs."""

    def die_with_parent() -> None:
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM, 0, 0, 0)

    read_fd, write_fd = os.pipe()
    # Its own session: a Ctrl-C or group signal to `up` reaches the pool only through stop().
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediaplane", "worker", "--ready-fd", str(write_fd)],
        preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        start_new_session=True,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)

    def watch_ready() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            if pipe.read(1):
                ready.set()

    threading.Thread(target=watch_ready, daemon=True, name="worker-ready").start()
    return proc


class _WorkerSupervisor(threading.Thread):
    """Keeps the embedded worker pool running: restarts it if it dies (the watchdog then
    re-queues whatever it was doing)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="worker-supervisor")
        self.ready = threading.Event()
        self.proc = _spawn_worker(self.ready)
        self.stopping = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            if self.proc.poll() is not None:
                log.warning(
                    "embedded worker exited; restarting it", returncode=self.proc.returncode
                )
                self.proc = _spawn_worker(threading.Event())

    def stop(self, grace: float = 5.0) -> None:
        """Warm shutdown for ``grace`` seconds, then kill the pool; unfinished jobs are
        re-queued by the watchdog on the next start."""
        self.stopping.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class _LiveThread(threading.Thread):
    """The live ingest (RTMP and SRT) of `up`, on its own event loop in a thread of this process;
    each stream's packager runs its own ffmpeg."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="live-ingest")
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.started = threading.Event()
        self.start()

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        # imported here, not at the top: `mediaplane --help` stays fast
        from mediaplane.app import job_table
        from mediaplane.live import serve_ingest
        from mediaplane.runtime import Runtime

        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        self.started.set()
        try:
            await serve_ingest(Runtime.get(self.settings, job_table=job_table), self.stopping)
        except OSError as exc:  # the port is taken: the rest of `up` still serves
            log.error("the live ingest cannot listen", port=self.settings.rtmp_port, error=str(exc))

    def stop(self, grace: float = 5.0) -> None:
        """End every publisher's session cleanly (their playlists get an end)."""
        if self.started.wait(1) and self.loop is not None and self.stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self.loop.call_soon_threadsafe(self.stopping.set)
        self.join(grace)


#: The demo: 12 s of 720p30 test pattern with a 440 Hz tone.
DEMO_CLIP = Clip(
    seconds=12,
    video=picture("1280x720", 30),
    audio=(sine(440, 48000),),
    codecs=("-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"),
    extra=("-shortest",),
)


def _demo(settings: Settings) -> str:
    """Ingest a generated 12 s clip once, so a fresh install has something to play; return
    its asset id."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.app import job_table
    from mediaplane.catalog import ingest_file
    from mediaplane.runtime import Runtime

    marker = settings.data_path / "demo-ingested"
    if marker.exists():
        return marker.read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        clip = DEMO_CLIP.make(
            Path(tmp) / "demo.mp4",
            ffmpeg=settings.ffmpeg_path,
            timeout=120,
            memory_bytes=settings.subprocess_memory_bytes,
        )
        asset = ingest_file(
            Runtime.get(settings, job_table=job_table),
            clip,
            filename="demo.mp4",
            title="Demo: test pattern",
        )
    marker.write_text(asset.id + "\n")
    return asset.id


def _loopback_host(settings: Settings) -> str:
    """Where this host reaches the server `up` starts (a wildcard bind listens on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)


def _listening(settings: Settings) -> bool:
    try:
        with socket.create_connection((_loopback_host(settings), settings.port), timeout=2):
            return True
    except OSError:
        return False


def _loopback_url(settings: Settings) -> str:
    host = _loopback_host(settings)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def _ingest_hint(settings: Settings) -> str:
    """The `mediaplane ingest` command line that reaches this server from this directory."""
    argv = ["mediaplane", "ingest", "VIDEO.mp4"]
    if settings.effective_public_url != Settings.model_construct().effective_public_url:
        argv += ["--server", settings.effective_public_url]
    if settings.data_path != Path(str(Settings.model_fields["data_dir"].default)).resolve():
        argv += ["--data-dir", str(settings.data_path)]
    return " ".join(argv)


def _ready_block(settings: Settings, token_source: str, demo: bool) -> dict[str, str]:
    # third-party and heavy (Celery's kombu), needed by `up` only: `--help` stays fast
    from kombu.utils.url import maybe_sanitize_url

    url = settings.effective_public_url
    facts = {
        "url": url,
        "upload_page": f"{url}/upload",
        "data_dir": str(settings.data_path),
        "admin_token": token_source,
        "first_file": _ingest_hint(settings),
        "broker": (
            f"embedded ({settings.effective_broker_url})"
            if settings.embedded_broker
            else maybe_sanitize_url(settings.effective_broker_url)
        ),
    }
    if settings.live_ingest:
        live_host = _loopback_host(settings)
        facts["go_live"] = (
            f"rtmp://{live_host}:{settings.rtmp_port}/live/STREAM-KEY"
            + (
                f", rtmps://{live_host}:{settings.rtmps_port}/live/STREAM-KEY"
                if settings.rtmps_cert_file is not None
                else ""
            )
            + f" or srt://{live_host}:{settings.srt_port}?streamid=STREAM-KEY"
            " (POST /api/v1/live-streams gives a key)"
        )
    if demo:
        facts["demo"] = "preparing; a line follows when it plays"
    return facts


_LABELS = {
    "url": "Open",
    "upload_page": "Upload page",
    "data_dir": "Data",
    "admin_token": "Admin token",
    "first_file": "First file",
    "broker": "Job broker",
    "go_live": "Go live",
    "demo": "Demo",
}


class _Announcer(threading.Thread):
    """Prints the one ready block once the web server listens and the embedded
    worker consumes jobs; with --demo, says when the demo asset plays and where."""

    def __init__(
        self,
        settings: Settings,
        facts: dict[str, str],
        worker_ready: threading.Event | None,
        demo_id: str | None,
        as_json: bool,
    ) -> None:
        super().__init__(daemon=True, name="ready-announcer")
        self.settings, self.facts, self.worker_ready = settings, facts, worker_ready
        self.demo_id, self.as_json = demo_id, as_json
        self.base = _loopback_url(settings)

    def run(self) -> None:
        # A connection, not a request: a probe must not write an access log line.
        deadline = time.monotonic() + 120
        while not _listening(self.settings):
            if time.monotonic() > deadline:
                log.warning("the web server is not listening after 120 s", url=self.base)
                return
            time.sleep(0.2)
        if self.worker_ready is not None and not self.worker_ready.wait(60):
            log.warning("the embedded worker is not consuming jobs yet; uploads will wait")
        self.announce()
        if self.demo_id is not None:
            self.watch_demo(self.demo_id)

    def announce(self) -> None:
        if self.as_json:
            log.info(f"Mediaplane {__version__} is ready.", **self.facts)
            return
        lines = [f"\n[bold green]Mediaplane {__version__} is ready[/]"]
        for key, value in self.facts.items():
            text = f"[bold]{escape(value)}[/]" if key == "url" else escape(value)
            if key == "admin_token" and not self.settings.admin_token:
                text += "  (`mediaplane token` prints it)"
            lines.append(f"  {_LABELS[key] + ':':<13} {text}")
        lines.append("  Stop with Ctrl-C.\n")
        console.print("\n".join(lines), highlight=False, soft_wrap=True)

    def watch_demo(self, asset_id: str) -> None:
        """Read the demo asset from the database (polling our own API would log requests)."""
        # imported here, not at the top: `mediaplane --help` stays fast
        from mediaplane.catalog import AssetStatus, get_asset, playback_urls
        from mediaplane.runtime import Runtime

        runtime = Runtime.get(self.settings)
        while True:
            with runtime.db.session() as s:
                asset = get_asset(s, asset_id)
                status = asset.status
                pid = asset.playback_ids[0].id if asset.playback_ids else None
            if status is AssetStatus.ERRORED:
                log.error("the demo asset failed", asset_id=asset_id)
                return
            if status is AssetStatus.READY and pid is not None:
                watch = playback_urls(self.settings.effective_public_url, pid).watch
                if self.as_json:
                    log.info("The demo plays now.", asset_id=asset_id, watch=watch)
                else:
                    console.print(
                        f"The demo plays now: [bold]{escape(watch)}[/]",
                        highlight=False,
                        soft_wrap=True,
                    )
                return
            time.sleep(0.5)


@app.command()
def up(
    host: Annotated[str | None, _setting("host", help="Address to listen on")] = None,
    port: Annotated[int | None, _setting("port", help="Port")] = None,
    rtmp_port: Annotated[int | None, _setting("rtmp_port", help="RTMP ingest port")] = None,
    srt_port: Annotated[int | None, _setting("srt_port", help="SRT ingest port (UDP)")] = None,
    data_dir: DataDir = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also ingest a generated demo clip")] = False,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker pool")] = True,
) -> None:
    """Serve the API, origin, web pages and an embedded worker pool on one host.

    Every MEDIAPLANE_* setting applies (README lists them); MEDIAPLANE_LOG_FORMAT=json gives
    JSON log lines on a terminal too (they are JSON whenever stderr is not a terminal).
    """
    # third-party and heavy (the HTTP server), needed by `up` only: `--help` stays fast
    from granian import Granian
    from granian.constants import Interfaces

    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.accounts import ensure_admin_token
    from mediaplane.db import DatabaseError, migrate
    from mediaplane.ops import renders_json

    settings = _settings(
        host=host, port=port, rtmp_port=rtmp_port, srt_port=srt_port, data_dir=data_dir
    )
    os.environ["MEDIAPLANE_DATA_DIR"] = str(settings.data_path)
    settings = Settings()
    _start_logging(settings)
    _check_tools(settings)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    try:
        migrate(settings.effective_database_url)
    except DatabaseError as exc:
        _fatal(str(exc))
    if settings.territory_cidr_file is not None:
        # imported here, not at the top: `mediaplane --help` stays fast
        from mediaplane.catalog import TerritoryTableError, load_territory_table

        try:  # fail at start, not on the first restricted playback
            load_territory_table(settings.territory_cidr_file)
        except TerritoryTableError as exc:
            _fatal(str(exc))
    ensure_admin_token(settings)
    token_source = (
        "MEDIAPLANE_ADMIN_TOKEN" if settings.admin_token else str(settings.admin_token_file)
    )
    supervisor = _WorkerSupervisor() if worker else None
    live = _LiveThread(settings) if settings.live_ingest else None
    try:
        demo_id = _demo(settings) if demo else None
        _Announcer(
            settings,
            _ready_block(settings, token_source, demo),
            supervisor.ready if supervisor else None,
            demo_id,
            renders_json(settings.log_format),
        ).start()
        # Web workers start as fresh interpreters, not forks: this process runs threads
        # (the announcer, the worker supervisor) that may hold an import or I/O lock at
        # the moment of a fork, and the forked worker would wait on it forever (seen as
        # a first getaddrinfo that never returned).
        multiprocessing.set_start_method("spawn", force=True)
        Granian(
            "mediaplane.app:create_app",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.web_workers,
            log_enabled=False,
        ).serve()
    finally:
        if live is not None:
            live.stop()
        if supervisor is not None:
            supervisor.stop()


@app.command("worker")
def worker_cmd(
    concurrency: Annotated[
        int | None, _setting("worker_concurrency", "-c", "--concurrency", help="Parallel jobs")
    ] = None,
    data_dir: DataDir = None,
    ready_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run a worker: joins the fleet on MEDIAPLANE_BROKER_URL (or the embedded broker)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.app import job_table
    from mediaplane.jobs import run_worker
    from mediaplane.ops import configure_logging
    from mediaplane.runtime import Runtime

    settings = _settings(data_dir=data_dir)
    if ready_fd is None:
        _start_logging(settings)
    else:  # the embedded pool of `up`, which reported the environment already
        configure_logging(settings.log_level, settings.log_format)
    _check_tools(settings)
    runtime = Runtime.get(settings, job_table=job_table)
    # Resolve and check ffmpeg/packager once per pool process, before the first job.
    warm = lambda: Runtime.get().toolchain  # noqa: E731
    run_worker(runtime, concurrency, ready_fd=ready_fd, warm=warm)


@app.command("live")
def live_cmd(
    host: Annotated[str | None, _setting("host", help="Address to listen on")] = None,
    rtmp_port: Annotated[int | None, _setting("rtmp_port", help="RTMP port")] = None,
    srt_port: Annotated[int | None, _setting("srt_port", help="SRT port (UDP)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run a live ingest host alone: publishers in over RTMP and SRT, LL-HLS out to the data dir
    (`mediaplane up` runs one itself)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.app import job_table
    from mediaplane.live import serve_ingest
    from mediaplane.runtime import Runtime

    settings = _settings(host=host, rtmp_port=rtmp_port, srt_port=srt_port, data_dir=data_dir)
    _start_logging(settings)
    _check_tools(settings)
    runtime = Runtime.get(settings, job_table=job_table)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_ingest(runtime))


@app.command("migrate")
def migrate_cmd(data_dir: DataDir = None) -> None:
    """Create or upgrade the database schema."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.db import migrate

    settings = _settings(data_dir=data_dir)
    migrate(settings.effective_database_url)
    console.print("database is up to date")


def _token(settings: Settings, token: str | None) -> str:
    if token:
        return token
    if settings.admin_token:
        return settings.admin_token
    if settings.admin_token_file.is_file():
        return settings.admin_token_file.read_text().strip()
    console.print(
        "[red]error:[/] no API token: pass --token, set MEDIAPLANE_TOKEN, or run from the "
        "directory holding mediaplane-data/"
    )
    raise typer.Exit(2)


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _parse_size(value: str) -> int:
    """``"64M"`` → 67108864; K, M and G are binary multiples."""
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    number = text[: len(text) - len(unit)]
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a size like 64M, 512K or 1048576") from None
    if size <= 0:
        raise typer.BadParameter("sizes must be positive")
    return size


def _fail(exc: RequestFailed) -> NoReturn:
    """Print the API's error (its message and code) and exit 1."""
    if exc.code is not None:
        console.print(f"[red]error {exc.status}:[/] {exc.message} ({exc.code})")
    else:
        console.print(f"[red]error {exc.status}:[/] {exc.message}")
    raise typer.Exit(1)


def _upload(mp: Client, file: Path, *, title: str, chunk_size: int, rate: int | None) -> Upload:
    """Upload ``file`` with tus under one bar, resuming a run that was cut off."""
    tus = mp.start_upload(file, title=title, state=UploadState())
    if tus.resumed:
        console.print(f"resuming upload at {tus.offset} of {tus.size} bytes")
    with Progress(*_transfer_columns(), console=console) as progress:
        task = progress.add_task("uploading", total=tus.size, completed=tus.offset)
        upload = tus.send(
            chunk_size=chunk_size,
            rate=rate,
            on_progress=lambda done, _total: progress.update(task, completed=done),
        )
    return upload


def _ladder_line(asset: Asset) -> str:
    renditions = asset.get("renditions") or []
    done = sum(r.get("status") == "ready" for r in renditions)
    if asset["status"] == "preparing" or not renditions:
        return "processing"
    return f"renditions {done}/{len(renditions)}"


def _wait(mp: Client, asset_id: str) -> Asset:
    """Wait for the whole ladder under a bar of the asset's ``progress``; say once when the
    first rendition plays."""
    playable_said = False
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
    ) as progress:
        task = progress.add_task("processing", total=100)

        def show(asset: Asset) -> None:
            nonlocal playable_said
            progress.update(
                task, completed=asset.get("progress") or 0, description=_ladder_line(asset)
            )
            if asset["status"] == "ready" and not ladder_done(asset) and not playable_said:
                playable_said = True
                watch = (asset.get("playback") or {}).get("watch")
                progress.console.print(f"playable now (the rest of the ladder follows): {watch}")

        return mp.wait(asset_id, on_update=show)


def _ingest(
    mp: Client, file: Path, *, title: str, chunk_size: int, rate: int | None, wait: bool
) -> Asset:
    """Upload, then wait (or read the asset once); exits on any failure."""
    try:
        upload = _upload(mp, file, title=title, chunk_size=chunk_size, rate=rate)
    except Unreachable as exc:
        console.print(f"[red]error:[/] cannot reach {mp.base_url}: {exc}")
        raise typer.Exit(1) from None
    except UploadStalled as exc:
        console.print(
            f"[red]error:[/] the upload keeps failing ({exc}); run the same command again to resume"
        )
        raise typer.Exit(1) from None
    asset_id = upload.get("asset_id")
    if upload["status"] != "asset_created" or not asset_id:
        console.print(f"[red]upload failed:[/] {upload.get('error') or upload['status']}")
        raise typer.Exit(1)
    console.print(f"asset [bold]{asset_id}[/] created")
    try:
        return _wait(mp, asset_id) if wait else mp.get_asset(asset_id)
    except Unreachable as exc:
        console.print(f"[red]error:[/] cannot reach {mp.base_url}: {exc}")
        raise typer.Exit(1) from None


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str | None, typer.Option(help="Title (default: the file name)")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until every rendition of the ladder is ready")
    ] = True,
    chunk_size: Annotated[
        str, typer.Option(help="Bytes per request (K, M, G suffixes); a cut-off run resumes")
    ] = "64M",
    limit_rate: Annotated[
        str | None, typer.Option(help="Upload at most this many bytes per second (e.g. 2M)")
    ] = None,
) -> None:
    """Upload FILE to a running server (tus, resumable), show progress, print the playback
    URLs. Run the same command again after an interruption to resume where it stopped."""
    settings = _settings(data_dir=data_dir)
    base = server or settings.effective_public_url
    api_token = _token(settings, token)
    if file.stat().st_size == 0:
        console.print(f"[red]error:[/] {file} is empty")
        raise typer.Exit(2)
    chunk = _parse_size(chunk_size)
    rate = _parse_size(limit_rate) if limit_rate else None
    with Client(base, api_token) as mp:
        try:
            asset = _ingest(
                mp, file, title=title or file.stem, chunk_size=chunk, rate=rate, wait=wait
            )
        except RequestFailed as exc:
            _fail(exc)
    if asset["status"] == "errored":
        msgs = " ".join((asset.get("errors") or {}).get("messages", []))
        console.print(f"[red]processing failed:[/] {msgs}")
        raise typer.Exit(1)
    urls = asset.get("playback") or {}
    if wait:
        ids = [r["id"] for r in asset.get("renditions") or []]
        typer.echo(f"Ready: {len(ids)} renditions ({', '.join(ids)})")
    typer.echo(f"HLS:   {urls.get('hls')}")
    typer.echo(f"DASH:  {urls.get('dash')}")
    typer.echo(f"Watch: {urls.get('watch')}")


class _ImportBar:
    """The one progress bar of `mediaplane import`: bytes of the whole library."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("importing", total=None)
        self.files = 0

    def begin(self, files: int, total_bytes: int) -> None:
        self.files = files
        self.progress.update(self.task, total=total_bytes)

    def file(self, index: int, name: str, action: str) -> None:
        short = name if len(name) <= 40 else "…" + name[-39:]
        self.progress.update(self.task, description=f"{action} {index}/{self.files} {short}")

    def advance(self, nbytes: float) -> None:
        self.progress.advance(self.task, nbytes)

    def finish(self) -> None:
        self.progress.update(self.task, description=f"done {self.files} files")


def _import_error(exc: ClientError | ImportAborted, base: str) -> str:
    """Why a bulk import stopped, in the words `mediaplane import` prints."""
    if isinstance(exc, TokenRefused):
        return f"the server refused the API token: {exc}"
    if isinstance(exc, RequestFailed):
        return f"the server answered {exc}"
    if isinstance(exc, Unreachable):
        return f"cannot reach {base}: {exc}"
    return str(exc)


@app.command("import")
def import_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="A folder (searched recursively for videos) or "
            "s3://bucket/prefix?endpoint=URL&region=NAME (credentials from AWS_*)",
            show_default=False,
        ),
    ],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Import a whole video library, skipping files the server already has (same sha256).

    Exits non-zero when any file failed to import.
    """
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.ingest import ImportAborted, open_library

    settings = _settings(data_dir=data_dir)
    base = (server or settings.effective_public_url).rstrip("/")
    api_token = _token(settings, token)
    try:
        library = open_library(source)
    except ImportAborted as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    with Client(base, api_token) as mp:
        try:
            with Progress(*_transfer_columns(), console=console) as progress:
                bar = _ImportBar(progress)
                summary = mp.import_library(library, bar)
                bar.finish()
        except (ClientError, ImportAborted) as exc:
            console.print(f"[red]error:[/] {_import_error(exc, base)}")
            raise typer.Exit(1) from None
    for name, reason in summary.failed:
        typer.echo(f"failed: {name}: {reason}")
    typer.echo(summary.line)
    total = len(summary.imported) + len(summary.skipped) + len(summary.failed)
    if total == 0:
        typer.echo(f"no video files found in {library.description}")
    elif not summary.imported and not summary.failed:
        typer.echo("nothing uploaded: every file is already on the server")
    if summary.failed:
        raise typer.Exit(1)


@app.command("token")
def token_cmd(data_dir: DataDir = None) -> None:
    """Print the admin API token (creating it if needed)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.accounts import ensure_admin_token

    typer.echo(ensure_admin_token(_settings(data_dir=data_dir))[0])


admin_app = typer.Typer(help="Accounts: users and roles.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@admin_app.command("create-user")
def create_user_cmd(
    email: Annotated[str, typer.Argument(help="The account's e-mail address")],
    role: Annotated[str, typer.Option(help="viewer, creator, moderator or admin")] = "viewer",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a local account (on a fresh install, the first admin: --role admin)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.accounts import AccountsError, create_user_command
    from mediaplane.db import DatabaseError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user_command(_settings(data_dir=data_dir), email, password, role)
    except (AccountsError, DatabaseError) as exc:
        _fatal(str(exc))
    typer.echo(f"created {user.role} {user.email} (id {user.id})")


events_app = typer.Typer(help="Events: watch what happens on the platform.", no_args_is_help=True)
app.add_typer(events_app, name="events")


def _event_line(event: Event) -> str:
    """One event as a person reads it: time, type, object, and its title and status."""
    when = event.created_at.astimezone().strftime("%H:%M:%S")
    line = f"{when}  {event.type:<32} {event.object_type} {event.object_id}"
    title, status = event.data.get("title"), event.data.get("status")
    if title:
        line += f"  {title!r}"
    if status:
        line += f"  ({status})"
    return line


@events_app.command("tail")
def events_tail_cmd(
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type, e.g. 'video.asset.*' (repeat it)"),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Read as a member of this consumer group (acknowledged, shared)"),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Begin with the oldest event, not the next")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One event as JSON per line")] = False,
    data_dir: DataDir = None,
) -> None:
    """Print events as they happen, from MEDIAPLANE_EVENTS_URL (embedded: the outbox table)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from sqlalchemy.exc import SQLAlchemyError

    from mediaplane.config import redact
    from mediaplane.events import EventsError, consume

    settings = _settings(data_dir=data_dir)
    events = consume(
        settings.events_url,
        group,
        types=types,
        database_url=settings.effective_database_url,
        namespace=settings.queue_namespace,
        from_start=from_start,
    )
    try:
        for event in events:
            typer.echo(event.dumps() if as_json else _event_line(event))
    except KeyboardInterrupt:
        pass
    except EventsError as exc:
        _fatal(str(exc))
    except SQLAlchemyError as exc:  # no database yet (nothing ran `mediaplane up`), say
        _fatal(f"cannot read the outbox: {redact(str(exc).splitlines()[0])}")


analytics_app = typer.Typer(
    help="Analytics: the QoE warehouse built from the beacon lake; exports of the lake.",
    no_args_is_help=True,
)
app.add_typer(analytics_app, name="analytics")


@analytics_app.command("build")
def analytics_build_cmd(data_dir: DataDir = None) -> None:
    """Build the QoE warehouse: the lake's freshness, then dbt build (models and data tests).

    The result is <data-dir>/analytics/warehouse.duckdb; exits 1 when a check fails (and
    emits analytics.quality_failed, as the scheduled build does)."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.analytics import DbtStep, Lake, build_warehouse, report_build, warehouse_path
    from mediaplane.db import migrate
    from mediaplane.runtime import Runtime
    from mediaplane.storage import open_store

    settings = _settings(data_dir=data_dir)
    lake = Lake(open_store(settings.effective_storage_url), settings.data_path / "analytics")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} done"),
        console=console,
    ) as progress:
        task = progress.add_task("dbt: starting", total=None)

        def started(command: str, node: str) -> None:
            progress.update(task, description=f"dbt {command}: {escape(node)}")

        def finished(step: DbtStep) -> None:
            colour = "red" if step.failed else "green"
            progress.console.print(
                f"[{colour}]{escape(step.status):>8}[/] dbt {step.command} {escape(step.node)}",
                highlight=False,
            )
            progress.advance(task)

        result = build_warehouse(lake, settings.data_path, on_step=finished, on_start=started)
    if not result.ok:  # into the outbox, as the scheduled build's failure goes
        migrate(settings.effective_database_url)  # a data dir of only a lake has no tables
        report_build(Runtime.get(settings), result, "cli")
    if result.empty_lake:
        console.print("the lake has no beacon events yet: nothing to build")
        return
    if result.error is not None:
        _fatal(result.error)
    if result.failed:
        for step in result.failed:
            console.print(
                f"[red]failed:[/] {escape(step.node)}: {escape(step.message or step.status)}",
                highlight=False,
            )
        raise typer.Exit(1)
    console.print(f"warehouse built: {warehouse_path(settings.data_path)}")


@analytics_app.command("export")
def analytics_export_cmd(
    since: Annotated[
        datetime,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (UTC), e.g. 2026-11-01"),
    ],
    until: Annotated[
        datetime,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (UTC), included"),
    ],
    out: Annotated[Path, typer.Option("--out", help="The file to write")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    kind: Annotated[
        str, typer.Option("--kind", help="events (beacons) or cmcd (CMCD requests)")
    ] = "events",
    data_dir: DataDir = None,
) -> None:
    """Write a date range of the lake to one Parquet or CSV file.

    For other tools (Airbyte's file source, DuckDB, `bq load`, Snowflake COPY INTO); only
    that range's date partitions are read."""
    # imported here, not at the top: `mediaplane --help` stays fast
    from mediaplane.analytics import ExportFormat, ExportKind, Lake, export_lake
    from mediaplane.storage import open_store

    try:
        export_format, export_kind = ExportFormat(fmt.lower()), ExportKind(kind.lower())
    except ValueError:
        _fatal("--format is parquet or csv, --kind is events or cmcd")
    if until < since:
        _fatal("--to is before --from")
    settings = _settings(data_dir=data_dir)
    lake = Lake(open_store(settings.effective_storage_url), settings.data_path / "analytics")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
    ) as progress:
        reading = progress.add_task(f"{export_kind.value}: lake files", total=None)
        writing = progress.add_task(f"writing {export_format.value}", total=100, visible=False)

        def fetched(key: str) -> None:
            progress.advance(reading)

        def written(percent: float) -> None:
            progress.update(reading, total=progress.tasks[reading].completed or 1)
            progress.update(writing, visible=True, completed=percent)

        result = export_lake(
            lake,
            since.date(),
            until.date(),
            out,
            fmt=export_format,
            kind=export_kind,
            on_file=fetched,
            on_progress=written,
        )
    console.print(
        f"{result.rows} {export_kind.value} rows from {result.files} lake files: "
        f"{escape(str(out))}",
        highlight=False,
    )


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
