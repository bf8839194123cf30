"""One lavfi clip generator: ``mediaplane.clips`` makes every generated clip (the demo's, the
tests' and the benchmarks'); no other module writes an ffmpeg ``-f lavfi`` input itself."""

from __future__ import annotations

import ast
from pathlib import Path

from mediaplane.clips import Clip, picture

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "src" / "mediaplane" / "clips.py"


def _lavfi_inputs(path: Path) -> list[int]:
    """Lines of ``path`` where a list or tuple literal holds ``"-f", "lavfi"``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if any(a == "-f" and b == "lavfi" for a, b in zip(items, items[1:], strict=False)):
                lines.append(node.lineno)
    return lines


def test_no_lavfi_input_outside_the_generator() -> None:
    sources = [
        p
        for tree in ("src", "tests", "bench")
        for p in sorted((ROOT / tree).rglob("*.py"))
        if p not in (GENERATOR, Path(__file__).resolve())  # this file: its argv test
    ]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sources for n in _lavfi_inputs(p)]
    assert not found, "make these clips with mediaplane.clips.Clip: " + ", ".join(found)
    assert _lavfi_inputs(GENERATOR)  # the check sees the one place that writes them


def test_clip_argv_one_input_per_source_then_the_output_options(tmp_path: Path) -> None:
    clip = Clip(seconds=1, video=picture("64x48", 25), audio=("sine=frequency=1000",))
    out = tmp_path / "c.mp4"
    assert clip.argv(out) == [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-t", "1", "-i", "testsrc2=size=64x48:rate=25",
        "-f", "lavfi", "-t", "1", "-i", "sine=frequency=1000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(out),
    ]  # fmt: skip
    silent = Clip(seconds=1, video=picture("64x48", 25), audio=(), codecs=("-c:v", "mpeg4"))
    assert silent.argv(out)[6:] == [
        "-f", "lavfi", "-t", "1", "-i", "testsrc2=size=64x48:rate=25", "-c:v", "mpeg4", str(out)
    ]  # fmt: skip
