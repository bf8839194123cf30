"""Local accounts in the browser: sign-up with a verification mail, sign-in to a session
(braked by :class:`SignInGuard`), and password reset by mail.

Each function takes an open database session and returns what the caller sends *after*
the commit (a :class:`Mail`), so a mail never announces a row that was rolled back. Links
are built on the configured public URL, never on the request's Host header (a forged Host
must not put an attacker's address in a reset mail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.orm import Session

from ._email_tokens import EmailPurpose, issue_email_token, reset_password
from ._errors import AccountsError, AuthenticationFailed
from ._limits import SignInGuard
from ._mail import Mail
from ._models import Role, User
from ._sessions import NewSession, create_session, end_all_sessions
from ._users import authenticate, create_user, find_user, hash_password, normalise_email

if TYPE_CHECKING:
    from mediaplane.config import Settings


class SignInThrottled(AccountsError):
    """Too many failed sign-ins for this account or from this address: wait ``retry_after``."""

    code = "too_many_attempts"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(f"Too many failed sign-ins. Try again in {seconds} seconds.")
        self.retry_after = seconds


class EmailNotVerified(AuthenticationFailed):
    """Right password, but the address is not verified yet (and the settings require it)."""

    code = "email_not_verified"


class SignUpClosed(AccountsError):
    """This install does not take sign-ups (``MEDIAPLANE_SIGNUP_OPEN=false``)."""

    code = "signup_closed"


@dataclass(frozen=True)
class WebPolicy:
    """The settings the browser flows need, read once."""

    base_url: str
    session_seconds: int
    verify_seconds: int
    reset_seconds: int
    require_verified: bool
    signup_open: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> WebPolicy:
        return cls(
            settings.effective_public_url.rstrip("/"),
            settings.web_session_seconds,
            settings.verify_token_seconds,
            settings.reset_token_seconds,
            settings.signin_requires_verified_email,
            settings.signup_open,
        )

    def link(self, path: str, token: str) -> str:
        return f"{self.base_url}{path}?token={quote(token)}"


def sign_up(s: Session, policy: WebPolicy, email: str, password: str) -> Mail:
    """Create a viewer account and return its verification mail.

    An address that has an account already gets a different mail (a reset link) and the
    caller cannot tell: the page says the same either way, so sign-up reveals no accounts.
    """
    if not policy.signup_open:
        raise SignUpClosed("Sign-up is closed on this site; ask its operator for an account.")
    address = normalise_email(email)
    hash_password(password)  # refuse a bad password before anything else
    existing = find_user(s, address)
    if existing is not None:
        token = issue_email_token(s, existing, EmailPurpose.RESET, policy.reset_seconds)
        link = policy.link("/reset/confirm", token)
        text = (
            "Someone (you?) tried to create an account with this address, which has one "
            f"already. If you forgot your password, choose a new one here:\n\n{link}\n"
        )
        return Mail(existing.email, existing.id, "Your Mediaplane account", text, link)
    user = create_user(s, address, password, Role.VIEWER)
    token = issue_email_token(s, user, EmailPurpose.VERIFY, policy.verify_seconds)
    link = policy.link("/verify", token)
    text = f"Welcome to Mediaplane. Confirm your e-mail address by opening:\n\n{link}\n"
    return Mail(user.email, user.id, "Confirm your e-mail address", text, link)


def sign_in_session(
    s: Session,
    policy: WebPolicy,
    guard: SignInGuard,
    email: str,
    password: str,
    *,
    address: str,
    user_agent: str,
) -> NewSession:
    """Check the credentials (unless braked) and open a browser session.

    Raises :class:`SignInThrottled` (nothing checked), :class:`AuthenticationFailed`
    (counted as a failure) or :class:`EmailNotVerified`.
    """
    wait = guard.retry_after(email, address)
    if wait > 0:
        raise SignInThrottled(wait)
    try:
        user = authenticate(s, email, password)
    except AuthenticationFailed:
        guard.failed(email, address)
        raise
    guard.succeeded(email, address)
    if policy.require_verified and not user.email_verified:
        raise EmailNotVerified(
            "Confirm your e-mail address first: open the link we sent you "
            "(or reset your password to get a new one)."
        )
    return create_session(s, user, user_agent, policy.session_seconds, address=address)


def request_reset(s: Session, policy: WebPolicy, email: str) -> Mail | None:
    """A reset mail for the account of ``email``, or None when there is none (the page says
    the same either way). Disabled accounts get none."""
    user = find_user(s, email)
    if user is None or user.disabled:
        return None
    token = issue_email_token(s, user, EmailPurpose.RESET, policy.reset_seconds)
    link = policy.link("/reset/confirm", token)
    text = (
        "Choose a new Mediaplane password here (the link works once, for "
        f"{max(1, policy.reset_seconds // 60)} minutes):\n\n{link}\n\n"
        "If you did not ask for this, ignore this mail."
    )
    return Mail(user.email, user.id, "Reset your password", text, link)


def finish_reset(s: Session, token: str, password: str) -> User:
    """Spend a reset token, set the new password and sign the user out everywhere."""
    user = reset_password(s, token, password)
    end_all_sessions(s, user.id)
    return user


#: Where a sign-in goes when ``next`` is missing or refused.
DEFAULT_NEXT = "/profile"


def _local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//"):
        return False
    # Browsers drop tabs and newlines and read "\" as "/": "/\evil" and "/\t/evil" leave.
    if any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def local_next(value: str | None) -> str:
    """``value`` when it is a path on this site (``/watch/x?t=1``), else :data:`DEFAULT_NEXT`.

    Refused: absolute URLs, scheme-relative ``//host``, ``/\\host``, control characters, and
    any of these percent-encoded once (``/%2F%2Fhost``, ``%2F%5Chost``)."""
    if not value or len(value) > 2000:
        return DEFAULT_NEXT
    if _local_path(value) and _local_path(unquote(value)):
        return value
    return DEFAULT_NEXT
