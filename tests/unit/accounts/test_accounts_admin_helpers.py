"""What the admin and studio pages call: the user search (a literal substring, no LIKE
wildcards), role changes, the channels a user may upload into, and the server's own
page-signing key (its tokens verify; revoked, it is replaced)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    INSTALL,
    ChannelRole,
    InvalidAccountInput,
    NotFound,
    PlaybackTokenRejected,
    create_channel,
    create_user,
    list_users,
    page_key_id,
    revoke_signing_key,
    session_lookup,
    set_member,
    set_role,
    sign_page_tokens,
    upload_channels,
    user_principal,
    verify_playback_token,
)
from mediaplane.runtime import Runtime

PASSWORD = "correct horse battery"


def test_the_user_search_is_a_literal_case_insensitive_substring(session: Session) -> None:
    for email in ("ann_100%@search.test", "annx100y@search.test", "bob@search.test"):
        create_user(session, email, None)
    found, total = list_users(session, email_contains="ANN_100%")
    assert [u.email for u in found] == ["ann_100%@search.test"] and total == 1
    found, total = list_users(session, email_contains="@search.test", limit=2)
    assert total == 3 and len(found) == 2
    assert [u.email for u in list_users(session, email_contains="@search.test", page=2)[0]] == []
    assert len(list_users(session, email_contains="@search.test", limit=2, page=2)[0]) == 1


def test_set_role_takes_known_roles_only(session: Session) -> None:
    user = create_user(session, "promote@roles.test", None)
    assert set_role(session, user.id, "moderator").role == "moderator"
    assert user_principal(user).role == "moderator"
    with pytest.raises(InvalidAccountInput):
        set_role(session, user.id, "emperor")
    with pytest.raises(NotFound):
        set_role(session, "nobody", "viewer")


def test_upload_channels_are_those_the_user_edits(session: Session) -> None:
    owner = create_user(session, "owner@upch.test", None, "creator")
    helper = create_user(session, "helper@upch.test", None, "creator")
    mine = create_channel(session, user_principal(owner), "Mine")
    shared = create_channel(session, user_principal(owner), "Shared")
    watched = create_channel(session, user_principal(owner), "Watched")
    set_member(session, user_principal(owner), shared.id, helper.id, ChannelRole.EDITOR)
    set_member(session, user_principal(owner), watched.id, helper.id, ChannelRole.VIEWER)
    assert [c.id for c in upload_channels(session, user_principal(helper))] == [shared.id]
    owned = [c.id for c in upload_channels(session, user_principal(owner))]
    assert owned == [mine.id, shared.id, watched.id]
    assert {mine.id, shared.id, watched.id} <= {c.id for c in upload_channels(session, INSTALL)}


def test_page_tokens_verify_and_a_revoked_page_key_is_replaced(rt: Runtime) -> None:
    with rt.db.session() as s:
        tokens = sign_page_tokens(s, rt.settings, "pbpagekey", "viewer-1")
    first = page_key_id(rt.settings)
    assert first is not None and set(tokens) == {"v", "t"}
    assert (rt.settings.data_path / "page-signing-key").stat().st_mode & 0o077 == 0
    with rt.db.session() as s:
        grant = verify_playback_token(tokens["v"], "pbpagekey", "v", session_lookup(s))
        assert grant.key_id == first and grant.viewer_id == "viewer-1"
        verify_playback_token(tokens["t"], "pbpagekey", "t", session_lookup(s))
        with pytest.raises(PlaybackTokenRejected):  # a video token is no thumbnail token
            verify_playback_token(tokens["v"], "pbpagekey", "t", session_lookup(s))
        again = sign_page_tokens(s, rt.settings, "pbpagekey", None)
        assert page_key_id(rt.settings) == first  # the same key while it is live
        revoke_signing_key(s, first)
    with rt.db.session() as s, pytest.raises(PlaybackTokenRejected) as refused:
        verify_playback_token(again["v"], "pbpagekey", "v", session_lookup(s))
    assert refused.value.code == "token_key_revoked"
    with rt.db.session() as s:
        fresh = sign_page_tokens(s, rt.settings, "pbpagekey", None)
    assert page_key_id(rt.settings) not in (None, first)
    with rt.db.session() as s:
        verify_playback_token(fresh["v"], "pbpagekey", "v", session_lookup(s))
