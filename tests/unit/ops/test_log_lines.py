"""Every log line is whole: structlog and stdlib logging (Celery, Alembic) writing from two
threads at once never put two JSON objects on one line, nor split one."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import logging, threading
import structlog
from mediaplane.ops import configure_logging

configure_logging("INFO", "json")
log, std = structlog.get_logger("t"), logging.getLogger("celery.t")

def ours():
    for i in range(5000):
        log.info("structlog line", i=i, pad="x" * 150)

def theirs():
    for i in range(5000):
        std.warning("stdlib line %d %s", i, "y" * 150)

threads = [threading.Thread(target=ours), threading.Thread(target=theirs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_two_threads_logging_at_once_write_whole_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 10_000
    broken = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken.append(line)
    assert not broken, broken[:3]
