"""URL imports from a local HTTP server (allow-listed), redirects re-checked on every hop."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Backend, Server, free_port, make_clip, start_server


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect-v6"):
            self.send_response(302)
            self.send_header("Location", f"http://[::1]:{self.server.server_port}/clip.mp4")
            self.end_headers()
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
    # The operator allow-lists 127.0.0.1 only: [::1] stays refused.
    s = start_server(tmp_path_factory.mktemp("importer"), backend, import_allow="127.0.0.1/32")
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
    assert "uploading" in out.stderr and "processing" in out.stderr
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
