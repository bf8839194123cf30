"""Content protection against a real server: the policy on the asset API, re-packaging without
re-encoding (decoded frames identical through clear → cenc → cbcs → aes-128, decrypted with
ffmpeg ``-decryption_key`` and keys from our own licence server and key URL), the licence
and key refusals (no/expired/forged token, unknown KID, another asset's KID, an entitlement
that no longer holds, malformed requests), the audit log, and a malformed stored MP4 that
leaves the asset errored with a reason in words."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mediaplane.catalog import Asset
from mediaplane.config import Settings
from mediaplane.db import utcnow
from mediaplane.media import decrypt_segment, segment_iv
from mediaplane.pipeline import retire_replaced_renditions
from mediaplane.runtime import Runtime
from tests.support import Server, make_clip, until

if TYPE_CHECKING:
    from pathlib import Path

CLIP = "protection-2s.mp4"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _pid(asset: dict[str, Any]) -> str:
    return str(asset["playback_ids"][0]["id"])


def _upload(server: Server, path: Path, **data: str) -> dict[str, Any]:
    with server.client() as c, path.open("rb") as f:
        r = c.post("/api/v1/assets", files={"file": ("clip.mp4", f)}, data={"title": "p", **data})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


def _patch(server: Server, asset_id: str, **body: Any) -> httpx.Response:
    with server.client() as c:
        return c.patch(f"/api/v1/assets/{asset_id}", json=body)


def _repackaged(server: Server, asset_id: str, protection: str) -> dict[str, Any]:
    """PATCH the policy and wait until the new renditions are listed (or the asset errs)."""
    with server.client() as c:
        before = {
            r["id"]
            for r in c.get(f"/api/v1/assets/{asset_id}").json()["data"]["tracks"][0]["renditions"]
        }
    r = _patch(server, asset_id, protection=protection)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["protection"] == protection

    def done() -> dict[str, Any] | None:
        with server.client() as c:
            a: dict[str, Any] = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
        if a["status"] == "errored":
            return a
        ids = {r["id"] for r in a["tracks"][0]["renditions"]}
        return a if ids and not ids & before else None

    return dict(until("re-packaged", done, timeout=60))


def _carry(server: Server, pid: str, rid: str | None = None) -> str:
    """The ``?st=`` carry token a master playlist admission gives, once the master lists
    rendition ``rid`` (the origin's lookup cache, a second here, may hold the old one)."""

    def token() -> str | None:
        m = httpx.get(f"{server.url}/play/{pid}/master.m3u8")
        assert m.status_code == 200, m.text
        found = re.search(r"\?st=([A-Za-z0-9._-]+)", m.text)
        if found is None or (rid is not None and f"{rid}/media.m3u8?st=" not in m.text):
            return None
        return found.group(1)

    return str(until("the master playlist of the new renditions", token, timeout=10))


def _top_video(server: Server, asset_id: str) -> str:
    with server.client() as c:
        a = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
    return str(a["tracks"][0]["renditions"][-1]["id"])


def _rendition_bytes(server: Server, pid: str, rid: str, st: str) -> tuple[bytes, list[bytes]]:
    """The init segment and media segments of one rendition, from the origin."""
    q = f"?st={st}" if st else ""
    playlist = httpx.get(f"{server.url}/play/{pid}/{rid}/media.m3u8{q}")
    assert playlist.status_code == 200, playlist.text
    names = [
        ln.split("?")[0] for ln in playlist.text.splitlines() if ln.endswith(q) and ".m4s" in ln
    ]
    init = httpx.get(f"{server.url}/play/{pid}/{rid}/init.mp4{q}")
    assert init.status_code == 200
    segs = []
    for n in names:
        r = httpx.get(f"{server.url}/play/{pid}/{rid}/{n}{q}")
        assert r.status_code == 200, r.text
        segs.append(r.content)
    return init.content, segs


def _frames_md5(data: bytes, tmp: Path, key: bytes | None = None) -> str:
    """MD5 of the decoded video frames of a fragmented MP4 (``-decryption_key`` if given)."""
    path = tmp / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(data)
    argv = ["ffmpeg", "-v", "error", "-nostdin"]
    if key is not None:
        argv += ["-decryption_key", key.hex()]
    argv += ["-i", str(path), "-map", "0:v", "-f", "md5", "-"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _init_kid(init: bytes) -> bytes:
    """The default KID of an encrypted init segment (its ``tenc`` box)."""
    at = init.index(b"tenc")
    return init[at + 4 + 4 + 4 : at + 4 + 4 + 4 + 16]  # after version/flags and 4 bytes


def _licence(server: Server, pid: str, st: str | None, kids: list[bytes]) -> httpx.Response:
    params = {"pid": pid, **({"st": st} if st else {})}
    body = {"kids": [_b64url(k) for k in kids], "type": "temporary"}
    return httpx.post(f"{server.url}/drm/clearkey", params=params, json=body)


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


@pytest.fixture(scope="module")
def clip() -> Path:
    return make_clip(CLIP, seconds=2, size="640x360")


def test_protection_is_validated_and_shown(sqlite_server: Server, clip: Path) -> None:
    with sqlite_server.client() as c, clip.open("rb") as f:
        r = c.post("/api/v1/assets", files={"file": ("c.mp4", f)}, data={"protection": "rot13"})
    assert r.status_code == 400, r.text
    assert _code(r) == "invalid_protection"
    with sqlite_server.client() as c:
        r = c.post(
            "/api/v1/assets", json={"input": {"url": "http://127.0.0.1:9/x.mp4"}, "protection": 3}
        )
    assert r.status_code == 400, r.text
    asset = _upload(sqlite_server, clip)
    assert asset["protection"] == "none"
    # Not ready yet: its renditions cannot be re-packaged.
    r = _patch(sqlite_server, asset["id"], protection="cenc")
    assert r.status_code == 409, r.text
    assert _code(r) == "asset_busy"
    r = _patch(sqlite_server, asset["id"], protection="widevine")
    assert r.status_code == 400
    assert _code(r) == "invalid_protection"


def test_repackaging_keeps_the_frames_and_keys_come_from_the_licence_server(
    sqlite_server: Server, clip: Path, tmp_path: Path
) -> None:
    """clear → cenc → cbcs → aes-128 on one asset: never re-encoded, so every packaging
    decrypts (with the keys our servers hand out) to the same frames as the clear one."""
    s = sqlite_server
    asset = s.wait(_upload(s, clip)["id"])
    assert asset["status"] == "ready", asset
    pid = _pid(asset)
    clear_rid = _top_video(s, asset["id"])
    init, segs = _rendition_bytes(s, pid, clear_rid, "")
    clear_md5 = _frames_md5(init + b"".join(segs), tmp_path)

    handed_out: list[bytes] = []
    for scheme in ("cenc", "cbcs"):
        a = _repackaged(s, asset["id"], scheme)
        assert a["status"] == "ready", a
        rid = _top_video(s, asset["id"])
        st = _carry(s, pid, rid)
        mpd = httpx.get(f"{s.url}/play/{pid}/manifest.mpd")
        assert f'value="{scheme}"' in mpd.text, mpd.text
        assert "dashif:Laurl" in mpd.text
        init, segs = _rendition_bytes(s, pid, rid, st)
        kid = _init_kid(init)
        assert str(uuid.UUID(bytes=kid)) in mpd.text  # cenc:default_KID
        # Encrypted: no key, no frames; with the licence server's key, the clear frames.
        assert _frames_md5(init + b"".join(segs), tmp_path) != clear_md5
        lic = _licence(s, pid, st, [kid])
        assert lic.status_code == 200, lic.text
        assert lic.headers["cache-control"] == "no-store"
        jwk = lic.json()
        assert jwk["type"] == "temporary"
        assert [k["kty"] for k in jwk["keys"]] == ["oct"]
        assert jwk["keys"][0]["kid"] == _b64url(kid)
        key = base64.urlsafe_b64decode(jwk["keys"][0]["k"] + "==")
        assert _frames_md5(init + b"".join(segs), tmp_path, key) == clear_md5, scheme
        handed_out.append(key)
        # The old rendition still plays for players already on it.
        old = httpx.get(f"{s.url}/play/{pid}/{clear_rid}/init.mp4?st={st}")
        assert old.status_code == 200, old.text
        clear_rid = rid

    a = _repackaged(s, asset["id"], "aes-128")
    assert a["status"] == "ready", a
    rid = _top_video(s, asset["id"])
    st = _carry(s, pid, rid)
    playlist = httpx.get(f"{s.url}/play/{pid}/{rid}/media.m3u8?st={st}").text
    key_uri = re.search(r'#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)",IV=0x([0-9A-F]{32})', playlist)
    assert key_uri, playlist
    assert key_uri.group(1).startswith(f"{s.url}/keys/")  # absolute
    assert playlist.index("#EXT-X-MAP") < playlist.index("#EXT-X-KEY")  # the init is clear
    k = httpx.get(key_uri.group(1))
    assert k.status_code == 200, k.text
    assert k.headers["cache-control"] == "no-store"
    assert len(k.content) == 16
    init, segs = _rendition_bytes(s, pid, rid, st)
    plain = [decrypt_segment(seg, k.content, segment_iv(n)) for n, seg in enumerate(segs, 1)]
    assert _frames_md5(init + b"".join(plain), tmp_path) == clear_md5
    _extracted_thumbnail(s, pid, "aes-128")
    mpd = httpx.get(f"{s.url}/play/{pid}/manifest.mpd")
    assert mpd.status_code == 404
    assert _code(mpd) == "dash_not_available"
    assert "HLS" in mpd.json()["error"]["message"]
    # Keys are never logged (the packager gets them in a flag file, not its argv).
    log = s.log()
    for handed in [*handed_out, k.content]:
        assert handed.hex() not in log
        assert _b64url(handed) not in log
    _replaced_ones_retire(s, asset["id"], pid, st, clear_rid, rid)


def _replaced_ones_retire(
    s: Server, asset_id: str, pid: str, st: str, replaced: str, current: str
) -> None:
    """The rendition the last re-package replaced plays until its grace is over; the
    watchdog's retirement pass then deletes it (out of the presentation, then its objects)
    and the current one plays on."""
    settings = Settings(data_dir=s.data_dir)
    rt = Runtime(settings)
    try:
        assert retire_replaced_renditions(rt) == []  # not due yet: an hour's grace
        assert httpx.get(f"{s.url}/play/{pid}/{replaced}/init.mp4?st={st}").status_code == 200
        later = utcnow() + timedelta(seconds=settings.replaced_renditions_seconds + 1)
        assert f"{asset_id}/{replaced}" in retire_replaced_renditions(rt, now=later)
        assert retire_replaced_renditions(rt, now=later) == []  # nothing is left due
        with rt.db.session() as session:
            row = session.get(Asset, asset_id)
            assert row is not None
            assert row.renditions_retire_at is None
            ids = [r["id"] for r in row.presentation["renditions"]]
        assert replaced not in ids and current in ids
        assert not list(rt.store.list(f"assets/{asset_id}/cmaf/{replaced}/"))
    finally:
        rt.db.dispose()
    # once the origin's lookup cache has the new presentation (a few seconds)
    old = f"{s.url}/play/{pid}/{replaced}/init.mp4?st={st}"
    until("the replaced rendition answers 404", lambda: httpx.get(old).status_code == 404, 30)
    assert httpx.get(f"{s.url}/play/{pid}/{current}/init.mp4?st={st}").status_code == 200


#: Thumbnails extracted from encrypted segments (decrypted first), by scheme.
THUMBNAILS: dict[str, bytes] = {}


def _extracted_thumbnail(server: Server, pid: str, scheme: str) -> None:
    """A thumbnail at a width no storyboard holds: extracted from an encrypted segment. The
    same clip's encodes are the same, so decrypted they give the same picture; garbage
    decoded from ciphertext would differ between schemes and keys."""
    r = httpx.get(f"{server.url}/play/{pid}/thumbnail.jpg", params={"time": 1, "width": 640})
    assert r.status_code == 200, r.text
    assert r.content[:3] == b"\xff\xd8\xff"
    THUMBNAILS[scheme] = r.content
    if len(THUMBNAILS) == 2:
        assert THUMBNAILS["aes-128"] == THUMBNAILS["cenc"]


@pytest.fixture(scope="module")
def two_protected(sqlite_server: Server, clip: Path) -> list[dict[str, Any]]:
    made = [_upload(sqlite_server, clip, protection="cenc") for _ in range(2)]
    done = [sqlite_server.wait(a["id"]) for a in made]
    assert [a["status"] for a in done] == ["ready", "ready"], done
    return done


def _kid_of(server: Server, asset: dict[str, Any]) -> tuple[str, bytes]:
    pid = _pid(asset)
    st = _carry(server, pid)
    init = httpx.get(f"{server.url}/play/{pid}/{_top_video(server, asset['id'])}/init.mp4?st={st}")
    return st, _init_kid(init.content)


def test_licence_refusals(sqlite_server: Server, two_protected: list[dict[str, Any]]) -> None:
    s = sqlite_server
    a, b = two_protected
    pid = _pid(a)
    st, kid = _kid_of(s, a)
    _, other_kid = _kid_of(s, b)
    _extracted_thumbnail(s, pid, "cenc")
    # A protected asset's segments need the token as well.
    assert httpx.get(f"{s.url}/play/{pid}/{_top_video(s, a['id'])}/init.mp4").status_code == 403

    cases = {
        "token_missing": _licence(s, pid, None, [kid]),
        "token_signature": _licence(s, pid, st[:-3] + "AAA", [kid]),
        "key_not_found": _licence(s, pid, st, [uuid.uuid4().bytes]),
        "key_not_for_asset": _licence(s, pid, st, [other_kid]),
    }
    secret = (s.data_dir / "secret-key").read_text().strip()
    from mediaplane.delivery._access import CarryToken  # the server's own token format

    expired = CarryToken(secret).issue(pid, None, time.time() - 5 * 3600)
    cases["token_expired"] = _licence(s, pid, expired, [kid])
    for code, r in cases.items():
        assert r.status_code in (403, 404), (code, r.text)
        assert _code(r) == code, (code, r.text)
        assert r.headers["cache-control"] == "no-store"
    assert (
        httpx.get(f"{s.url}/keys/{other_kid.hex()}", params={"pid": pid, "st": st}).status_code
        == 403
    )

    bad = {
        "not json": b"{",
        "no kids": b'{"kids": [], "type": "temporary"}',
        "bad kid": b'{"kids": ["!!"], "type": "temporary"}',
        "too many": json.dumps({"kids": [_b64url(uuid.uuid4().bytes) for _ in range(17)]}).encode(),
    }
    for what, body in bad.items():
        r = httpx.post(f"{s.url}/drm/clearkey", params={"pid": pid, "st": st}, content=body)
        assert r.status_code == 400, (what, r.text)
    big = httpx.post(f"{s.url}/drm/clearkey", params={"pid": pid, "st": st}, content=b" " * 10000)
    assert big.status_code == 413, big.text

    # Granted with the token; refused once the entitlement no longer holds (plan access
    # needs a subscription), with the same token.
    assert _licence(s, pid, st, [kid]).status_code == 200
    r = _patch(s, a["id"], access="plan")
    assert r.status_code == 200, r.text
    answers: list[httpx.Response] = []

    def refused_now() -> bool | None:
        answers.append(_licence(s, pid, st, [kid]))
        return True if answers[-1].status_code == 403 else None

    until("entitlement re-decided", refused_now)
    refused = answers[-1]
    assert _code(refused) in ("sign_in_required", "needs_subscription"), refused.text

    # Every decision is in the audit log, without a key.
    db = sqlite3.connect(s.data_dir / "mediaplane.sqlite")
    rows = db.execute(
        "SELECT kid, granted, reason, channel, playback_id FROM key_releases WHERE asset_id = ?",
        (a["id"],),
    ).fetchall()
    reasons = {r[2] for r in rows}
    assert {"granted", "token_missing", "token_expired", "token_signature"} <= reasons, rows
    assert "key_not_for_asset" in reasons and "key_not_found" in reasons, rows
    assert any(r[0] == kid.hex() and r[1] for r in rows)
    assert all(r[4] == pid for r in rows)
    assert {r[3] for r in rows} <= {"clearkey", "hls-key"}


def test_malformed_stored_mp4_errors_the_asset_with_a_reason(
    sqlite_server: Server, clip: Path
) -> None:
    s = sqlite_server
    asset = s.wait(_upload(s, clip)["id"])
    assert asset["status"] == "ready", asset
    rid = _top_video(s, asset["id"])
    init = s.data_dir / "objects" / "assets" / asset["id"] / "cmaf" / rid / "init.mp4"
    init.write_bytes(init.read_bytes()[:40])  # truncated: no moov
    a = _repackaged(s, asset["id"], "cbcs")
    assert a["status"] == "errored", a
    message = a["errors"]["messages"][0]
    assert "protection to cbcs failed" in message, message
    assert "Upload the video again" in message, message


def _tus_meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def test_a_resumable_upload_takes_the_protection_too(sqlite_server: Server, clip: Path) -> None:
    s = sqlite_server
    data = clip.read_bytes()
    tus = {"Tus-Resumable": "1.0.0"}
    with s.client() as c:
        bad = c.post(
            "/api/v1/uploads",
            headers={**tus, "Upload-Length": "5", "Upload-Metadata": _tus_meta(protection="x")},
        )
        assert bad.status_code == 400, bad.text
        r = c.post(
            "/api/v1/uploads",
            headers={
                **tus,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": _tus_meta(filename="c.mp4", protection="cbcs"),
            },
        )
        assert r.status_code == 201, r.text
        url = r.headers["location"]
        r = c.patch(
            url,
            content=data,
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 204, r.text
        up = c.get(url, headers={"Accept": "application/json"}).json()["data"]
    asset = s.wait(up["asset_id"])
    assert asset["status"] == "ready", asset
    assert asset["protection"] == "cbcs"
    mpd = httpx.get(f"{s.url}/play/{_pid(asset)}/manifest.mpd")
    assert 'value="cbcs"' in mpd.text, mpd.text


def test_cpix_import_repackages_with_the_providers_keys(
    sqlite_server: Server, two_protected: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A multi-DRM service's keys, imported as CPIX into a cenc asset (the second of the
    module's pair; the refusal tests above are done with it), replace its keys: it is
    packaged again under them (no re-encode) and decodes to the same frames."""
    import os

    from mediaplane.protect import CpixDocument, CpixKey

    s, asset = sqlite_server, two_protected[1]
    pid, aid = _pid(asset), asset["id"]
    old_rid = _top_video(s, aid)
    old_st = _carry(s, pid)
    old_init, old_segs = _rendition_bytes(s, pid, old_rid, old_st)
    with s.client() as c:
        exported = CpixDocument.parse(c.get(f"/api/v1/assets/{aid}/cpix").content)
    old_key = {k.kid: k.key for k in exported.keys}[_init_kid(old_init)]
    new = CpixDocument(
        aid, [CpixKey(os.urandom(16), os.urandom(16), k.track_type, "cenc") for k in exported.keys]
    )
    with s.client() as c:
        r = c.put(f"/api/v1/assets/{aid}/cpix", content=new.render())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["repackaging"] is True

    def moved() -> str | None:
        rid = _top_video(s, aid)
        return rid if rid != old_rid else None

    rid = until("re-packaged with the imported keys", moved, timeout=60)
    st = _carry(s, pid, rid)
    init, segs = _rendition_bytes(s, pid, rid, st)
    kid = _init_kid(init)
    new_key = {k.kid: k.key for k in new.keys}.get(kid)
    assert new_key is not None, "the new rendition is not under an imported KID"
    assert _frames_md5(init + b"".join(segs), tmp_path, new_key) == _frames_md5(
        old_init + b"".join(old_segs), tmp_path, old_key
    )
    keys = _licence(s, pid, st, [kid])
    assert keys.status_code == 200, keys.text
    assert keys.json()["keys"][0]["k"] == _b64url(new_key)
