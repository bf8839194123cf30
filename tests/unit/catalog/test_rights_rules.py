"""Rights validation, the territory/window/moderation decision table, territory sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from mediaplane.catalog import (
    InvalidAssetInput,
    ModerationStatus,
    Rights,
    TerritoryTableError,
    normalize_territory,
    parse_passthrough,
    parse_source_type,
    viewer_territory,
)
from mediaplane.catalog._rights import (
    COUNTRY_CODES,
    TerritoryTable,
    parse_rights,
    parse_rights_text,
)
from mediaplane.catalog._service import initial_moderation
from mediaplane.config import Settings, SourceType
from mediaplane.delivery._access import check_playback, playback_refusal
from mediaplane.http import ApiError

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


# --- validation -------------------------------------------------------------------------


def test_full_rights_are_normalized() -> None:
    r = parse_rights(
        {
            "licensor": "  Studio A ",
            "contract_id": "C-42",
            "territories": {"allow": ["us", "CA", "US"], "deny": ["fr"]},
            "available_from": "2030-01-01T02:00:00+02:00",
            "available_until": "2031-01-01T00:00:00Z",
            "ads_allowed": True,
            "download_allowed": False,
        }
    )
    assert r.licensor == "Studio A"
    assert r.allow == {"US", "CA"} and r.deny == {"FR"}
    assert r.available_from == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert r.to_json() == {
        "licensor": "Studio A",
        "contract_id": "C-42",
        "territories": {"allow": ["CA", "US"], "deny": ["FR"]},
        "available_from": "2030-01-01T00:00:00Z",
        "available_until": "2031-01-01T00:00:00Z",
        "ads_allowed": True,
        "download_allowed": False,
    }
    assert Rights.from_json(r.to_json()) == r


def test_empty_rights_restrict_nothing() -> None:
    r = parse_rights({})
    assert r == Rights()
    assert not r.restricts_territory
    assert r.refusal(None, T0) is None
    assert r.to_json()["territories"] == {"deny": []}
    assert Rights.from_json(r.to_json()) == r


def test_deny_only_round_trips_without_allow() -> None:
    r = parse_rights({"territories": {"deny": ["RU"]}})
    assert r.allow is None
    assert Rights.from_json(r.to_json()) == r


def test_every_code_is_two_uppercase_letters() -> None:
    assert len(COUNTRY_CODES) == 250  # 249 assigned + XK
    assert all(len(c) == 2 and c.isalpha() and c.isupper() for c in COUNTRY_CODES)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"licencor": "x"}, "unknown field(s) licencor"),
        ({"territories": ["US"]}, "must be an object"),
        ({"territories": {"allowed": ["US"]}}, "unknown field(s) allowed"),
        ({"territories": {"allow": "US"}}, "must be a list"),
        ({"territories": {"allow": ["ZZ"]}}, "'ZZ', which is not an ISO 3166-1 alpha-2"),
        ({"territories": {"allow": ["USA"]}}, "'USA'"),
        ({"territories": {"deny": [840]}}, "840"),
        ({"territories": {"allow": []}}, "allow is empty"),
        ({"territories": {"allow": ["US"], "deny": ["us"]}}, "US in both allow and deny"),
        ({"available_from": "2030-01-01T00:00:00"}, "has no time zone"),
        ({"available_from": "2030-01-01"}, "has no time zone"),
        ({"available_until": "next tuesday"}, "not an ISO 8601 date-time"),
        ({"available_until": 1893456000}, "must be an ISO 8601 date-time string"),
        (
            {"available_from": "2030-02-01T00:00:00Z", "available_until": "2030-01-01T00:00:00Z"},
            "available_until (2030-01-01T00:00:00Z) must be after",
        ),
        (
            {"available_from": "2030-01-01T00:00:00Z", "available_until": "2030-01-01T01:00+01:00"},
            "must be after",
        ),
        ({"ads_allowed": "yes"}, "ads_allowed must be true or false"),
        ({"download_allowed": 1}, "download_allowed must be true or false"),
        ({"licensor": 5}, "licensor must be a string"),
        ({"contract_id": "x" * 201}, "longer than 200"),
    ],
)
def test_invalid_rights_say_what_is_wrong(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidAssetInput) as info:
        parse_rights(value)
    assert info.value.code == "invalid_rights"
    assert fragment in info.value.message


def test_rights_text() -> None:
    assert parse_rights_text('{"territories": {"deny": ["CN"]}}').deny == {"CN"}
    with pytest.raises(InvalidAssetInput, match="not valid JSON"):
        parse_rights_text("{territories")


def test_source_type() -> None:
    assert parse_source_type(None) is SourceType.CREATOR_UPLOAD
    assert parse_source_type("") is SourceType.CREATOR_UPLOAD
    assert parse_source_type("UGC") is SourceType.UGC
    assert parse_source_type("live_recording") is SourceType.LIVE_RECORDING
    for bad in ("podcast", 3):
        with pytest.raises(InvalidAssetInput) as info:
            parse_source_type(bad)
        assert info.value.code == "invalid_source_type"
        assert "creator_upload, ugc, vod_library, licensed, live_recording" in info.value.message


def test_passthrough() -> None:
    assert parse_passthrough(None) is None
    assert parse_passthrough("order-7") == "order-7"
    assert parse_passthrough("x" * 255) == "x" * 255
    for bad in ("x" * 256, 7):
        with pytest.raises(InvalidAssetInput) as info:
            parse_passthrough(bad)
        assert info.value.code == "invalid_passthrough"


def test_moderation_policy() -> None:
    assert initial_moderation(SourceType.UGC, ["ugc"]) is ModerationStatus.PENDING
    assert initial_moderation(SourceType.LICENSED, ["ugc"]) is ModerationStatus.NOT_REQUIRED
    assert initial_moderation(SourceType.UGC, []) is ModerationStatus.NOT_REQUIRED


# --- decision table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "territory", "allowed"),
    [
        (None, [], None, True),  # no restriction
        (None, [], "US", True),
        (["US", "CA"], [], "US", True),
        (["US", "CA"], [], "FR", False),
        (["US", "CA"], [], None, False),  # unknown territory with an allow-list: refused
        (None, ["FR"], "FR", False),
        (None, ["FR"], "US", True),
        (None, ["FR"], None, True),  # unknown territory with only a deny-list: allowed
        (["US", "CA"], ["FR"], "CA", True),
        (["US", "CA"], ["FR"], "FR", False),
        (["US", "CA"], ["FR"], None, False),
    ],
)
def test_territory_table(
    allow: list[str] | None, deny: list[str], territory: str | None, allowed: bool
) -> None:
    terr: dict[str, list[str]] = {"deny": deny}
    if allow is not None:
        terr["allow"] = allow
    refusal = parse_rights({"territories": terr}).refusal(territory, T0)
    if allowed:
        assert refusal is None
    else:
        assert refusal is not None and refusal.code == "not_available_in_territory"
        if territory:
            assert territory in refusal.message


@pytest.mark.parametrize(
    ("start", "end", "now", "allowed"),
    [
        (T0, None, T0 - timedelta(seconds=1), False),
        (T0, None, T0, True),  # the start is inclusive
        (None, T0, T0 - timedelta(seconds=1), True),
        (None, T0, T0, False),  # the end is exclusive
        (T0, T0 + timedelta(days=1), T0 + timedelta(hours=12), True),
        (T0, T0 + timedelta(days=1), T0 + timedelta(days=2), False),
        (None, None, T0, True),
    ],
)
def test_window_table(
    start: datetime | None, end: datetime | None, now: datetime, allowed: bool
) -> None:
    refusal = Rights(available_from=start, available_until=end).refusal("US", now)
    if allowed:
        assert refusal is None
    else:
        assert refusal is not None and refusal.code == "outside_availability_window"


def test_window_messages_name_the_boundary() -> None:
    r = Rights(available_from=T0, available_until=T0 + timedelta(days=1))
    early = r.refusal(None, T0 - timedelta(days=1))
    late = r.refusal(None, T0 + timedelta(days=2))
    assert early is not None and "becomes available at 2030-06-01T12:00:00Z" in early.message
    assert late is not None and "ended at 2030-06-02T12:00:00Z" in late.message


class _Calls:
    def __init__(self, value: str | None) -> None:
        self.value, self.count = value, 0

    def __call__(self) -> str | None:
        self.count += 1
        return self.value


@pytest.mark.parametrize(
    ("moderation", "code"),
    [
        (ModerationStatus.PENDING, "pending_moderation"),
        (ModerationStatus.REJECTED, "moderation_rejected"),
        (ModerationStatus.APPROVED, None),
        (ModerationStatus.NOT_REQUIRED, None),
    ],
)
def test_moderation_comes_first(moderation: ModerationStatus, code: str | None) -> None:
    territory = _Calls("US")
    open_rights = Rights(allow=frozenset({"US"}))
    refusal = playback_refusal(moderation, open_rights, territory, T0)
    assert (refusal.code if refusal else None) == code
    closed = Rights(available_until=T0 - timedelta(days=1), allow=frozenset({"FR"}))
    refusal = playback_refusal(moderation, closed, territory, T0)
    assert refusal is not None
    assert refusal.code == (code or "outside_availability_window")


def test_territory_is_looked_up_only_when_needed() -> None:
    territory = _Calls("FR")
    assert playback_refusal(ModerationStatus.NOT_REQUIRED, None, territory, T0) is None
    assert playback_refusal(ModerationStatus.NOT_REQUIRED, Rights(), territory, T0) is None
    window = Rights(available_from=T0 + timedelta(days=1), deny=frozenset({"FR"}))
    assert playback_refusal(ModerationStatus.NOT_REQUIRED, window, territory, T0) is not None
    assert territory.count == 0
    refusal = playback_refusal(
        ModerationStatus.NOT_REQUIRED, Rights(deny=frozenset({"FR"})), territory, T0
    )
    assert refusal is not None and refusal.code == "not_available_in_territory"
    assert territory.count == 1


# --- territory sources --------------------------------------------------------------------


def test_normalize_territory() -> None:
    assert normalize_territory("us") == "US"
    assert normalize_territory(" GB ") == "GB"
    for unknown in (None, "", "XX", "T1", "USA", "ZZ"):
        assert normalize_territory(unknown) is None


def test_longest_prefix_wins() -> None:
    table = TerritoryTable(
        [
            ("10.0.0.0/8", "US"),
            ("10.1.0.0/16", "CA"),
            ("10.1.2.3/32", "MX"),
            ("0.0.0.0/0", "AQ"),
            ("2001:db8::/32", "DE"),
            ("2001:db8:1::/48", "AT"),
        ]
    )
    assert table.lookup("10.9.9.9") == "US"
    assert table.lookup("10.1.9.9") == "CA"
    assert table.lookup("10.1.2.3") == "MX"
    assert table.lookup("192.0.2.1") == "AQ"  # the default route
    assert table.lookup("::ffff:10.1.2.3") == "MX"  # IPv4-mapped IPv6 is looked up as IPv4
    assert table.lookup("2001:db8:1::5") == "AT"
    assert table.lookup("2001:db8:2::5") == "DE"
    assert table.lookup("2001:db9::1") is None  # no IPv6 default route
    assert table.lookup("not-an-address") is None
    assert table.size == 6


def test_table_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "geo.csv"
    path.write_text(
        "cidr,country\n# operators' comment\n\n127.0.0.0/8,nz\n127.0.0.1/32 , AU\n10.0.0.7/8,US\n"
    )
    table = TerritoryTable.from_csv(path)
    assert table.lookup("127.0.0.1") == "AU"
    assert table.lookup("127.0.0.2") == "NZ"
    assert table.lookup("10.200.0.1") == "US"  # host bits in the CIDR are ignored


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("127.0.0.0/8", "expected 'cidr,country'"),
        ("127.0.0.0/33,US", "127.0.0.0/33"),
        ("127.0.0.0/8,ZZ", "'ZZ' is not an ISO 3166-1"),
    ],
)
def test_bad_table_names_the_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "geo.csv"
    path.write_text(f"10.0.0.0/8,US\n{line}\n")
    with pytest.raises(TerritoryTableError, match=r"geo\.csv:2: ") as info:
        TerritoryTable.from_csv(path)
    assert fragment in str(info.value)


def test_missing_table() -> None:
    with pytest.raises(TerritoryTableError, match="cannot read"):
        TerritoryTable.from_csv(Path("/nonexistent/geo.csv"))


def _request(headers: dict[str, str], client: str = "127.0.0.1") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/play/x/master.m3u8",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (client, 50000),
        }
    )


def test_viewer_territory_sources(tmp_path: Path) -> None:
    geo = tmp_path / "geo.csv"
    geo.write_text("127.0.0.0/8,NZ\n")
    none = Settings()
    header = Settings(territory_header="CF-IPCountry")
    table = Settings(territory_cidr_file=geo)
    both = Settings(territory_header="CF-IPCountry", territory_cidr_file=str(geo))
    spoofed = _request({"CF-IPCountry": "US"})
    assert viewer_territory(spoofed, none) is None  # never trusted unless configured
    assert viewer_territory(spoofed, table) == "NZ"
    assert viewer_territory(spoofed, header) == "US"
    assert viewer_territory(spoofed, both) == "US"
    assert viewer_territory(_request({"CF-IPCountry": "XX"}), header) is None
    assert viewer_territory(_request({"CF-IPCountry": "XX"}), both) == "NZ"
    assert viewer_territory(_request({}), both) == "NZ"
    assert viewer_territory(_request({}, client="192.0.2.1"), both) is None


def test_check_playback_raises_403_no_store() -> None:
    settings = Settings(territory_header="X-Country")
    rights = Rights(allow=frozenset({"US"}))
    check_playback(
        _request({"X-Country": "US"}),
        settings,
        moderation=ModerationStatus.NOT_REQUIRED,
        rights=rights,
    )
    with pytest.raises(ApiError) as info:
        check_playback(
            _request({"X-Country": "FR"}),
            settings,
            moderation=ModerationStatus.NOT_REQUIRED,
            rights=rights,
        )
    assert (info.value.status, info.value.code) == (403, "not_available_in_territory")
    assert info.value.headers == {"Cache-Control": "no-store"}


# --- settings -----------------------------------------------------------------------------


def test_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAPLANE_MODERATION_HOLD", "ugc, Licensed")
    monkeypatch.setenv("MEDIAPLANE_TERRITORY_HEADER", "CF-IPCountry")
    s = Settings()
    assert s.moderation_hold == ["ugc", "licensed"]
    assert s.territory_header == "cf-ipcountry"
    monkeypatch.setenv("MEDIAPLANE_MODERATION_HOLD", "")
    assert Settings().moderation_hold == []
    monkeypatch.delenv("MEDIAPLANE_MODERATION_HOLD")
    assert Settings().moderation_hold == ["ugc"]
    monkeypatch.setenv("MEDIAPLANE_MODERATION_HOLD", "ugc,podcasts")
    with pytest.raises(ValueError, match="podcasts"):
        Settings()
    monkeypatch.delenv("MEDIAPLANE_MODERATION_HOLD")
    with pytest.raises(ValueError, match="not an HTTP header name"):
        Settings(territory_header="CF IPCountry")
    with pytest.raises(ValueError, match="does not exist"):
        Settings(territory_cidr_file=tmp_path / "missing.csv")
