"""URL imports from a local HTTP server (allow-listed), redirects re-checked on every hop;
DNS rebinding, the size limit counted as bytes arrive, and one deadline for the import."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.ingest import FetchLimits, ImportTimedOut, UrlRefused, fetch_url
from tests.support import Backend, Server, free_port, make_clip, start_server


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect-v6"):
            self.send_response(302)
            self.send_header("Location", f"http://[::1]:{self.server.server_port}/clip.mp4")
            self.end_headers()
            return
        if self.path.startswith("/endless"):  # chunked, no Content-Length, past any limit
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"\0" * 65536
            try:
                for _ in range(128):  # 8 MiB
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the importer stopped reading at its limit
            self.close_connection = True
            return
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/clip.mp4")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def media_site() -> Iterator[str]:
    clip = make_clip("import-1s.mp4", seconds=1, size="426x240")
    root = clip.parent / "site"
    root.mkdir(exist_ok=True)
    (root / "clip.mp4").write_bytes(clip.read_bytes())
    (root / "broken.mp4").write_bytes(b"not a video")
    port = free_port()
    handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def importer(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The operator allow-lists 127.0.0.1 only: [::1] stays refused. A 2 MiB upload limit
    # holds for imports too (import_max_bytes is 20 GiB).
    s = start_server(
        tmp_path_factory.mktemp("importer"),
        backend,
        import_allow="127.0.0.1/32",
        max_upload_bytes=str(2 << 20),
    )
    yield s
    s.stop()


def _create(server: Server, url: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/api/v1/assets", json={"input": {"url": url}, "title": "imported"})
    assert r.status_code == 201, r.text
    return server.wait(r.json()["data"]["id"], timeout=120)


def test_import_ready(importer: Server, media_site: str) -> None:
    asset = _create(importer, media_site + "/clip.mp4")
    assert asset["status"] == "ready", asset
    assert asset["title"] == "imported"


def test_import_follows_allowed_redirect(importer: Server, media_site: str) -> None:
    assert _create(importer, media_site + "/redirect")["status"] == "ready"


def test_import_redirect_to_refused_address(importer: Server, media_site: str) -> None:
    asset = _create(importer, media_site + "/redirect-v6")
    assert asset["status"] == "errored"
    assert "private or reserved address" in " ".join(asset["errors"]["messages"])


def test_import_404_and_junk(importer: Server, media_site: str) -> None:
    missing = _create(importer, media_site + "/nope.mp4")
    assert missing["status"] == "errored"
    assert "HTTP 404" in " ".join(missing["errors"]["messages"])
    junk = _create(importer, media_site + "/broken.mp4")
    assert junk["status"] == "errored"
    assert "not a video" in " ".join(junk["errors"]["messages"])


def test_import_past_the_limit_stores_nothing(importer: Server, media_site: str) -> None:
    """A chunked response (no Content-Length to trust) is counted as it arrives and cut at
    the upload limit: the asset errors, no source object, no download left in tmp."""
    asset = _create(importer, media_site + "/endless")
    assert asset["status"] == "errored", asset
    message = " ".join(asset["errors"]["messages"])
    assert "larger than the import limit" in message and str(2 << 20) in message
    assert not importer.store().exists(f"assets/{asset['id']}/source")
    tmp = importer.data_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_cli_ingest(importer: Server, tmp_path: Path) -> None:
    """`mediaplane ingest` uploads, waits, and prints the three playback URLs."""
    import subprocess
    import sys

    clip = make_clip("cli-1s.mp4", seconds=1, size="426x240")
    env = {**importer.env, "MEDIAPLANE_TOKEN": importer.token}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mediaplane",
            "ingest",
            str(clip),
            "--title",
            "From the CLI",
            "--server",
            importer.url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # The bar reads "processing" until the ladder is planned, then "renditions n/m".
    assert "uploading" in out.stderr and "renditions" in out.stderr
    lines = dict(line.split(":", 1) for line in out.stdout.strip().splitlines())
    assert lines["HLS"].strip().endswith("/master.m3u8")
    assert lines["DASH"].strip().endswith("/manifest.mpd")
    assert "/watch/" in lines["Watch"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mediaplane",
            "ingest",
            str(clip),
            "--server",
            importer.url,
            "--token",
            "wrong",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "not valid" in bad.stderr


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``body``; records each request's path and Host header."""

    body = b""
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Host", "")))
        if self.path.startswith("/hop"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/hop"))
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(host: str, port: int, body: bytes) -> tuple[Any, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (_Recorder,), {"body": body, "seen": seen})
    httpd = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, seen


@pytest.fixture
def two_hosts() -> Iterator[tuple[int, list[tuple[str, str]], list[tuple[str, str]]]]:
    """The media host on 127.0.0.1 and an internal service on 127.0.0.2, same port."""
    port = free_port()
    media, media_seen = _serve("127.0.0.1", port, b"the media file")
    internal, internal_seen = _serve("127.0.0.2", port, b"internal secrets")
    yield port, media_seen, internal_seen
    media.shutdown()
    internal.shutdown()


def _rebinding(monkeypatch: pytest.MonkeyPatch, name: str, *answers: str) -> list[str]:
    """The process's resolver answers ``name`` with ``answers[0]`` the first time and
    ``answers[-1]`` every time after (a DNS server with a zero TTL doing rebinding)."""
    real = socket.getaddrinfo
    given: list[str] = []

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        addr = answers[min(len(given), len(answers) - 1)]
        given.append(addr)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, int(port or 80)))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return given


LIMITS = FetchLimits(allow=("127.0.0.1/32",), max_bytes=1 << 20, timeout=30, max_redirects=3)


def test_rebinding_never_reaches_the_second_address(
    two_hosts: tuple[int, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The name is checked once (127.0.0.1, allowed) and that address is the one connected
    to: the rebound answer (127.0.0.2, not allowed) is never used, and the request still
    names the host."""
    port, media_seen, internal_seen = two_hosts
    given = _rebinding(monkeypatch, "media.rebind.test", "127.0.0.1", "127.0.0.2")
    size, _ = fetch_url(f"http://media.rebind.test:{port}/clip.mp4", tmp_path / "d", LIMITS)
    assert (tmp_path / "d").read_bytes() == b"the media file" and size == 14
    assert internal_seen == []
    assert media_seen == [("/clip.mp4", f"media.rebind.test:{port}")]
    assert given == ["127.0.0.1"]  # resolved once


def test_rebinding_on_a_redirect_hop(
    two_hosts: tuple[int, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A hop to another name is resolved and checked on its own; once refused, nothing
    is sent to it."""
    port, media_seen, internal_seen = two_hosts
    _rebinding(monkeypatch, "evil.rebind.test", "127.0.0.2")
    with pytest.raises(UrlRefused, match="127.0.0.2"):
        fetch_url(
            f"http://127.0.0.1:{port}/hophttp://evil.rebind.test:{port}/x",
            tmp_path / "d",
            LIMITS,
        )
    assert internal_seen == []
    assert [path for path, _ in media_seen] == [f"/hophttp://evil.rebind.test:{port}/x"]


def test_first_answer_refused_sends_nothing(
    two_hosts: tuple[int, list[Any], list[Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port, media_seen, internal_seen = two_hosts
    _rebinding(monkeypatch, "media.rebind.test", "127.0.0.2", "127.0.0.1")
    with pytest.raises(UrlRefused, match="private or reserved"):
        fetch_url(f"http://media.rebind.test:{port}/clip.mp4", tmp_path / "d", LIMITS)
    assert internal_seen == [] and media_seen == []


@pytest.fixture
def slow_site() -> Iterator[str]:
    """/drip sends a byte every 50 ms for a minute; /stall sends headers and waits."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            if b"/stall" in request.split(b"\r\n", 1)[0]:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")
                stop.wait(60)
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1200\r\n\r\n")
            for _ in range(1200):
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_import_timeout_bounds_the_whole_import(slow_site: str, path: str, tmp_path: Path) -> None:
    """import_timeout_seconds is one deadline for the import: a server that drips a byte
    now and then (never idle long enough for a read timeout) or stalls is cut off."""
    limits = FetchLimits(allow=("127.0.0.1/32",), timeout=1.5)
    with pytest.raises(ImportTimedOut, match="import time limit"):
        fetch_url(slow_site + path, tmp_path / "d", limits)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for media.rebind.test (no CA of ours is trusted)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=media.rebind.test",
            "-addext",
            "subjectAltName=DNS:media.rebind.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_to_the_pinned_address_still_names_the_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """https to a pinned address: the TLS handshake sends the name (SNI) and the
    certificate is checked against the name, not the address (here it is self-signed, so
    verification fails: no byte of the request is sent)."""
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    received.append(tls.recv(65536))
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _rebinding(monkeypatch, "media.rebind.test", "127.0.0.1", "127.0.0.2")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_url(f"https://media.rebind.test:{port}/clip.mp4", tmp_path / "d", LIMITS)
    thread.join(10)
    listener.close()
    assert names == ["media.rebind.test"]
    assert received == []
