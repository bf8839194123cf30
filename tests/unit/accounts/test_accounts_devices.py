"""Where a user is signed in (web sessions and app sign-ins, with truncated addresses),
ending one of them, and signing out everywhere (or everywhere else)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    Device,
    NotFound,
    Role,
    TokenInvalid,
    TokenPolicy,
    User,
    create_session,
    end_app_sign_in,
    end_session_by_id,
    find_session,
    list_app_sign_ins,
    list_sessions,
    refresh_tokens,
    sign_in_tokens,
    sign_out_everywhere,
    truncate_address,
)

POLICY = TokenPolicy("s" * 48, access_seconds=60, refresh_seconds=3600)


def _user(session: Session, name: str) -> User:
    user = User(email=f"{name}@example.org", role=Role.VIEWER)
    session.add(user)
    session.flush()
    return user


@pytest.mark.parametrize(
    ("address", "kept"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::9", "2001:db8:1234::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("testclient", None),
        ("", None),
        (None, None),
        ("1.2.3.4' OR 1=1", None),
    ],
)
def test_addresses_are_kept_truncated(address: str | None, kept: str | None) -> None:
    assert truncate_address(address) == kept


def test_app_sign_ins_are_listed_per_family_with_their_latest_device(session: Session) -> None:
    user = _user(session, "dev-a")
    first = sign_in_tokens(session, POLICY, user, Device("App/1.0", "203.0.113.5"))
    sign_in_tokens(session, POLICY, user, Device("Other/2.0", "2001:db8::1"))
    refresh_tokens(session, POLICY, first.refresh_token, Device("App/1.1", "203.0.114.5"))
    sign_ins = list_app_sign_ins(session, user.id)
    assert len(sign_ins) == 2
    newest = sign_ins[0]
    assert (newest.user_agent, newest.address) == ("App/1.1", "203.0.114.0/24")
    assert newest.created_at < newest.last_seen_at
    assert sign_ins[1].user_agent == "Other/2.0"


def test_one_app_sign_in_is_ended_and_another_users_is_not_found(session: Session) -> None:
    user, other = _user(session, "dev-b"), _user(session, "dev-b2")
    pair = sign_in_tokens(session, POLICY, user, Device("App", None))
    [sign_in] = list_app_sign_ins(session, user.id)
    with pytest.raises(NotFound):
        end_app_sign_in(session, other.id, sign_in.family_id)
    with pytest.raises(NotFound):
        end_app_sign_in(session, user.id, "x" * 500)
    end_app_sign_in(session, user.id, sign_in.family_id)
    assert list_app_sign_ins(session, user.id) == []
    with pytest.raises(TokenInvalid):
        refresh_tokens(session, POLICY, pair.refresh_token)


def test_one_session_is_ended_by_id_only_by_its_user(session: Session) -> None:
    user, other = _user(session, "dev-c"), _user(session, "dev-c2")
    new = create_session(session, user, "Firefox", 3600, address="198.51.100.20")
    assert new.row.address == "198.51.100.0/24"
    with pytest.raises(NotFound):
        end_session_by_id(session, other.id, new.row.id)
    end_session_by_id(session, user.id, new.row.id)
    assert find_session(session, new.token) is None
    with pytest.raises(NotFound):  # already ended
        end_session_by_id(session, user.id, new.row.id)


def test_sign_out_everywhere_else_keeps_the_current_session(session: Session) -> None:
    user, other = _user(session, "dev-d"), _user(session, "dev-d2")
    here = create_session(session, user, "here", 3600)
    there = create_session(session, user, "there", 3600)
    theirs = create_session(session, other, "theirs", 3600)
    pair = sign_in_tokens(session, POLICY, user)
    done = sign_out_everywhere(session, user.id, keep_session=here.row.id)
    assert (done.sessions, done.app_sign_ins) == (1, 1)
    assert [s.id for s in list_sessions(session, user.id)] == [here.row.id]
    assert find_session(session, there.token) is None
    assert find_session(session, theirs.token) is not None
    with pytest.raises(TokenInvalid):
        refresh_tokens(session, POLICY, pair.refresh_token)
    done = sign_out_everywhere(session, user.id)
    assert (done.sessions, done.app_sign_ins) == (1, 0)
    assert list_sessions(session, user.id) == []
