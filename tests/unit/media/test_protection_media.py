"""Protection as the media layer sees it: the packager's raw-key command line (keys only in
its flag file), the Common PSSH, HLS AES-128 segment encryption, and how the manifests
signal a protected presentation (and leave a clear one as it was)."""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import m3u8
import pytest

from mediaplane.media import (
    DrmBox,
    DrmUrls,
    Encryption,
    MediaError,
    PackagerInput,
    Presentation,
    Rendition,
    Segment,
    TrackKey,
    common_pssh,
    decrypt_segment,
    encrypt_segment,
    render_hls_master,
    render_hls_media,
    render_mpd,
    segment_iv,
)
from mediaplane.media import ffmpeg as ff

OUT = Path("/work/out")
SD = TrackKey("SD", bytes.fromhex("0123456789abcdef0123456789abcdef"), b"\x11" * 16)
AUDIO = TrackKey("AUDIO", bytes.fromhex("abcdefabcdefabcdefabcdefabcdefab"), b"\x22" * 16)
INPUTS = [
    PackagerInput(Path("/work/v360.mp4"), "video", "v360", frame_rate="30"),
    PackagerInput(Path("/work/audio.mp4"), "audio", "audio"),
]
URLS = DrmUrls(
    "http://origin.test/drm/clearkey?st=T&pid=P", "http://origin.test/keys/{kid}?st=T&pid=P"
)


def test_packager_encrypts_with_raw_keys_kept_out_of_the_argv() -> None:
    enc = Encryption("cbcs", {"v360": SD, "audio": AUDIO})
    keys = Path("/work/.out.keys")
    argv = ff.packager_argv(
        "/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT / "p", encryption=enc,
        key_file=keys,
    )  # fmt: skip
    assert argv[1].endswith(",drm_label=SD")
    assert argv[2].endswith(",drm_label=AUDIO")
    assert argv[3:13] == [
        "--enable_raw_key_encryption",
        f"--flagfile={keys}",
        "--protection_scheme", "cbcs",
        "--protection_systems", "CommonSystem",
        "--clear_lead", "0",
        "--segment_duration", "2",
    ]  # fmt: skip
    assert not any(SD.key.hex() in a or AUDIO.key.hex() in a for a in argv)
    flags = ff.packager_key_flags(enc.labels.values())
    assert flags == (
        f"--keys=label=SD:key_id={SD.kid.hex()}:key={SD.key.hex()},"
        f"label=AUDIO:key_id={AUDIO.kid.hex()}:key={AUDIO.key.hex()}\n"
    )
    with pytest.raises(MediaError, match="key file"):
        ff.packager_argv(
            "/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT / "p",
            encryption=enc,
        )  # fmt: skip
    with pytest.raises(MediaError, match="no content key"):
        ff.packager_argv(
            "/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT / "p",
            encryption=Encryption("cenc", {"v360": SD}), key_file=keys,
        )  # fmt: skip


def test_aes128_is_packaged_clear_by_the_packager() -> None:
    enc = Encryption("aes-128", {"v360": SD, "audio": AUDIO})
    clear = ff.packager_argv("/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT)
    assert (
        ff.packager_argv(
            "/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT, encryption=enc
        )
        == clear
    )


def test_decrypt_argv_reads_its_key_from_a_file() -> None:
    argv = ff.packager_decrypt_argv(
        "/bin/packager", Path("/w/in.mp4"), "video", Path("/w/out.mp4"), Path("/w/k")
    )
    assert argv == [
        "/bin/packager",
        "in=/w/in.mp4,stream=video,output=/w/out.mp4",
        "--enable_raw_key_decryption",
        "--flagfile=/w/k",
        "--quiet",
    ]
    assert ff.packager_key_flags([SD], labelled=False).startswith("--keys=label=:key_id=")


def test_common_pssh_is_the_packagers() -> None:
    # What Shaka Packager 3.4.2 wrote (--protection_systems CommonSystem) for these KIDs.
    shaka = base64.b64decode(
        "AAAARHBzc2gBAAAAEHfv7MCyTQKs4zweUuL7SwAAAAKrze+rze+rze+rze+rze+rASNFZ4mrze8BI0VniavN7wAAAAA="
    )
    assert common_pssh([AUDIO.kid, SD.kid]) == shaka


def test_aes128_segments_round_trip_and_refuse_a_wrong_key() -> None:
    data = b"moof" * 1000 + b"x"
    enc = encrypt_segment(data, SD.key, segment_iv(7))
    assert len(enc) % 16 == 0
    assert enc != data
    assert segment_iv(7) == (7).to_bytes(16, "big")
    assert decrypt_segment(enc, SD.key, segment_iv(7)) == data
    with pytest.raises(MediaError):
        decrypt_segment(enc, AUDIO.key, segment_iv(7))
    with pytest.raises(MediaError):
        decrypt_segment(enc[:-1], SD.key, segment_iv(7))


def _protected(scheme: str) -> Presentation:
    segs = [Segment(1, 0, 30720, 1000), Segment(2, 30720, 30720, 1000)]
    video = Rendition(
        "v360", "video", "avc1.42c01e", 15360, 800, segs, 640, 360, "30",
        kid=SD.kid.hex(), scheme=scheme,
    )  # fmt: skip
    audio = Rendition(
        "audio", "audio", "mp4a.40.2", 15360, 600, segs, sample_rate=48000, channels=2,
        kid=AUDIO.kid.hex(), scheme=scheme,
    )  # fmt: skip
    return Presentation(2.0, 2, [video, audio], protection=scheme)


NS = {
    "d": "urn:mpeg:dash:schema:mpd:2011",
    "cenc": "urn:mpeg:cenc:2013",
    "dashif": "https://dashif.org/CPS",
    "ck": "http://dashif.org/guidelines/clearKey",
}


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_mpd_signals_cenc_and_names_the_licence_server(scheme: str) -> None:
    root = ET.fromstring(render_mpd(_protected(scheme), "?st=T", URLS))
    reps = root.findall(".//d:Representation", NS)
    assert [r.get("id") for r in reps] == ["v360", "audio"]
    for rep, key in zip(reps, [SD, AUDIO], strict=True):
        cps = rep.findall("d:ContentProtection", NS)
        schemes = [c.get("schemeIdUri") for c in cps]
        assert schemes == [
            "urn:mpeg:dash:mp4protection:2011",
            "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",
            "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e",
        ]
        assert cps[0].get("value") == scheme
        assert cps[0].get(f"{{{NS['cenc']}}}default_KID") == str(uuid.UUID(bytes=key.kid))
        pssh = cps[1].find("cenc:pssh", NS)
        assert pssh is not None
        assert base64.b64decode(pssh.text or "") == common_pssh([key.kid])
        assert cps[2].findtext("dashif:Laurl", namespaces=NS) == URLS.licence_url
        laurl = cps[2].find("ck:Laurl", NS)
        assert laurl is not None
        assert laurl.get("Lic_type") == "EME-1.0"
        assert laurl.text == URLS.licence_url


def test_clear_presentations_render_as_before() -> None:
    p = _protected("cenc")
    clear = replace(
        p,
        renditions=[replace(r, kid=None, scheme=None) for r in p.renditions],
        protection=None,
    )
    mpd = render_mpd(clear, "", URLS)
    assert "ContentProtection" not in mpd
    assert mpd == render_mpd(clear)
    assert "KEY" not in render_hls_master(clear, "", URLS)
    assert "KEY" not in render_hls_media(clear.renditions[0], 2, "", drm=URLS)


def test_hls_aes128_names_the_key_after_the_clear_init_with_an_iv_per_segment() -> None:
    r = _protected("aes-128").renditions[0]
    text = render_hls_media(r, 2, "?st=T", drm=URLS)
    lines = text.splitlines()
    assert lines.index('#EXT-X-MAP:URI="init.mp4?st=T"') < next(
        i for i, ln in enumerate(lines) if ln.startswith("#EXT-X-KEY")
    )
    parsed = m3u8.loads(text)
    uri = f"http://origin.test/keys/{SD.kid.hex()}?st=T&pid=P"
    assert [(k.method, k.uri, k.iv) for k in parsed.keys] == [
        ("AES-128", uri, "0x" + segment_iv(1).hex().upper()),
        ("AES-128", uri, "0x" + segment_iv(2).hex().upper()),
    ]
    assert "SESSION-KEY" not in render_hls_master(_protected("aes-128"), "?st=T", URLS)


def test_hls_cbcs_declares_sample_aes_keys() -> None:
    p = _protected("cbcs")
    master = render_hls_master(p, "?st=T", URLS)
    session = [ln for ln in master.splitlines() if ln.startswith("#EXT-X-SESSION-KEY")]
    assert len(session) == 2
    assert all('METHOD=SAMPLE-AES,URI="http://origin.test/drm/clearkey' in ln for ln in session)
    assert all('KEYFORMAT="org.w3.clearkey"' in ln for ln in session)
    media = render_hls_media(p.renditions[0], 2, "", drm=URLS)
    assert f"KEYID=0x{SD.kid.hex().upper()}" in media
    assert "METHOD=SAMPLE-AES," in media
    cenc = render_hls_media(_protected("cenc").renditions[0], 2, "", drm=URLS)
    assert "METHOD=SAMPLE-AES-CTR," in cenc


WIDEVINE = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"


def _widevine_box(kid: bytes) -> bytes:
    data = b"\x12\x10" + kid  # WidevinePsshData.key_id
    body = b"\0\0\0\0" + uuid.UUID(WIDEVINE).bytes + len(data).to_bytes(4, "big") + data
    return (8 + len(body)).to_bytes(4, "big") + b"pssh" + body


def test_packager_argv_carries_a_key_providers_pssh_beside_the_common_one() -> None:
    box = _widevine_box(SD.kid)
    enc = Encryption("cenc", {"v360": SD, "audio": AUDIO}, (DrmBox(WIDEVINE, SD.kid, box),))
    argv = ff.packager_argv(
        "/bin/packager", INPUTS, OUT, segment_seconds=2, mpd_output=OUT / "p", encryption=enc,
        key_file=Path("/work/.k"),
    )  # fmt: skip
    assert "--protection_systems" not in argv
    boxes = bytes.fromhex(argv[argv.index("--pssh") + 1])
    assert boxes == common_pssh(sorted([SD.kid, AUDIO.kid])) + box


def test_real_packager_writes_the_key_providers_pssh_and_the_mpd_signals_it(
    media_dir: Path, tmp_path: Path
) -> None:
    """Shaka Packager (the pinned binary) with a Widevine box from a key provider: the init
    segment holds it beside the Common PSSH, and the MPD names the system with it."""
    from mediaplane.clips import Clip, picture
    from mediaplane.config import Settings
    from mediaplane.media import PackagingOptions, ShakaPackager, Toolchain

    clip = Clip(seconds=2, video=picture("320x180", 30), audio=()).make(
        media_dir / "pssh-320x180-2s.mp4"
    )
    tools = Toolchain.discover(Settings(data_dir=tmp_path))
    box = _widevine_box(SD.kid)
    enc = Encryption("cenc", {"v": SD}, (DrmBox(WIDEVINE, SD.kid, box),))
    inputs = [PackagerInput(clip, "video", "v", frame_rate="30")]
    pres = ShakaPackager(tools.packager).package(inputs, tmp_path / "out", PackagingOptions(), enc)
    init = (tmp_path / "out" / "v" / "init.mp4").read_bytes()
    assert box in init and common_pssh([SD.kid]) in init
    pres = Presentation.from_dict(pres.to_dict())  # as the database keeps it
    root = ET.fromstring(render_mpd(pres, "?st=T", URLS))
    wv = [
        c
        for c in root.findall(".//d:ContentProtection", NS)
        if c.get("schemeIdUri") == f"urn:uuid:{WIDEVINE}"
    ]
    assert len(wv) == 1
    assert base64.b64decode(wv[0].findtext("cenc:pssh", namespaces=NS) or "") == box
