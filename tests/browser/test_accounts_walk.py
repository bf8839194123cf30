"""Accounts walked in Chromium: sign-up, the verification link from a real SMTP server on
the loopback (aiosmtpd), sign-in, the profile with its session, sign-out, then a password
reset by mail and a sign-in with the new password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller

from tests.support import Server, embedded_backend, free_port, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console

pytestmark = pytest.mark.browser
EMAIL = "walker@example.org"


class Inbox:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.bodies.append(msg.get_content())  # type: ignore[attr-defined]
        return "250 OK"

    def link(self, kind: str) -> str:
        found = re.findall(rf"(http://\S+/{kind}\?token=\S+)", "\n".join(self.bodies))
        assert found, self.bodies
        return str(found[-1])


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Inbox]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    data: Path = tmp_path_factory.mktemp("accounts-walk")
    server = start_server(
        data,
        embedded_backend(),
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        smtp_starttls="false",
        smtp_from="mediaplane@mp.test",
    )
    try:
        yield server, inbox
    finally:
        server.stop()
        controller.stop()


def _wait_for(inbox: Inbox, count: int, page: Page) -> None:
    for _ in range(100):
        if len(inbox.bodies) >= count:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"no mail {count}: {inbox.bodies}")


def test_sign_up_verify_sign_in_profile_sign_out_and_reset(
    page: Page, console: Console, mail_server: tuple[Server, Inbox]
) -> None:
    srv, inbox = mail_server
    page.goto(f"{srv.url}/signup")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "walking the walk")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your e-mail", console
    _wait_for(inbox, 1, page)
    page.goto(inbox.link("verify"))
    assert page.locator("h1").inner_text() == "Address confirmed", console

    page.goto(f"{srv.url}/signin?next=/profile")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "walking the walk")
    page.click("button[type=submit]")
    page.wait_for_url(f"{srv.url}/profile")
    assert page.locator("#profile-email").inner_text() == EMAIL
    agent = page.evaluate("navigator.userAgent")
    assert agent in page.locator("#sessions").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "mp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert page.evaluate("document.cookie").find("mp_session") == -1  # not readable by JS

    page.click("#signout")
    page.wait_for_url(f"{srv.url}/signin")
    page.goto(f"{srv.url}/profile")
    assert page.url.startswith(f"{srv.url}/signin")

    # Forgot the password: a reset link by mail, a new password, a sign-in with it.
    page.goto(f"{srv.url}/reset")
    page.fill("input[name=email]", EMAIL)
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your e-mail", console
    _wait_for(inbox, 2, page)
    page.goto(inbox.link("reset/confirm"))
    page.fill("input[name=password]", "a new walk entirely")
    page.click("button[type=submit]")
    page.wait_for_url(f"{srv.url}/signin")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "a new walk entirely")
    page.click("button[type=submit]")
    page.wait_for_url(f"{srv.url}/profile")
    assert page.locator("#profile-email").inner_text() == EMAIL
    assert EMAIL not in srv.log()
