"""Packaging: encoded MP4 tracks in, one set of CMAF segments plus a Presentation out.

One interface (:class:`Packager`) so that encryption (CENC/cbcs, later) rides the same step.
The packager's command line is built in :mod:`.ffmpeg` (:func:`~.ffmpeg.packager_argv`); the
MPD it writes is read with the :class:`~._dash.MPD` model.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from . import ffmpeg
from ._dash import MPD, AdaptationSet, Representation, parse_iso_duration
from ._errors import ManifestError, MediaError
from ._presentation import AudioRole, Presentation, Rendition, Segment
from ._process import ManagedProcess
from ._protection import Encryption, TrackKey, encrypt_segments

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

INTERNAL_MPD = "packager.mpd"
#: The packager's own MPD is ours, but still bounded like any MPD (a 24-hour ladder is ~2 MB).
MAX_PACKAGER_MPD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PackagerInput:
    """One elementary track to package: ``rendition_id`` names its output folder."""

    path: Path
    kind: Literal["video", "audio"]
    rendition_id: str
    frame_rate: str | None = None
    language: str | None = None  # BCP 47; also written into the track (mdhd)
    #: Audio: the label, default flag and role the rendition carries into the manifests.
    name: str | None = None
    default: bool = False
    role: AudioRole | None = None


@dataclass(frozen=True)
class PackagingOptions:
    segment_seconds: int = 2
    timeout_seconds: float = 600.0
    memory_bytes: int = 4 * 1024**3


class Packager(Protocol):
    def package(
        self,
        inputs: Sequence[PackagerInput],
        out_dir: Path,
        options: PackagingOptions,
        encryption: Encryption | None = None,
    ) -> Presentation: ...


class ShakaPackager:
    """Shaka Packager writing ``<rendition>/init.mp4`` and ``<rendition>/<n>.m4s``."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def argv(
        self,
        inputs: Sequence[PackagerInput],
        out_dir: Path,
        options: PackagingOptions,
        encryption: Encryption | None = None,
        mpd_name: str = INTERNAL_MPD,
    ) -> list[str]:
        """One packager run over ``inputs``, writing its MPD as ``mpd_name`` in ``out_dir``."""
        return ffmpeg.packager_argv(
            self.binary,
            inputs,
            out_dir,
            segment_seconds=options.segment_seconds,
            mpd_output=out_dir / mpd_name,
            encryption=encryption,
            key_file=_key_file(out_dir) if encryption is not None else None,
        )

    def runs(
        self,
        inputs: Sequence[PackagerInput],
        out_dir: Path,
        options: PackagingOptions,
        encryption: Encryption | None = None,
    ) -> list[tuple[list[str], Path]]:
        """One packager run per input: (argv, the MPD it writes). The renditions are
        independent (each is segmented on its own keyframes and times, the same bytes a
        single run writes), so they can run side by side on the cores."""
        names = [f"packager-{i}.mpd" for i in range(len(inputs))]
        return [
            (self.argv([inp], out_dir, options, encryption, name), out_dir / name)
            for inp, name in zip(inputs, names, strict=True)
        ]

    def package(
        self,
        inputs: Sequence[PackagerInput],
        out_dir: Path,
        options: PackagingOptions,
        encryption: Encryption | None = None,
    ) -> Presentation:
        """Package ``inputs``; with ``encryption``, every rendition is encrypted with its
        key (cenc/cbcs by the packager, AES-128 segments by us after it) and says its KID.
        Clear and protected packaging are this one path.

        Each rendition is its own packager process, up to one per usable core at a time
        (the packager's remux is the cost, and one process keeps about one core busy);
        the first failure stops the others and is raised."""
        # Refuses unusable paths (and renditions without a key) before any work.
        runs = self.runs(inputs, out_dir, options, encryption)
        out_dir.mkdir(parents=True, exist_ok=True)
        flags = None
        if encryption is not None and encryption.scheme != "aes-128":
            flags = ffmpeg.packager_key_flags(encryption.labels.values())
        with _keys_in_file(_key_file(out_dir), flags):
            _run_side_by_side([argv for argv, _ in runs], options)
        parts = []
        for (_, mpd), inp in zip(runs, inputs, strict=True):
            parts.append(read_packager_mpd(mpd, out_dir, [inp], options))
            mpd.unlink()
        presentation = _joined(parts, inputs, options)
        if encryption is None:
            return presentation
        return _protected(presentation, out_dir, encryption)

    def decrypt(
        self, source: Path, kind: str, output: Path, key: TrackKey, options: PackagingOptions
    ) -> Path:
        """A clear MP4 of one cenc/cbcs-encrypted track (to package it again)."""
        key_file = _key_file(output)
        argv = ffmpeg.packager_decrypt_argv(self.binary, source, kind, output, key_file)
        with _keys_in_file(key_file, ffmpeg.packager_key_flags([key], labelled=False)):
            ManagedProcess(
                argv,
                timeout=options.timeout_seconds,
                memory_bytes=options.memory_bytes,
                name="packager",
            ).run()
        return output


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _run_side_by_side(argvs: Sequence[list[str]], options: PackagingOptions) -> None:
    """Run the packager ``argvs``, up to :func:`usable_cores` at once, all within the one
    ``options.timeout_seconds`` (a run that waited for a core has what is left of it); on
    the first failure the others are killed (or never started) and that failure raised."""
    deadline = time.monotonic() + options.timeout_seconds
    stop = threading.Event()
    lock = threading.Lock()
    started: list[ManagedProcess] = []

    def run(argv: list[str]) -> None:
        with lock:
            if stop.is_set():
                return
            proc = ManagedProcess(
                argv,
                timeout=max(1.0, deadline - time.monotonic()),
                memory_bytes=options.memory_bytes,
                name="packager",
            )
            started.append(proc)
        proc.run()

    workers = min(len(argvs), usable_cores())
    if workers <= 1:
        for argv in argvs:
            run(argv)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="packager") as pool:
        futures = [pool.submit(run, argv) for argv in argvs]
        try:
            for done in as_completed(futures):
                done.result()
        except BaseException:
            with lock:
                stop.set()
                running = list(started)
            for proc in running:
                proc.cancel()
            raise


def _joined(
    parts: Sequence[Presentation], inputs: Sequence[PackagerInput], options: PackagingOptions
) -> Presentation:
    """The runs' presentations as one, in the order one packager run lists them: grouped
    by track type and language in the order each first appears in ``inputs``, then in
    input order."""
    first: dict[tuple[str, str | None], int] = {}
    for i, inp in enumerate(inputs):
        first.setdefault((inp.kind, inp.language), i)
    order = {inp.rendition_id: (first[(inp.kind, inp.language)], i) for i, inp in enumerate(inputs)}
    renditions = sorted((r for p in parts for r in p.renditions), key=lambda r: order[r.id])
    return Presentation(
        duration=max((p.duration for p in parts), default=0.0),
        segment_seconds=options.segment_seconds,
        renditions=renditions,
    )


def _key_file(beside: Path) -> Path:
    """Where the raw keys of a packager run are, beside (not in) its output."""
    return beside.parent / f".{beside.name}.keys"


@contextlib.contextmanager
def _keys_in_file(path: Path, text: str | None) -> Iterator[None]:
    """``text`` in a file only its owner reads, for the run's length (keys stay out of
    argv and logs); none is written for a clear run (``text`` None)."""
    if text is None:
        yield
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        yield
    finally:
        path.unlink(missing_ok=True)


def _protected(p: Presentation, out_dir: Path, encryption: Encryption) -> Presentation:
    """The packaged presentation with each rendition's KID, its AES-128 segments encrypted
    in place (and their sizes measured again: padding adds up to 16 bytes)."""
    renditions = []
    for r in p.renditions:
        key = encryption.key_for(r.id)
        if encryption.scheme == "aes-128":
            folder = out_dir / r.id
            encrypt_segments(folder, key.key, [s.number for s in r.segments])
            segments = [
                replace(s, size=(folder / f"{s.number}.m4s").stat().st_size) for s in r.segments
            ]
            r = replace(r, segments=segments)
        systems = tuple(
            (b.system_id, base64.b64encode(b.pssh).decode())
            for b in encryption.systems
            if b.kid == key.kid
        )
        renditions.append(
            replace(r, kid=key.kid.hex(), scheme=encryption.scheme, drm_systems=systems)
        )
    return replace(p, renditions=renditions, protection=encryption.scheme)


def _channels(rep: Representation, aset: AdaptationSet) -> int | None:
    found = rep.audio_channels or aset.audio_channels
    return int(found[0].value or "2") if found else None


def _rendition(
    rep: Representation, aset: AdaptationSet, out_dir: Path, by_id: dict[str, PackagerInput]
) -> Rendition:
    """One packaged track: what the MPD says of it, and its segment sizes on disk.

    Attributes common to every representation may sit on the AdaptationSet (Shaka puts a
    lone video representation's size there), so each falls back to the set's.
    """
    st = rep.segment_template or aset.segment_template
    if st is None:
        raise MediaError("packager MPD has no SegmentTemplate")
    rid = Path(st.initialization or "").parent.name
    inp = by_id.get(rid)
    if inp is None:
        raise MediaError(f"packager MPD names an output we did not ask for: {rid!r}")
    segments = [
        Segment(number=n, start=t, duration=d, size=(out_dir / rid / f"{n}.m4s").stat().st_size)
        for n, t, d in st.numbers()
    ]
    rate = rep.audio_sampling_rate or aset.audio_sampling_rate
    return Rendition(
        id=rid,
        kind=inp.kind,
        codecs=rep.codecs or aset.codecs or "",
        timescale=st.timescale or 1,
        init_size=(out_dir / rid / "init.mp4").stat().st_size,
        segments=segments,
        width=rep.width if rep.width is not None else aset.width,
        height=rep.height if rep.height is not None else aset.height,
        frame_rate=inp.frame_rate,
        sample_rate=int(rate) if rate and rate.isdigit() else None,
        channels=_channels(rep, aset),
        language=inp.language,
        name=inp.name,
        default=inp.default,
        role=inp.role,
    )


def read_packager_mpd(
    mpd_path: Path, out_dir: Path, inputs: Sequence[PackagerInput], options: PackagingOptions
) -> Presentation:
    """Build our Presentation from the packager's MPD and the segment files on disk."""
    try:
        mpd = MPD.parse(mpd_path.read_bytes(), max_bytes=MAX_PACKAGER_MPD_BYTES)
    except ManifestError as exc:
        raise MediaError(f"the packager wrote an MPD we cannot read: {exc}") from exc
    by_id = {i.rendition_id: i for i in inputs}
    renditions = [
        _rendition(rep, aset, out_dir, by_id)
        for period in mpd.periods
        for aset in period.adaptation_sets
        for rep in aset.representations
    ]
    missing = set(by_id) - {r.id for r in renditions}
    if missing:
        raise MediaError(f"packager produced no output for {sorted(missing)}")
    longest = max((r.duration for r in renditions), default=0.0)
    declared = mpd.media_presentation_duration
    duration = (parse_iso_duration(declared) if declared else 0.0) or longest
    return Presentation(
        duration=duration, segment_seconds=options.segment_seconds, renditions=renditions
    )
