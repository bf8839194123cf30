"""Accounts: users and sign-in, API keys, tokens for apps, and signed-playback keys.

Users have a role (viewer, creator, moderator, admin) and an argon2id password hash (or
none: OpenID Connect only). Servers use scoped API keys (``read`` < ``write`` < ``admin``),
stored hashed; the configured admin token is the install's first admin key. Apps trade a
password for a short-lived JWT access token and a rotating refresh token. Signed playback
follows Mux's scheme: RSA signing keys, RS256 playback tokens checked by
:func:`verify_playback_token`. Users may also sign in through the OpenID Connect providers
in the settings (:func:`oidc_router`), linked by ``iss`` + ``sub`` or a verified e-mail.
:func:`entitle` is the one entitlement decision (may this viewer play this asset now, at what
maximum height), with a reason code when not; it weighs an asset's :class:`AccessRule`
(visibility, free / plan / rental / purchase) against the :class:`AccountFacts` that
:func:`account_facts` reads from the viewer's plans and grants (:mod:`._plans`, managed by
admins through /api/v1/plans and /api/v1/grants); :class:`StreamTracker` counts each
account's simultaneous streams (in process, or in Redis for a fleet: :mod:`._streams`).

Errors::

    AccountsError                   every error here; ``code`` is stable for clients
    ├── InvalidAccountInput         a bad e-mail address, password, role or scope
    ├── EmailTaken                  the address has an account already
    ├── AuthenticationFailed        wrong credentials or a disabled account (one message)
    ├── ApiKeyInvalid               unknown, revoked, retired admin token, owner disabled
    ├── InsufficientScope           a valid key whose scope is too narrow
    ├── TokenInvalid                an access or refresh token that is not (or no longer) good
    │   └── RefreshTokenReused      a spent refresh token again: its family is revoked
    ├── NotFound                    no such user, API key, signing key, plan or grant
    ├── OidcError                   an OpenID Connect sign-in that cannot go on (``status``)
    ├── PlaybackTokenRejected       ``code`` is one of REJECTION_REASONS
    ├── MailNotSent                 the SMTP server refused or could not be reached
    ├── SignInThrottled             too many failed sign-ins: ``retry_after`` seconds
    └── SignUpClosed                sign-up is switched off
    (AuthenticationFailed ── EmailNotVerified: right password, address not verified yet)

Browsers: sign-up, sign-in, reset (:mod:`._local`) open server-side sessions behind an
``HttpOnly`` cookie (:mod:`._sessions`; :func:`session_user` resolves one); forms carry a
CSRF token; sign-in is braked per account and per address (:mod:`._limits`; in Redis when
``MEDIAPLANE_REDIS_URL`` is set); account mail
goes to SMTP or the log (:mod:`._mail`).

Who asks is one :class:`Principal` per request (:func:`current_principal`: the admin
token, an API key, a JWT access token, a web session, or anonymous); the dependencies
:func:`authenticated`, :func:`require_role` and :func:`require_admin` answer 401 for missing
or bad credentials and 403 (:class:`mediaplane.errors.Forbidden`) for a too narrow scope or
role. Channels (``_channels``) have members with a :class:`ChannelRole`; a channel the
caller is no member of answers 404 (:class:`ChannelNotFound`).
"""

from __future__ import annotations

from ._admin import create_user_command
from ._api import api_router
from ._api_keys import (
    NewApiKey,
    adopt_admin_token,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    verify_api_key,
)
from ._app_tokens import (
    AccessClaims,
    Device,
    TokenPair,
    TokenPolicy,
    issue_access_token,
    refresh_tokens,
    revoke_family,
    revoke_user_tokens,
    sign_in_tokens,
    verify_access_token,
)
from ._channels import (
    Channel,
    ChannelMember,
    ChannelNotFound,
    ChannelRole,
    check_channel_role,
    create_channel,
    list_channels,
    member_channel_ids,
    role_in,
    set_member,
    upload_channel,
    upload_channels,
)
from ._devices import (
    AppSignIn,
    SignedOut,
    end_app_sign_in,
    end_session_by_id,
    list_app_sign_ins,
    sign_out_everywhere,
)
from ._email_tokens import (
    EmailPurpose,
    EmailToken,
    issue_email_token,
    peek_email_token,
    reset_password,
    verify_email,
)
from ._entitle import (
    DEFAULT_RENTAL_HOURS,
    ENTITLEMENT_REASONS,
    AccessKind,
    AccessRule,
    AccountFacts,
    Decision,
    RentalFact,
    SubscriptionFact,
    Terms,
    Viewer,
    Visibility,
    entitle,
    grant_max_height,
)
from ._errors import (
    AccountsError,
    ApiKeyInvalid,
    AuthenticationFailed,
    EmailTaken,
    InsufficientScope,
    InvalidAccountInput,
    NotFound,
    PlaybackTokenRejected,
    RefreshTokenReused,
    TokenInvalid,
)
from ._limits import (
    MAX_LOCKOUT_SECONDS,
    InProcessLimiter,
    Limiter,
    RedisLimiter,
    SignInGuard,
    signin_guard,
)
from ._local import (
    DEFAULT_NEXT,
    EmailNotVerified,
    SignInThrottled,
    SignUpClosed,
    WebPolicy,
    finish_reset,
    local_next,
    request_reset,
    sign_in_session,
    sign_up,
)
from ._mail import LogMailer, Mail, Mailer, MailNotSent, SmtpMailer, mailer_for
from ._models import (
    ApiKey,
    Identity,
    KeySource,
    RefreshToken,
    Role,
    Scope,
    SigningKey,
    User,
    truncate_address,
)
from ._oidc import (
    OidcClient,
    OidcError,
    link_user,
    oidc_router,
    safe_next,
    sign_in_user,
    validate_id_token,
)
from ._page_keys import PAGE_TOKEN_SECONDS, page_key_id, sign_page_tokens
from ._plans import (
    Grant,
    GrantInput,
    GrantKind,
    Plan,
    PlanChannel,
    account_facts,
    create_grant,
    create_plan,
    delete_plan,
    get_grant,
    get_plan,
    list_grants,
    list_plans,
    plan_channel_ids,
    record_rental_start,
    revoke_grant,
    update_plan,
)
from ._principal import (
    ANONYMOUS,
    INSTALL,
    Principal,
    authenticated,
    check_scope,
    current_principal,
    require_admin,
    require_role,
    require_scope,
    user_principal,
)
from ._redis import redis_client
from ._sessions import (
    ANON_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    NewSession,
    WebSession,
    clear_cookie,
    create_session,
    csrf_for,
    csrf_ok,
    end_all_sessions,
    end_session,
    find_session,
    is_https,
    list_sessions,
    session_for_api,
    session_user,
    set_cookie,
)
from ._signing import (
    AUDIENCES,
    REJECTION_REASONS,
    CachedKeys,
    KeyLookup,
    NewSigningKey,
    PlaybackGrant,
    PublicKey,
    create_signing_key,
    list_signing_keys,
    revoke_signing_key,
    session_lookup,
    verify_playback_token,
)
from ._streams import (
    InProcessStreams,
    RedisStreams,
    StreamLimiter,
    StreamTracker,
    new_stream_id,
    stream_tracker,
)
from ._tokens import ensure_admin_token, ensure_secret_key
from ._users import (
    authenticate,
    create_user,
    find_user,
    get_user,
    hash_password,
    list_users,
    normalise_email,
    set_disabled,
    set_role,
)

__all__ = [
    "ANONYMOUS",
    "DEFAULT_RENTAL_HOURS",
    "AccessKind",
    "AccessRule",
    "AccountFacts",
    "RentalFact",
    "SubscriptionFact",
    "Visibility",
    "Grant",
    "GrantInput",
    "GrantKind",
    "Plan",
    "PlanChannel",
    "account_facts",
    "create_grant",
    "create_plan",
    "delete_plan",
    "get_grant",
    "get_plan",
    "list_grants",
    "list_plans",
    "plan_channel_ids",
    "record_rental_start",
    "revoke_grant",
    "update_plan",
    "AppSignIn",
    "Device",
    "SignedOut",
    "end_app_sign_in",
    "end_session_by_id",
    "list_app_sign_ins",
    "sign_out_everywhere",
    "truncate_address",
    "validate_id_token",
    "sign_in_user",
    "safe_next",
    "oidc_router",
    "link_user",
    "OidcError",
    "OidcClient",
    "AUDIENCES",
    "ENTITLEMENT_REASONS",
    "INSTALL",
    "ANON_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULT_NEXT",
    "REJECTION_REASONS",
    "SESSION_COOKIE",
    "AccessClaims",
    "AccountsError",
    "ApiKey",
    "ApiKeyInvalid",
    "AuthenticationFailed",
    "CachedKeys",
    "Decision",
    "Channel",
    "ChannelMember",
    "ChannelNotFound",
    "ChannelRole",
    "EmailNotVerified",
    "EmailPurpose",
    "EmailTaken",
    "EmailToken",
    "Identity",
    "InProcessLimiter",
    "MAX_LOCKOUT_SECONDS",
    "InProcessStreams",
    "RedisLimiter",
    "RedisStreams",
    "StreamLimiter",
    "StreamTracker",
    "new_stream_id",
    "redis_client",
    "signin_guard",
    "stream_tracker",
    "InsufficientScope",
    "InvalidAccountInput",
    "KeyLookup",
    "KeySource",
    "Limiter",
    "LogMailer",
    "Mail",
    "MailNotSent",
    "Mailer",
    "NewApiKey",
    "NewSession",
    "NewSigningKey",
    "NotFound",
    "PlaybackGrant",
    "PlaybackTokenRejected",
    "Principal",
    "PublicKey",
    "RefreshToken",
    "RefreshTokenReused",
    "Role",
    "Scope",
    "SignInGuard",
    "SignInThrottled",
    "SignUpClosed",
    "SigningKey",
    "Terms",
    "SmtpMailer",
    "TokenInvalid",
    "TokenPair",
    "TokenPolicy",
    "User",
    "Viewer",
    "adopt_admin_token",
    "api_router",
    "authenticate",
    "authenticated",
    "check_channel_role",
    "check_scope",
    "create_api_key",
    "create_channel",
    "create_signing_key",
    "create_user",
    "create_user_command",
    "current_principal",
    "WebPolicy",
    "WebSession",
    "clear_cookie",
    "create_session",
    "csrf_for",
    "csrf_ok",
    "end_all_sessions",
    "end_session",
    "ensure_admin_token",
    "entitle",
    "ensure_secret_key",
    "find_session",
    "find_user",
    "finish_reset",
    "get_user",
    "grant_max_height",
    "hash_password",
    "is_https",
    "issue_access_token",
    "issue_email_token",
    "list_api_keys",
    "list_channels",
    "list_signing_keys",
    "member_channel_ids",
    "list_sessions",
    "local_next",
    "mailer_for",
    "normalise_email",
    "peek_email_token",
    "refresh_tokens",
    "request_reset",
    "require_admin",
    "require_role",
    "require_scope",
    "reset_password",
    "revoke_api_key",
    "revoke_family",
    "revoke_user_tokens",
    "revoke_signing_key",
    "role_in",
    "session_for_api",
    "session_lookup",
    "session_user",
    "set_cookie",
    "set_disabled",
    "set_member",
    "sign_in_tokens",
    "upload_channel",
    "upload_channels",
    "PAGE_TOKEN_SECONDS",
    "page_key_id",
    "sign_page_tokens",
    "user_principal",
    "list_users",
    "set_role",
    "sign_in_session",
    "sign_up",
    "verify_access_token",
    "verify_api_key",
    "verify_email",
    "verify_playback_token",
]
