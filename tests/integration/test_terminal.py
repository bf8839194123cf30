"""What a person sees: `mediaplane up --demo` on a terminal (readable lines, one ready block,
a line when the demo plays and where), in a file (JSON lines only), and
`mediaplane ingest --wait` (the whole ladder)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import ROOT, Server, free_port, make_clip

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DEMO_WORK = re.compile(r"\] (?:job|asset|fingerprint)\.[a-z_]+\s")
DEMO_PLAYS = re.compile(r"The demo plays now: (\S+)\s")
BANNER = ("[queues]", ".> transport", "-------------- ", "[tasks]", "SecurityWarning")


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAPLANE_")}
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        "MEDIAPLANE_HOST": "127.0.0.1",
        "MEDIAPLANE_PORT": str(port),
        "MEDIAPLANE_DATA_DIR": str(data_dir),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_up_on_a_terminal_prints_readable_lines_and_one_ready_block(tmp_path: Path) -> None:
    """`up --demo` on a pty: readable lines, one ready block, then a line saying the demo
    plays now and its watch URL (which answers, and whose master plays)."""
    port = free_port()
    env = _env(tmp_path / "data", port) | {"MEDIAPLANE_DATABSE_URL": "postgresql://typo/x"}
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediaplane", "up", "--demo"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(follower)
    raw = b""
    watch: str | None = None
    try:
        deadline = time.monotonic() + 180
        while watch is None:
            assert time.monotonic() < deadline, raw.decode(errors="replace")
            assert proc.poll() is None, raw.decode(errors="replace")
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    raw += os.read(leader, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
            plays = DEMO_PLAYS.search(ANSI.sub("", raw.decode(errors="replace")))
            watch = plays.group(1) if plays else None
        assert watch is not None, raw.decode(errors="replace")
        # Asked while `up` still serves: the demo's page and its HLS master.
        assert httpx.get(watch).status_code == 200, watch
        master = httpx.get(watch.replace("/watch/", "/play/") + "/master.m3u8")
        assert master.status_code == 200 and master.text.startswith("#EXTM3U"), master.text
    finally:
        _stop(proc)
        os.close(leader)
    text = raw.decode(errors="replace")
    assert ANSI.search(text), "a terminal gets colours"
    lines = ANSI.sub("", text).replace("\r", "").splitlines()
    end = next(i for i, line in enumerate(lines) if "Stop with Ctrl-C" in line)
    screen = lines[: end + 1]
    # The URL comes early: a few lines before the block, besides the demo's own job lines.
    assert len([ln for ln in screen if not DEMO_WORK.search(ln)]) < 16, "\n".join(screen)
    assert not [ln for ln in screen if ln.lstrip().startswith("{")], "\n".join(screen)
    assert not [ln for ln in screen if any(b in ln for b in BANNER)], "\n".join(screen)
    assert not [ln for ln in screen if "Running upgrade" in ln], "\n".join(screen)
    typo = [ln for ln in screen if "MEDIAPLANE_DATABSE_URL" in ln]
    assert typo and "did you mean MEDIAPLANE_DATABASE_URL?" in typo[0], "\n".join(screen)
    block = "\n".join(screen[screen.index(next(ln for ln in screen if "is ready" in ln)) :])
    data = str((tmp_path / "data").resolve())
    assert f"http://127.0.0.1:{port}" in block
    assert f"http://127.0.0.1:{port}/upload" in block
    assert data in block
    assert f"{data}/admin-token" in block
    assert "mediaplane ingest " in block
    demo = [ln for ln in screen if ln.lstrip().startswith("Demo:")]
    assert demo and "a line follows when it plays" in demo[0], "\n".join(screen)
    assert watch.startswith(f"http://127.0.0.1:{port}/watch/"), watch
    assert text.index("Stop with Ctrl-C") < text.index("The demo plays now")


def test_up_into_a_file_writes_only_json_lines(sqlite_server: Server) -> None:
    """The session's embedded server logs to a file: every line it wrote so far is JSON."""
    server = sqlite_server
    r = httpx.get(
        server.url + "/api/v1/assets",
        headers={"Authorization": f"Bearer {server.token}", "X-Request-Id": "terminal-1"},
    )
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while '"terminal-1"' not in server.log_path.read_text():  # the access line follows
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    text = server.log_path.read_text()
    assert "\x1b" not in text
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    ready = [e for e in events if str(e["event"]).endswith("is ready.")]
    assert len(ready) == 1 and ready[0]["url"] == server.url, ready
    assert ready[0]["data_dir"] == str(server.data_dir.resolve())
    assert any(e.get("request_id") == "terminal-1" for e in events)
    assert not any(str(e.get("logger", "")).startswith(("alembic", "celery.app")) for e in events)


def test_ingest_wait_returns_when_every_rendition_is_ready(
    sqlite_server: Server, tmp_path: Path
) -> None:
    # 8 s at 720p: the asset is ready (its preview plays) long before the ladder is done.
    clip = make_clip("terminal-720p-8s.mp4", seconds=8, size="1280x720")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAPLANE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "mediaplane", "ingest", str(clip), "--server", sqlite_server.url],
        env=env | {"MEDIAPLANE_TOKEN": sqlite_server.token},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    asset_id = re.search(r"asset (\w+) created", done.stderr)
    assert asset_id, done.stderr
    with sqlite_server.client() as c:
        asset = c.get(f"/api/v1/assets/{asset_id.group(1)}").json()["data"]
    assert asset["status"] == "ready"
    assert asset["progress"] == 100
    renditions = asset["renditions"]
    assert len(renditions) > 1 and all(r["status"] == "ready" for r in renditions), renditions
    assert f"Ready: {len(renditions)} renditions" in done.stdout
    assert "100%" in done.stderr
