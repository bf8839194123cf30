"""Licensed-content rights: the model, its strict validation, the territory/window decision,
and the viewer-territory sources (a trusted header value, an operator's CIDR→country table).

Pure code: no database, no HTTP. The origin evaluates :meth:`Rights.refusal` on every playback
request, so it is a few comparisons and set lookups.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mediaplane.config import SourceType

from ._models import ModerationStatus
from ._service import CatalogError

if TYPE_CHECKING:
    from starlette.requests import Request

    from mediaplane.config import Settings

__all__ = [
    "viewer_territory",
    "COUNTRY_CODES",
    "InvalidAssetInput",
    "PlaybackTerms",
    "Refusal",
    "Rights",
    "TerritoryTable",
    "TerritoryTableError",
    "load_territory_table",
    "normalize_territory",
    "parse_passthrough",
    "playback_refusal",
    "parse_rights",
    "parse_rights_text",
    "parse_source_type",
]

#: ISO 3166-1 alpha-2 codes officially assigned (249, as in Debian's iso-codes and tzdata's
#: iso3166.tab), plus XK (Kosovo): user-assigned, but what CDNs and GeoIP tables send for it.
COUNTRY_CODES: frozenset[str] = frozenset(
    (
        "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
        "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
        "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
        "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
        "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
        "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
        "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
        "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
        "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK"
    ).split()
)

_RIGHTS_FIELDS = (
    "licensor",
    "contract_id",
    "territories",
    "available_from",
    "available_until",
    "ads_allowed",
    "download_allowed",
)
_TEXT_MAX = 200
PASSTHROUGH_MAX = 255


class InvalidAssetInput(CatalogError):
    """A client-supplied asset field (source type, rights, passthrough) is invalid.

    ``code`` is the stable API error code; the message says what to fix.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TerritoryTableError(CatalogError):
    """The operator's CIDR→country file cannot be read or has a bad line."""


class Refusal(NamedTuple):
    """Why playback is refused: a stable error code and a sentence for the viewer."""

    code: str
    message: str


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Rights:
    """Rights attached to an asset.

    ``allow`` is None when there is no allow-list (every territory not denied may play);
    ``available_from`` is inclusive, ``available_until`` exclusive; both are aware UTC.
    """

    licensor: str | None = None
    contract_id: str | None = None
    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    available_from: datetime | None = None
    available_until: datetime | None = None
    ads_allowed: bool = False
    download_allowed: bool = False

    @property
    def restricts_territory(self) -> bool:
        return self.allow is not None or bool(self.deny)

    def window_refusal(self, now: datetime) -> Refusal | None:
        """Refusal if ``now`` (aware) is outside the availability window."""
        if self.available_from is not None and now < self.available_from:
            return Refusal(
                "outside_availability_window",
                f"This video is not available yet: it becomes available at "
                f"{_iso(self.available_from)}.",
            )
        if self.available_until is not None and now >= self.available_until:
            return Refusal(
                "outside_availability_window",
                f"This video is no longer available: its availability ended at "
                f"{_iso(self.available_until)}.",
            )
        return None

    def territory_refusal(self, territory: str | None) -> Refusal | None:
        """Refusal if the viewer's territory (None: unknown) may not play.

        An unknown territory is refused when there is an allow-list and allowed when there is
        only a deny-list.
        """
        if territory is None:
            if self.allow is None:
                return None
            return Refusal(
                "not_available_in_territory",
                "This video is available only in some territories, and yours could not be "
                "determined.",
            )
        if territory in self.deny or (self.allow is not None and territory not in self.allow):
            return Refusal(
                "not_available_in_territory",
                f"This video is not available in your territory ({territory}).",
            )
        return None

    def refusal(self, territory: str | None, now: datetime) -> Refusal | None:
        """The window first, then the territory; None when playback is allowed."""
        return self.window_refusal(now) or self.territory_refusal(territory)

    def to_json(self) -> dict[str, Any]:
        """The canonical stored and API form (codes sorted, times in UTC with ``Z``)."""
        territories: dict[str, list[str]] = {"deny": sorted(self.deny)}
        if self.allow is not None:
            territories = {"allow": sorted(self.allow), **territories}
        return {
            "licensor": self.licensor,
            "contract_id": self.contract_id,
            "territories": territories,
            "available_from": _iso(self.available_from) if self.available_from else None,
            "available_until": _iso(self.available_until) if self.available_until else None,
            "ads_allowed": self.ads_allowed,
            "download_allowed": self.download_allowed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rights:
        """Rebuild from the stored canonical form (already validated: no checks here)."""
        terr = data.get("territories") or {}
        allow = terr.get("allow")
        start, end = data.get("available_from"), data.get("available_until")
        return cls(
            licensor=data.get("licensor"),
            contract_id=data.get("contract_id"),
            allow=frozenset(allow) if allow is not None else None,
            deny=frozenset(terr.get("deny") or ()),
            available_from=datetime.fromisoformat(start) if start else None,
            available_until=datetime.fromisoformat(end) if end else None,
            ads_allowed=bool(data.get("ads_allowed")),
            download_allowed=bool(data.get("download_allowed")),
        )


_MODERATION_REFUSALS = {
    ModerationStatus.PENDING: Refusal(
        "pending_moderation", "This video is waiting for moderation and cannot be played yet."
    ),
    ModerationStatus.REJECTED: Refusal(
        "moderation_rejected", "This video was rejected by moderation and cannot be played."
    ),
}


def playback_refusal(
    moderation: ModerationStatus,
    rights: Rights | None,
    territory: Callable[[], str | None],
    now: datetime,
) -> Refusal | None:
    """Why the catalog refuses playback, or None: moderation first, then the availability
    window, then the territory.

    :param territory: returns the viewer's ISO 3166-1 alpha-2 code (None: unknown); called
        only when the rights restrict territories.
    :param now: the current time, timezone-aware.
    """
    refused = _MODERATION_REFUSALS.get(moderation)
    if refused is not None or rights is None:
        return refused
    refused = rights.window_refusal(now)
    if refused is not None or not rights.restricts_territory:
        return refused
    return rights.territory_refusal(territory())


@dataclass(frozen=True, slots=True)
class PlaybackTerms:
    """An asset's moderation and rights as the entitlement function weighs them
    (:class:`mediaplane.accounts.Terms`)."""

    moderation: ModerationStatus
    rights: Rights | None

    @property
    def restricted(self) -> bool:
        """False when nothing can refuse playback (no rights, no moderation hold)."""
        return self.rights is not None or self.moderation in _MODERATION_REFUSALS

    def refusal(self, territory: Callable[[], str | None], now: datetime) -> Refusal | None:
        """:func:`playback_refusal` of these terms."""
        return playback_refusal(self.moderation, self.rights, territory, now)


def _bad(message: str) -> InvalidAssetInput:
    return InvalidAssetInput("invalid_rights", message)


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"rights.{name} must be a string.")
    value = value.strip()
    if len(value) > _TEXT_MAX:
        raise _bad(f"rights.{name} is longer than {_TEXT_MAX} characters.")
    return value or None


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise _bad(f"rights.{name} must be true or false.")
    return value


def _codes(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise _bad(f'{where} must be a list of ISO 3166-1 alpha-2 country codes, like ["US"].')
    out: set[str] = set()
    for item in value:
        code = item.strip().upper() if isinstance(item, str) else None
        if code is None or code not in COUNTRY_CODES:
            raise _bad(
                f"{where} has {item!r}, which is not an ISO 3166-1 alpha-2 country code "
                f'(two letters, like "US" or "GB").'
            )
        out.add(code)
    return frozenset(out)


def _when(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"rights.{name} must be an ISO 8601 date-time string.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(
            f'rights.{name} {value!r} is not an ISO 8601 date-time (like "2030-01-31T00:00:00Z").'
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad(f'rights.{name} {value!r} has no time zone: add one, like "Z" or "+02:00".')
    return parsed.astimezone(UTC)


def parse_rights(value: object) -> Rights:
    """Validate client-supplied rights (a JSON object) strictly.

    Raises :class:`InvalidAssetInput` (code ``invalid_rights``) with a message that names the
    field and says what to send instead.
    """
    if not isinstance(value, dict):
        raise _bad("rights must be a JSON object.")
    unknown = sorted(set(value) - set(_RIGHTS_FIELDS))
    if unknown:
        raise _bad(
            f"rights has unknown field(s) {', '.join(unknown)}; "
            f"expected {', '.join(_RIGHTS_FIELDS)}."
        )
    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    terr = value.get("territories")
    if terr is not None:
        if not isinstance(terr, dict):
            raise _bad('rights.territories must be an object: {"allow": [...], "deny": [...]}.')
        extra = sorted(set(terr) - {"allow", "deny"})
        if extra:
            raise _bad(
                f"rights.territories has unknown field(s) {', '.join(extra)}; expected allow, deny."
            )
        if terr.get("allow") is not None:
            allow = _codes(terr["allow"], "rights.territories.allow")
            if not allow:
                raise _bad(
                    "rights.territories.allow is empty: list the territories where the video "
                    "may play, or leave allow out to allow every territory."
                )
        if terr.get("deny") is not None:
            deny = _codes(terr["deny"], "rights.territories.deny")
        both = sorted((allow or frozenset()) & deny)
        if both:
            raise _bad(
                f"rights.territories lists {', '.join(both)} in both allow and deny; "
                "keep each code in one list."
            )
    start = _when(value, "available_from")
    end = _when(value, "available_until")
    if start is not None and end is not None and end <= start:
        raise _bad(
            f"rights.available_until ({_iso(end)}) must be after rights.available_from "
            f"({_iso(start)})."
        )
    return Rights(
        licensor=_text(value, "licensor"),
        contract_id=_text(value, "contract_id"),
        allow=allow,
        deny=deny,
        available_from=start,
        available_until=end,
        ads_allowed=_flag(value, "ads_allowed"),
        download_allowed=_flag(value, "download_allowed"),
    )


def parse_rights_text(text: str) -> Rights:
    """:func:`parse_rights` for a JSON text (a multipart form field)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _bad(f"rights is not valid JSON: {exc}.") from None
    return parse_rights(value)


def parse_source_type(value: object) -> SourceType:
    """A source type from client input; None or "" means ``creator_upload``."""
    if value is None or value == "":
        return SourceType.CREATOR_UPLOAD
    if isinstance(value, str):
        try:
            return SourceType(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(t.value for t in SourceType)
    raise InvalidAssetInput(
        "invalid_source_type", f"source_type {value!r} is not one of: {allowed}."
    )


def parse_passthrough(value: object) -> str | None:
    """An opaque client string of at most 255 characters (None or "" means none)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidAssetInput("invalid_passthrough", "passthrough must be a string.")
    if len(value) > PASSTHROUGH_MAX:
        raise InvalidAssetInput(
            "invalid_passthrough", f"passthrough is longer than {PASSTHROUGH_MAX} characters."
        )
    return value


def normalize_territory(value: str | None) -> str | None:
    """A country code from a trusted header, or None when absent or not a country.

    CDNs send placeholders for "unknown" (Cloudflare: ``XX``, ``T1`` for Tor); those, and
    anything that is not an assigned code, count as an unknown territory.
    """
    if not value:
        return None
    code = value.strip().upper()
    return code if code in COUNTRY_CODES else None


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TerritoryTable:
    """CIDR → country, longest prefix wins; one dict per prefix length and IP version."""

    def __init__(self, rows: list[tuple[str, str]] | None = None) -> None:
        # version → [(prefix length, {network as int: code})], longest prefix first
        self._tables: dict[int, list[tuple[int, dict[int, str]]]] = {4: [], 6: []}
        self.size = 0
        for cidr, code in rows or ():
            self.add(cidr, code)

    def add(self, cidr: str, code: str) -> None:
        """Map ``cidr`` (host bits ignored) to ``code`` (an ISO 3166-1 alpha-2 code)."""
        net = ipaddress.ip_network(cidr.strip(), strict=False)
        country = code.strip().upper()
        if country not in COUNTRY_CODES:
            raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
        levels = self._tables[net.version]
        table = next((t for length, t in levels if length == net.prefixlen), None)
        if table is None:
            table = {}
            levels.append((net.prefixlen, table))
            levels.sort(key=lambda lv: -lv[0])
        if int(net.network_address) not in table:
            self.size += 1
        table[int(net.network_address)] = country

    def lookup(self, address: str | _Address) -> str | None:
        """The country of ``address``, or None when no network covers it (or it is invalid)."""
        if isinstance(address, str):
            try:
                addr: _Address = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                return None
        else:
            addr = address
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        bits = addr.max_prefixlen
        value = int(addr)
        for length, table in self._tables[addr.version]:
            shift = bits - length
            hit = table.get(value >> shift << shift)
            if hit is not None:
                return hit
        return None

    @classmethod
    def from_csv(cls, path: Path) -> TerritoryTable:
        """Read ``cidr,country`` lines; blank lines, ``#`` comments and a header row skipped."""
        table = cls()
        try:
            with path.open(newline="", encoding="utf-8") as f:
                for lineno, row in enumerate(csv.reader(f), start=1):
                    if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                        continue
                    if lineno == 1 and row[0].strip().lower() == "cidr":
                        continue
                    if len(row) < 2:
                        raise TerritoryTableError(
                            f"{path}:{lineno}: expected 'cidr,country', got {','.join(row)!r}"
                        )
                    try:
                        table.add(row[0], row[1])
                    except ValueError as exc:
                        raise TerritoryTableError(f"{path}:{lineno}: {exc}") from None
        except OSError as exc:
            raise TerritoryTableError(f"cannot read the territory table {path}: {exc}") from exc
        return table


@functools.cache
def load_territory_table(path: Path) -> TerritoryTable:
    """The table in ``path``, read once per process."""
    return TerritoryTable.from_csv(path)


def viewer_territory(request: Request, settings: Settings) -> str | None:
    """The viewer's country: the trusted header when configured and present with a country,
    else the operator's CIDR table for the socket peer's address, else None (unknown)."""
    if settings.territory_header is not None:
        code = normalize_territory(request.headers.get(settings.territory_header))
        if code is not None:
            return code
    if settings.territory_cidr_file is not None and request.client is not None:
        return load_territory_table(settings.territory_cidr_file).lookup(request.client.host)
    return None
