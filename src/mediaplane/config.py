"""The one typed Settings object: every URL and limit of a Mediaplane process lives here.

Values come from ``MEDIAPLANE_*`` environment variables (and CLI flags that set them).
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "OidcProvider",
    "Settings",
    "SourceType",
    "get_settings",
    "misspelled_env",
    "project_root",
    "redact",
    "redact_url",
    "settings_table",
]


class SourceType(enum.StrEnum):
    """Where an asset's content comes from (moderation policy is chosen per source type).

    Defined here, below the catalog that stores it, because the settings name source
    types too (``moderation_hold``)."""

    CREATOR_UPLOAD = "creator_upload"
    UGC = "ugc"
    VOD_LIBRARY = "vod_library"
    LICENSED = "licensed"
    LIVE_RECORDING = "live_recording"


def project_root() -> Path:
    """The checkout this package runs from (where ``node_modules`` lives in a dev install)."""
    return Path(__file__).resolve().parents[2]


class OidcProvider(BaseModel):
    """One OpenID Connect provider users may sign in with (Entra ID / Azure AD B2C, Google,
    Keycloak, Auth0, …). Its callback is ``<public-url>/auth/oidc/<name>/callback``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: In the sign-in URLs: lowercase letters, digits, ``-`` and ``_``.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    #: The ``…/.well-known/openid-configuration`` URL.
    discovery_url: str = Field(pattern=r"^https?://\S+$", max_length=2000)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr = Field(repr=False)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    #: Shown on the sign-in button; default: ``name``.
    title: str | None = Field(default=None, max_length=100)
    #: The provider verifies every address it hands out although it sends no
    #: ``email_verified`` claim (Azure AD B2C with e-mail sign-up, say): link by e-mail.
    trust_email: bool = False

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include 'openid'")
        if any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in value):
            raise ValueError("a scope is a word of printable characters, no quotes or spaces")
        return value


class Settings(BaseSettings):
    """Configuration for every Mediaplane process (web, worker, CLI)."""

    model_config = SettingsConfigDict(env_prefix="MEDIAPLANE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("mediaplane-data")
    #: Public base URL printed in playback URLs; defaults to http://host:port.
    public_url: str | None = None

    # Out of repr (a traceback or a log of the settings): these may carry passwords.
    database_url: str | None = Field(default=None, repr=False)  # default: sqlite:///…
    broker_url: str | None = Field(default=None, repr=False)  # default: embedded broker
    storage_url: str | None = None  # default: <data_dir>/objects (local store)
    queue_namespace: str = "mediaplane"

    admin_token: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)
    #: Content protection: the master key (base64 of 32 bytes) that wraps the key store's
    #: key-encryption keys; none: `<data-dir>/master-key`, made on first start.
    master_key: SecretStr | None = Field(default=None, repr=False)
    kms_url: str | None = None
    #: Content keys of a protected asset: one per track type ("track": SD, HD and audio
    #: keys, so a licence policy can hold HD back) or one for the whole asset ("asset").
    protection_keys: Literal["track", "asset"] = "track"
    #: Seconds the renditions a re-package replaced keep playing for players already on
    #: them; then they are deleted (a watchdog pass), the clear ones of a newly protected
    #: asset among them.
    replaced_renditions_seconds: int = Field(default=3600, ge=0)
    #: SPEKE v2: a commercial multi-DRM key provider's endpoint; protected assets then get
    #: its keys and its DRM systems' signalling (PSSH) instead of keys made here.
    speke_url: str | None = None
    speke_api_key: SecretStr | None = Field(default=None, repr=False)
    speke_cert_file: Path | None = None
    speke_key_file: Path | None = None
    speke_systems: Annotated[list[Literal["widevine", "playready"]], NoDecode] = Field(
        default_factory=lambda: list(_DEFAULT_SPEKE_SYSTEMS)
    )
    access_token_seconds: int = Field(default=900, ge=30)
    refresh_token_seconds: int = Field(default=30 * 86400, ge=60)
    web_session_seconds: int = Field(default=14 * 86400, ge=60)
    signup_open: bool = True
    signin_requires_verified_email: bool = True
    verify_token_seconds: int = Field(default=2 * 86400, ge=60)
    reset_token_seconds: int = Field(default=3600, ge=60)
    signin_failures_per_account: int = Field(default=5, ge=1)
    signin_failures_per_address: int = Field(default=20, ge=1)
    signin_lockout_seconds: float = Field(default=30.0, gt=0)
    redis_url: str | None = Field(default=None, repr=False)
    max_streams_per_viewer: int = Field(default=0, ge=0)
    stream_ttl_seconds: float = Field(default=45.0, gt=0, le=3600)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = "mediaplane@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = True
    #: JSON list of OpenID Connect providers (see OidcProvider).
    oidc_providers: list[OidcProvider] = Field(default_factory=list, repr=False)
    #: Each request to a provider (discovery, keys, code exchange) gets this long.
    oidc_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    log_level: str = "INFO"
    #: "auto": readable lines on a terminal, JSON lines otherwise; or always "console"/"json".
    log_format: Literal["auto", "console", "json"] = "auto"

    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    packager_path: str | None = None  # default: the binary inside node_modules/shaka-packager
    node_modules_dir: Path | None = None

    #: The origin trusts what it looked up (playback ids, rights, grants, signing keys) this
    #: long: a revocation or a rights change takes effect within it.
    playback_cache_seconds: float = Field(default=5.0, gt=0, le=300)
    #: Live ingest: `mediaplane up` takes RTMP publishers on `host`:`rtmp_port` (TCP) and
    #: SRT publishers on `host`:`srt_port` (UDP).
    live_ingest: bool = True
    rtmp_port: int = Field(default=1935, ge=1, le=65535)
    srt_port: int = Field(default=8890, ge=1, le=65535)
    #: RTMPS: with a certificate (PEM, chain first) and its key, `mediaplane up` also takes
    #: publishers over TLS on `rtmps_port` (`rtmps://host:port/live/KEY`); none: no RTMPS.
    rtmps_cert_file: Path | None = None
    rtmps_key_file: Path | None = None
    rtmps_port: int = Field(default=1936, ge=1, le=65535)
    #: Publisher connections the live ingest holds at once (a flood beyond is closed at once).
    live_max_connections: int = Field(default=64, ge=1)
    #: The same, from one source address (a flood from one host fills its own share).
    live_max_connections_per_address: int = Field(default=16, ge=1)
    #: LL-HLS part length of low-latency streams (seconds). Measured with hls.js (bench/
    #: live_parts.py): 1/3 s held 1.2 s of latency without a stall; 0.5 s stalled at start.
    #: 0.334, not 0.333: ten frames at 30 or 29.97 fps (0.3337 s) must fit in PART-TARGET.
    live_part_seconds: float = Field(default=0.334, ge=0.1, le=2.0)
    #: Live renditions: "passthrough" packages the publisher's H.264 as the one rung (no
    #: encoding: a laptop holds many streams, and OBS already encoded); "abr" adds up to
    #: two lower rungs, encoded by one more ffmpeg per stream (about 0.6 of a core per 720p stream).
    live_ladder: Literal["passthrough", "abr"] = "passthrough"
    #: A protected live stream gets a new content key (a new init segment, announced like
    #: a publish's) every this many segments; 0: one key per session.
    live_key_rotation_segments: int = Field(default=0, ge=0, le=100_000)
    #: WHEP viewers one live stream takes at once (each is a peer connection on the ingest).
    webrtc_max_viewers: int = Field(default=50, ge=1)
    #: A WHIP or WHEP peer that has not connected (or stays disconnected) this long is closed.
    webrtc_peer_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    #: Local addresses the ingest offers as WebRTC (ICE) host candidates, comma-separated
    #: (e.g. "127.0.0.1" to keep WebRTC on loopback); empty: every non-loopback interface.
    webrtc_ice_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Web server processes (API, origin, uploads) behind the one port of `mediaplane up`.
    web_workers: int = Field(default=1, ge=1)
    worker_concurrency: int = Field(default_factory=lambda: max(2, (os.cpu_count() or 2) // 2))
    #: Thumbnail extractions (one ffmpeg each) a web process runs at once; requests beyond
    #: wait up to `thumbnail_queue_seconds` for a slot, then get 503 with Retry-After.
    thumbnail_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    thumbnail_queue_seconds: float = Field(default=2.0, ge=0)
    x264_preset: str = "veryfast"
    segment_seconds: int = 2
    #: Interlaced sources are deinterlaced (bwdif) to one frame per frame ("frame": 25i
    #: becomes 25 fps) or one frame per field ("field": 25i becomes 50 fps, smoother motion,
    #: still capped at the ladder's 60 fps).
    deinterlace: Literal["frame", "field"] = "frame"
    #: Encode the upper rungs as chunk jobs spread over the worker fleet (one rung and a span
    #: of the source per job) instead of one pass on the worker that took the upload.
    #: "auto": chunked when the broker is a fleet's (RabbitMQ/Redis), one pass when embedded
    #: (one machine: one decode for every rung costs least CPU).
    chunked_encoding: Literal["auto", "on", "off"] = "auto"
    #: Source seconds per chunk job (rounded to whole segments).
    encode_chunk_seconds: float = Field(default=20.0, gt=0)
    max_upload_bytes: int = 20 * 1024**3
    #: A tus upload expires this long after it was created or last written to.
    upload_expiry_seconds: float = 24 * 3600.0
    #: A PATCH holds its upload's lock this long past its last write (a crashed server's
    #: lock frees itself after it).
    upload_lock_seconds: float = 30.0
    max_input_pixels: int = 8192 * 8192
    max_input_side: int = 8192
    max_input_seconds: float = 12 * 3600.0
    #: Address space a subprocess (ffmpeg, packager) may map, in bytes.
    subprocess_memory_bytes: int = 6 * 1024**3
    probe_timeout_seconds: float = 30.0
    #: An encode may run this many wall-clock seconds per second of source (plus 2 min)...
    encode_timeout_factor: float = Field(default=20.0, gt=0)
    #: ...but never longer than this (encodes, chunk stitching, packaging), however long the
    #: source: a stuck 12-hour encode is killed after a day, not after ten.
    encode_timeout_max_seconds: float = Field(default=24 * 3600.0, gt=0)
    #: Allowed networks/hosts for URL imports beyond the public internet (e.g. "127.0.0.1/32").
    import_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    import_max_bytes: int = 20 * 1024**3
    import_timeout_seconds: float = 3600.0
    import_max_redirects: int = 5

    #: Source types held for moderation (pending until an admin approves), comma-separated.
    moderation_hold: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ugc"])
    #: Request header carrying the viewer's ISO 3166-1 country as set by a trusted CDN
    #: (e.g. "CF-IPCountry"); never read unless set.
    territory_header: str | None = None
    #: CSV of "cidr,country" lines mapping the socket peer's address to a country.
    territory_cidr_file: Path | None = None

    job_stall_seconds: float = 90.0
    #: Attempts a job gets when it fails for a reason other than its input (the host ran
    #: out of disk or memory, a killed process, a service down) before it gives up.
    job_max_attempts: int = Field(default=3, ge=1)
    watchdog_interval_seconds: float = 10.0

    #: The event bus: none for the in-process bus, ``redis://…`` for Redis Streams,
    #: ``nats://…`` for NATS JetStream, ``kafka://host:port`` for Kafka.
    events_url: str | None = Field(default=None, repr=False)
    #: Relay the outbox's events to the bus from the web processes (one at a time).
    events_relay: bool = True
    #: How often an idle relay looks for new events in the outbox.
    events_relay_interval_seconds: float = Field(default=0.2, gt=0)
    #: Published events stay in the outbox this long (embedded readers and replays read it).
    events_retention_seconds: float = Field(default=7 * 86400.0, gt=0)

    #: Networks/hosts webhook endpoints may be at beyond the public internet.
    webhook_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: A delivery is retried (timeouts, connection errors, 5xx) for this long, then failed.
    webhook_retry_window_seconds: float = Field(default=24 * 3600.0, gt=0)
    #: The first retry's delay; each next one doubles it (with jitter), up to an hour.
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    #: Seconds to connect to an endpoint, and for its whole answer.
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Deliveries in flight at once to one endpoint, and in all (per process).
    webhook_concurrency_per_endpoint: int = Field(default=2, ge=1)
    webhook_concurrency: int = Field(default=16, ge=1)

    #: Analytics: the key of viewer pseudonyms (a keyed hash); none: `<data-dir>/analytics-key`.
    analytics_key: SecretStr | None = Field(default=None, repr=False)
    #: Lake partitions (beacon events, CMCD records) older than this many days are deleted.
    analytics_retention_days: int = Field(default=400, ge=1)
    #: Largest beacon batch body accepted (bytes).
    beacon_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    #: Beacon batches one viewer may send per minute; one client address (players behind
    #: one NAT share it).
    beacon_batches_per_viewer: int = Field(default=120, ge=1)
    beacon_batches_per_address: int = Field(default=1200, ge=1)
    #: An event's time may be this far before its receipt; earlier or later ones are clamped.
    beacon_clock_skew_seconds: float = Field(default=300.0, ge=1, le=7 * 86400)
    #: Lake rows one web process buffers at most (beyond: beacons get 503, CMCD is dropped).
    lake_buffer_rows: int = Field(default=200_000, ge=100)
    #: The buffer is written to the lake when this many rows wait...
    lake_flush_rows: int = Field(default=50_000, ge=1)
    #: ...or when its oldest row has waited this long (seconds).
    lake_flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: The warehouse job (dbt build of the analytics models and their data tests) runs this
    #: often (seconds); 0: never on a schedule (`mediaplane analytics build` runs it by hand).
    analytics_build_interval_seconds: float = Field(default=0.0, ge=0, le=7 * 86400)
    #: A view counts as watching now (real-time viewers) while its newest beacon event is
    #: younger than this (seconds; players send a heartbeat every 5 s).
    realtime_window_seconds: float = Field(default=15.0, ge=5, le=600)

    @field_validator("oidc_providers")
    @classmethod
    def _unique_names(cls, value: list[OidcProvider]) -> list[OidcProvider]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError(f"OIDC provider names must be unique: {names}")
        return value

    @field_validator("import_allow", "webhook_allow", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("speke_systems", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value

    @field_validator("webrtc_ice_addresses", mode="before")
    @classmethod
    def _ip_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            bad = []
            for v in value:
                try:
                    ipaddress.ip_address(v)
                except ValueError:
                    bad.append(v)
            if bad:
                raise ValueError(f"not IP addresses: {bad} (e.g. 127.0.0.1,::1)")
            value = [str(ipaddress.ip_address(v)) for v in value]
        return value

    @field_validator("moderation_hold", mode="before")
    @classmethod
    def _source_types(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip().lower() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            known = {t.value for t in SourceType}
            bad = [v for v in value if v not in known]
            if bad:
                raise ValueError(f"unknown source type(s) {bad}; expected some of {sorted(known)}")
        return value

    @field_validator("territory_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value.strip()):
            raise ValueError(f"{value!r} is not an HTTP header name")
        return value.strip().lower()

    @field_validator("territory_cidr_file", mode="before")
    @classmethod
    def _cidr_file(cls, value: object) -> object:
        if value is None or not str(value).strip():
            return None
        path = Path(str(value)).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"territory CIDR file {str(path)!r} does not exist")
        return path

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'mediaplane.sqlite'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_path / 'broker.sqlite'}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or str(self.data_path / "objects")

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_node_modules(self) -> Path:
        return self.node_modules_dir or project_root() / "node_modules"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def chunked(self) -> bool:
        """Whether the upper rungs are encoded as chunk jobs across the fleet."""
        if self.chunked_encoding == "auto":
            return not self.embedded_broker
        return self.chunked_encoding == "on"

    @property
    def admin_token_file(self) -> Path:
        return self.data_path / "admin-token"


_DEFAULT_SPEKE_SYSTEMS: tuple[Literal["widevine", "playready"], ...] = ("widevine", "playready")


def get_settings() -> Settings:
    """Settings from the environment (each call re-reads it; cache at the call site)."""
    return Settings()


#: MEDIAPLANE_* variables read outside Settings: the CLI client's, the test suite's.
OTHER_ENV = frozenset(
    {
        "MEDIAPLANE_SERVER",  # `ingest`/`import`: the server URL
        "MEDIAPLANE_TOKEN",  # `ingest`/`import`: the API token
        "MEDIAPLANE_REQUIRE_SERVICES",  # tests: fail instead of skip without PostgreSQL etc.
        "MEDIAPLANE_WEED",  # tests: the SeaweedFS binary
    }
)
#: Prefixes of families of variables read outside Settings.
OTHER_ENV_PREFIXES = ("MEDIAPLANE_TEST_",)
#: Variables that were settings once, and what replaced them.
RETIRED_ENV = {"MEDIAPLANE_LOG_JSON": "MEDIAPLANE_LOG_FORMAT (auto, console or json)"}


def misspelled_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A warning for each ``MEDIAPLANE_*`` variable no part of Mediaplane reads, naming the
    closest known variable (``MEDIAPLANE_DATABSE_URL`` → ``MEDIAPLANE_DATABASE_URL``)."""
    env = os.environ if environ is None else environ
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    settings = {prefix + name.upper() for name in Settings.model_fields}
    known = sorted(settings | OTHER_ENV)
    out: dict[str, str] = {}
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known or upper.startswith(OTHER_ENV_PREFIXES):
            continue
        if upper in RETIRED_ENV:
            out[name] = f"{name} is no longer read; use {RETIRED_ENV[upper]}"
            continue
        # Compare what follows the prefix: the shared prefix would make everything "close".
        tails = {k.removeprefix(prefix): k for k in known}
        close = difflib.get_close_matches(upper.removeprefix(prefix), tails, n=1, cutoff=0.75)
        hint = f"; did you mean {tails[close[0]]}?" if close else " (README lists every setting)"
        out[name] = f"{name} is not a Mediaplane setting and is ignored{hint}"
    return out


#: One line per setting for the README's table; a field missing here falls back to the
#: ``#:`` comment above it in Settings (tests/unit/test_config.py wants one or the other).
MEANINGS = {
    "host": "address `mediaplane up` listens on",
    "port": "port `mediaplane up` listens on",
    "data_dir": "SQLite database, local objects, admin token, embedded broker, work dirs",
    "public_url": "base of printed playback URLs (behind a proxy or CDN)",
    "database_url": "e.g. `postgresql://user@db/mediaplane` for a fleet",
    "broker_url": "`amqp://…` or `redis://…` for a worker fleet",
    "storage_url": "`s3://bucket/prefix?endpoint=…&region=…` (credentials from `AWS_*`)",
    "queue_namespace": "prefix of the job queues (several installs on one broker)",
    "admin_token": "the admin API token, instead of the generated `<data-dir>/admin-token`",
    "secret_key": "signs access tokens for apps, instead of the generated `<data-dir>/secret-key`",
    "master_key": "base64 of 32 bytes: wraps the key store's key-encryption keys (content "
    "protection), instead of the generated `<data-dir>/master-key`",
    "kms_url": "`aws-kms://KEY-ID?region=R[&endpoint=URL]`: AWS KMS wraps the key-encryption "
    "keys instead of the master key",
    "protection_keys": "content keys of a protected asset: `track` (one each for SD, HD and "
    "audio) or `asset` (one for all its tracks)",
    "replaced_renditions_seconds": "how long renditions a re-package replaced (the clear ones of "
    "a newly protected asset too) keep playing for players on them before they are deleted",
    "speke_url": "SPEKE v2 endpoint of a multi-DRM key provider: protected assets get its keys "
    "and PSSH",
    "speke_api_key": "sent to the SPEKE key provider as `x-api-key`",
    "speke_cert_file": "our certificate (PEM, RSA 2048+): the key provider encrypts the keys "
    "for it (CPIX content key encryption)",
    "speke_key_file": "the SPEKE certificate's private key (PEM; default: in the cert file)",
    "speke_systems": "DRM systems asked of the key provider, comma-separated: widevine, playready",
    "access_token_seconds": "lifetime of an app's access token (JWT)",
    "refresh_token_seconds": "lifetime of a refresh token (each use rotates it)",
    "web_session_seconds": "lifetime of a signed-in browser session (cookie and server row)",
    "signup_open": "anyone may create an account on the sign-up page",
    "signin_requires_verified_email": "a local account signs in only once its address is verified",
    "verify_token_seconds": "lifetime of an e-mail verification link",
    "reset_token_seconds": "lifetime of a password-reset link (each works once)",
    "signin_failures_per_account": "failed sign-ins on one account before it is locked out a while",
    "signin_failures_per_address": "failed sign-ins from one client address before it waits",
    "signin_lockout_seconds": "first lockout after too many failures; each further failure doubles "
    "it (at most an hour)",
    "redis_url": "`redis://host:6379/0`: sign-in brakes and stream limits shared by every web "
    "process (none: each process keeps its own)",
    "max_streams_per_viewer": "simultaneous streams per account on signed playback (0: no "
    "limit; a plan's limit wins)",
    "stream_ttl_seconds": "a stream stops counting this long after its last segment request "
    "or player ping",
    "smtp_host": "SMTP server for verification and reset mail; none: the links go to the log",
    "smtp_port": "SMTP port (587 submission, 25 relay)",
    "smtp_from": "sender address of account mail",
    "smtp_user": "SMTP login (none: send without authenticating)",
    "smtp_password": "SMTP password",
    "smtp_starttls": "upgrade the SMTP connection with STARTTLS before logging in",
    "oidc_providers": "OpenID Connect sign-in: JSON list of `{name, discovery_url, client_id, "
    "client_secret, scopes?, title?, trust_email?}`",
    "oidc_timeout_seconds": "time each request to an OpenID Connect provider gets",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "`auto`: readable lines on a terminal, JSON lines otherwise; `console`; `json`",
    "ffmpeg_path": "the ffmpeg binary",
    "ffprobe_path": "the ffprobe binary",
    "packager_path": "the Shaka Packager binary",
    "node_modules_dir": "where the npm packages (Shaka Packager, players) are installed",
    "playback_cache_seconds": "the origin trusts a playback lookup (ids, rights, grants, "
    "signing keys) this long; changes take effect within it",
    "live_ingest": "`mediaplane up` runs the live ingest (RTMP and SRT publishers in)",
    "rtmp_port": "RTMP ingest port (`rtmp://host:port/live/STREAM-KEY`)",
    "srt_port": "SRT ingest port, UDP (`srt://host:port?streamid=STREAM-KEY`)",
    "rtmps_cert_file": "TLS certificate (PEM, chain first) for RTMPS ingest; none: no RTMPS",
    "rtmps_key_file": "the RTMPS certificate's private key (PEM; default: in the cert file)",
    "rtmps_port": "RTMPS ingest port, when a certificate is set "
    "(`rtmps://host:port/live/STREAM-KEY`)",
    "live_max_connections": "publisher connections the live ingest holds at once",
    "live_max_connections_per_address": "publisher connections from one address the live "
    "ingest holds at once",
    "live_part_seconds": "LL-HLS part length of low-latency live streams",
    "live_ladder": (
        "live renditions: `passthrough` (the publisher's H.264 only) or `abr` (plus up to"
        " 2 lower rungs encoded live)"
    ),
    "live_key_rotation_segments": "a protected live stream's content key rotates every"
    " this many segments (0: one key per session)",
    "webrtc_max_viewers": "WHEP viewers one live stream takes at once",
    "webrtc_peer_timeout_seconds": "a WHIP/WHEP peer not connected this long is closed",
    "webrtc_ice_addresses": "local addresses offered as WebRTC ICE host candidates "
    "(comma-separated; empty: every non-loopback interface)",
    "web_workers": "web server processes (API, origin, uploads)",
    "worker_concurrency": "parallel jobs per worker (`mediaplane worker -c`)",
    "thumbnail_concurrency": "thumbnail extractions (ffmpeg) a web process runs at once",
    "thumbnail_queue_seconds": "a thumbnail request waits this long for a free extraction, "
    "then gets 503 + Retry-After",
    "x264_preset": "encoder speed/quality",
    "segment_seconds": "segment (and GOP) length of the renditions",
    "deinterlace": "interlaced sources: `frame` (25i → 25 fps) or `field` (25i → 50 fps)",
    "chunked_encoding": "`on`: upper rungs as chunk jobs across the fleet; `auto` = on with a "
    "RabbitMQ/Redis broker, off (one pass) when embedded",
    "encode_chunk_seconds": "source seconds per chunk job (whole segments)",
    "max_upload_bytes": "largest upload accepted",
    "upload_expiry_seconds": "unfinished tus uploads expire this long after their last write",
    "upload_lock_seconds": "a tus PATCH holds its upload this long past its last write",
    "max_input_pixels": "largest source frame (width × height)",
    "max_input_side": "largest source width or height",
    "max_input_seconds": "longest source duration",
    "subprocess_memory_bytes": "address space an ffmpeg or packager process may map",
    "probe_timeout_seconds": "time ffprobe gets to read a source",
    "import_allow": "extra networks URL imports may reach, e.g. `10.0.0.0/8` (comma-separated)",
    "import_max_bytes": "largest URL import",
    "import_timeout_seconds": "time a URL import may take",
    "import_max_redirects": "redirects a URL import follows",
    "moderation_hold": "source types held for moderation before playback (comma-separated)",
    "territory_header": "trusted viewer-country header set by your CDN, e.g. `CF-IPCountry`",
    "territory_cidr_file": "CSV `cidr,country` to place viewers by address",
    "job_stall_seconds": "a running job silent this long is re-queued by the watchdog",
    "job_max_attempts": "attempts before a job (and its asset) errors",
    "watchdog_interval_seconds": "how often the watchdog re-queues stalled jobs, expires uploads",
    "events_url": (
        "event bus: `redis://…` (Redis Streams), `nats://…` (NATS JetStream), "
        "`kafka://host:9092` (Kafka); none: in-process"
    ),
    "events_relay": "relay outbox events to the bus from the web processes (one holds a lease)",
    "events_relay_interval_seconds": "how often an idle relay looks for new events",
    "events_retention_seconds": "published events stay in the outbox this long (then deleted)",
    "webhook_allow": "extra networks webhook endpoints may be in, e.g. `10.0.0.0/8`",
    "webhook_retry_window_seconds": "a failing webhook delivery is retried this long, then failed",
    "webhook_retry_base_seconds": "first webhook retry delay (doubling, with jitter, up to 1 h)",
    "webhook_connect_timeout_seconds": "time to connect to a webhook endpoint",
    "webhook_timeout_seconds": "time a webhook endpoint has for its whole answer",
    "webhook_concurrency_per_endpoint": "webhook deliveries in flight to one endpoint at once",
    "webhook_concurrency": "webhook deliveries in flight at once per process",
    "analytics_key": "key of the keyed hash that pseudonymises viewers in the analytics lake, "
    "instead of the generated `<data-dir>/analytics-key`",
    "analytics_retention_days": "the analytics lake keeps this many days of beacons and CMCD",
    "beacon_max_bytes": "largest QoE beacon batch (`POST /api/v1/beacons`)",
    "beacon_batches_per_viewer": "beacon batches one viewer may send per minute",
    "beacon_batches_per_address": "beacon batches one client address may send per minute",
    "beacon_clock_skew_seconds": "a beacon event may be this far in the past; earlier or future "
    "times are clamped",
    "lake_buffer_rows": "analytics rows a web process buffers before refusing beacons (503)",
    "lake_flush_rows": "the analytics buffer is written as Parquet when this many rows wait",
    "lake_flush_seconds": "the analytics buffer is written when its oldest row has waited this "
    "long (seconds)",
    "analytics_build_interval_seconds": "the warehouse job (dbt build of the QoE models and "
    "their data tests) runs this often (seconds); 0: only by `mediaplane analytics build`",
    "realtime_window_seconds": "a view counts among the real-time viewers while its newest "
    "beacon is younger than this (seconds)",
}
#: Defaults that are computed, or that a bare value would not explain.
DEFAULT_TEXT = {
    "database_url": "SQLite in the data dir",
    "broker_url": "embedded (SQLite in the data dir)",
    "events_url": "in-process (the outbox table)",
    "storage_url": "`<data-dir>/objects`",
    "public_url": "`http://host:port`",
    "admin_token": "generated",
    "secret_key": "generated",
    "master_key": "generated",
    "kms_url": "none (the master key)",
    "speke_url": "none (keys made here)",
    "analytics_key": "generated",
    "redis_url": "none (in process)",
    "packager_path": "the one in `node_modules`",
    "node_modules_dir": "`node_modules` of the checkout",
    "worker_concurrency": "half the CPU cores, at least 2",
    "thumbnail_concurrency": "the CPU cores",
}


def _comment_meanings() -> dict[str, str]:
    """The ``#:`` comment above each Settings field (first sentence), from this file."""
    out: dict[str, str] = {}
    pending: list[str] = []
    in_class = False
    for line in Path(__file__).read_text().splitlines():
        if line.startswith("class Settings("):
            in_class = True
        elif in_class and line and not line.startswith(" "):
            break
        elif in_class and line.strip().startswith("#:"):
            pending.append(line.strip()[2:].strip())
        elif in_class and (m := re.match(r"    (\w+): ", line)):
            if pending:
                out[m.group(1)] = " ".join(pending).split(". ")[0].rstrip(".")
            pending = []
        else:
            pending = []
    return out


def _default_text(name: str) -> str:
    if name in DEFAULT_TEXT:
        return DEFAULT_TEXT[name]
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if name.endswith("_bytes") and isinstance(value, int) and value >= 1 << 20:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
            if value % size == 0:
                return f"{value} ({value // size} {unit})"
    return f"`{value}`"


def settings_table() -> str:
    """The README's configuration table (Markdown): every Settings field, its variable,
    default and meaning."""
    comments = _comment_meanings()
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | setting | default | meaning |", "|---|---|---|---|"]
    for name in Settings.model_fields:
        meaning = MEANINGS.get(name) or comments.get(name, "")
        rows.append(f"| `{prefix}{name.upper()}` | `{name}` | {_default_text(name)} | {meaning} |")
    return "\n".join(rows) + "\n"


# The password runs to the last '@' before the path (an unescaped '@' in it included).
_USERINFO_SECRET = re.compile(r"(//[^/@:?#\s]*):[^/?#\s]*@")
_QUERY_SECRET = re.compile(
    r"([?&;](?:password|passwd|pwd|secret|secret_access_key|access_token|token|api_key|"
    r"x-amz-signature|x-amz-credential|signature|sig)=)[^&;#\s]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``url`` fit for a log line or an error: a password (``user:pw@``) and secret query
    values (``password=``, ``token=``, signatures) become ``***``. Never raises."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO_SECRET.sub(r"\1:***@", url))


def redact(text: str, *secrets: str | None) -> str:
    """``text`` (an exception message, say) with URLs redacted and each of ``secrets``
    (passwords or tokens of 4 characters or more) replaced by ``***``."""
    out = redact_url(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    return out
