"""Browser accounts below HTTP: the sign-in brakes, `next=` checks, e-mail tokens (single
use, expiry, purpose), sessions (disabled users, sign out everywhere), sign-up and reset."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    DEFAULT_NEXT,
    AuthenticationFailed,
    EmailNotVerified,
    EmailPurpose,
    EmailToken,
    InProcessLimiter,
    InvalidAccountInput,
    SignInGuard,
    SignInThrottled,
    SignUpClosed,
    TokenInvalid,
    WebPolicy,
    authenticate,
    create_session,
    create_user,
    end_all_sessions,
    find_session,
    finish_reset,
    issue_email_token,
    list_sessions,
    local_next,
    peek_email_token,
    request_reset,
    set_disabled,
    sign_in_session,
    sign_up,
    verify_email,
)
from mediaplane.db import utcnow

PASSWORD = "correct horse battery"
POLICY = WebPolicy("http://mp.test", 3600, 3600, 3600, require_verified=True, signup_open=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock, per_account: int = 3, per_address: int = 10) -> SignInGuard:
    return SignInGuard(
        InProcessLimiter(per_account, 10.0, clock=clock),
        InProcessLimiter(per_address, 10.0, clock=clock),
    )


# --- the limiter --------------------------------------------------------------------------


def test_a_key_is_locked_out_after_its_failures_and_the_wait_doubles() -> None:
    clock = Clock()
    lim = InProcessLimiter(3, 10.0, clock=clock)
    for _ in range(2):
        lim.failed("k")
        assert lim.retry_after("k") == 0
    lim.failed("k")  # the third: locked 10 s
    assert lim.retry_after("k") == pytest.approx(10.0)
    clock.now += 10.5
    assert lim.retry_after("k") == 0
    lim.failed("k")  # one more: 20 s
    assert lim.retry_after("k") == pytest.approx(20.0)
    for _ in range(40):  # never more than an hour, never an overflow
        lim.failed("k")
    assert lim.retry_after("k") == pytest.approx(3600.0)
    assert lim.retry_after("other") == 0
    lim.reset("k")
    assert lim.retry_after("k") == 0


def test_the_limiter_forgets_the_oldest_keys_past_its_size() -> None:
    lim = InProcessLimiter(1, 10.0, max_keys=100, clock=Clock())
    for i in range(1000):
        lim.failed(f"address:{i}")
    assert len(lim._entries) == 100
    assert lim.retry_after("address:999") > 0 and lim.retry_after("address:0") == 0


def test_the_guard_brakes_per_account_and_per_address() -> None:
    clock = Clock()
    g = _guard(clock, per_account=3, per_address=5)
    for _ in range(3):
        g.failed("Victim@Example.org", "10.0.0.1")
    # the account is locked from anywhere, in any case
    assert g.retry_after("victim@example.org", "10.9.9.9") > 0
    assert g.retry_after("someone@example.org", "10.0.0.2") == 0
    # one address spraying many accounts is locked for every account
    for i in range(5):
        g.failed(f"user{i}@example.org", "10.0.0.3")
    assert g.retry_after("fresh@example.org", "10.0.0.3") > 0
    assert g.retry_after("fresh@example.org", "10.0.0.4") == 0


# --- next= --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
        "evil.example",
        "",
        "/" + "a" * 3000,
    ],
)
def test_next_refuses_anything_that_leaves_the_site(value: str) -> None:
    assert local_next(value) == DEFAULT_NEXT


@pytest.mark.parametrize("value", ["/", "/profile", "/watch/abc?t=10#x", "/upload?a=%20b"])
def test_next_keeps_paths_on_this_site(value: str) -> None:
    assert local_next(value) == value


# --- e-mail tokens ------------------------------------------------------------------------


def test_a_verification_link_works_once(session: Session) -> None:
    user = create_user(session, "verify-once@example.org", PASSWORD)
    token = issue_email_token(session, user, EmailPurpose.VERIFY, 3600)
    assert verify_email(session, token).email_verified
    with pytest.raises(TokenInvalid):
        verify_email(session, token)


def test_tokens_expire_and_keep_to_their_purpose(session: Session) -> None:
    user = create_user(session, "expire@example.org", PASSWORD)
    reset = issue_email_token(session, user, EmailPurpose.RESET, 3600)
    with pytest.raises(TokenInvalid):  # a reset token is no verification token
        verify_email(session, reset)
    assert peek_email_token(session, reset, EmailPurpose.RESET)
    session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not peek_email_token(session, reset, EmailPurpose.RESET)
    with pytest.raises(TokenInvalid):
        finish_reset(session, reset, "a new password")


@pytest.mark.parametrize("token", ["", "x", "a" * 129, "a" * 100_000, "' OR 1=1 --", "\u202e"])
def test_garbage_tokens_are_refused(session: Session, token: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_email(session, token)
    assert not peek_email_token(session, token, EmailPurpose.RESET)


def test_a_reset_sets_the_password_once_and_signs_out_everywhere(session: Session) -> None:
    user = create_user(session, "reset@example.org", PASSWORD)
    old = create_session(session, user, "old browser", 3600)
    mail = request_reset(session, POLICY, "RESET@example.org")
    assert mail is not None and mail.user_id == user.id and mail.to == "reset@example.org"
    assert mail.link.startswith("http://mp.test/reset/confirm?token=")
    token = mail.link.split("token=", 1)[1]
    other = issue_email_token(session, user, EmailPurpose.RESET, 3600)
    with pytest.raises(InvalidAccountInput):  # too short: the token survives
        finish_reset(session, token, "short")
    finish_reset(session, token, "a brand new password")
    assert authenticate(session, "reset@example.org", "a brand new password").id == user.id
    assert find_session(session, old.token) is None
    for used in (token, other):  # replayed, and the user's other links die with it
        with pytest.raises(TokenInvalid):
            finish_reset(session, used, "yet another password")


def test_no_reset_mail_for_unknown_or_disabled_accounts(session: Session) -> None:
    assert request_reset(session, POLICY, "nobody@example.org") is None
    assert request_reset(session, POLICY, "not an address") is None
    user = create_user(session, "disabled-reset@example.org", PASSWORD)
    set_disabled(session, user.id)
    assert request_reset(session, POLICY, "disabled-reset@example.org") is None


# --- sessions -----------------------------------------------------------------------------


def test_a_disabled_users_sessions_stop_at_once(session: Session) -> None:
    user = create_user(session, "disabled-session@example.org", PASSWORD)
    new = create_session(session, user, "Chromium", 3600)
    found = find_session(session, new.token)
    assert found is not None and found[1].id == user.id
    set_disabled(session, user.id)
    assert find_session(session, new.token) is None
    set_disabled(session, user.id, False)
    assert find_session(session, new.token) is not None


def test_sign_out_everywhere_ends_every_session(session: Session) -> None:
    user = create_user(session, "everywhere@example.org", PASSWORD)
    a = create_session(session, user, "A" * 1000, 3600)
    b = create_session(session, user, "B", 3600)
    assert len(a.row.user_agent) == 300
    assert {s.id for s in list_sessions(session, user.id)} == {a.row.id, b.row.id}
    assert end_all_sessions(session, user.id) == 2
    assert find_session(session, a.token) is None and find_session(session, b.token) is None
    assert list_sessions(session, user.id) == []


def test_expired_and_garbage_sessions_are_none(session: Session) -> None:
    user = create_user(session, "expired-session@example.org", PASSWORD)
    new = create_session(session, user, "x", 3600)
    new.row.expires_at = utcnow() - timedelta(seconds=1)
    session.flush()
    assert find_session(session, new.token) is None
    for garbage in (None, "", "nope", "a" * 10_000):
        assert find_session(session, garbage) is None


# --- sign-up and sign-in ------------------------------------------------------------------


def test_sign_up_mails_a_verification_link_and_tells_nothing_about_taken_addresses(
    session: Session,
) -> None:
    mail = sign_up(session, POLICY, "New@Example.org", PASSWORD)
    assert mail.link.startswith("http://mp.test/verify?token=") and mail.to == "new@example.org"
    again = sign_up(session, POLICY, "new@example.org", "another password")
    # the second one goes to the owner, as a reset link; the page cannot tell them apart
    assert again.user_id == mail.user_id and "/reset/confirm?token=" in again.link
    for email, password in (("not-an-address", PASSWORD), ("x@example.org", "short")):
        with pytest.raises(InvalidAccountInput):
            sign_up(session, POLICY, email, password)
    with pytest.raises(SignUpClosed):
        sign_up(session, replace(POLICY, signup_open=False), "closed@example.org", PASSWORD)


def test_an_unverified_account_signs_in_only_when_the_policy_allows(session: Session) -> None:
    mail = sign_up(session, POLICY, "unverified@example.org", PASSWORD)
    g = _guard(Clock())
    kw = {"address": "10.0.0.1", "user_agent": "test"}
    with pytest.raises(EmailNotVerified):
        sign_in_session(session, POLICY, g, "unverified@example.org", PASSWORD, **kw)
    lax = replace(POLICY, require_verified=False)
    assert sign_in_session(session, lax, g, "unverified@example.org", PASSWORD, **kw).token
    verify_email(session, mail.link.split("token=", 1)[1])
    new = sign_in_session(session, POLICY, g, "unverified@example.org", PASSWORD, **kw)
    assert find_session(session, new.token) is not None


def test_sign_in_is_braked_before_the_password_is_checked(session: Session) -> None:
    create_user(session, "braked@example.org", PASSWORD, email_verified=True)
    clock = Clock()
    g = _guard(clock, per_account=3)
    kw = {"address": "10.0.0.7", "user_agent": "test"}
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            sign_in_session(session, POLICY, g, "braked@example.org", "wrong password", **kw)
    with pytest.raises(SignInThrottled) as caught:  # even the right password waits
        sign_in_session(session, POLICY, g, "braked@example.org", PASSWORD, **kw)
    assert caught.value.retry_after == 10
    clock.now += 11
    assert sign_in_session(session, POLICY, g, "braked@example.org", PASSWORD, **kw).token
    # success forgets the failures
    assert g.retry_after("braked@example.org", "10.0.0.7") == 0
