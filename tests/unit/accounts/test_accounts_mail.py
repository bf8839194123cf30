"""Account mail: through a real SMTP server on the loopback (aiosmtpd), or to the log — which
names the user by id and never carries the address."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from structlog.testing import capture_logs

from mediaplane.accounts import LogMailer, Mail, MailNotSent, SmtpMailer, mailer_for
from mediaplane.config import Settings
from tests.support import free_port

MAIL = Mail(
    "someone@example.org",
    "u123",
    "Confirm your e-mail address",
    "Open http://mp.test/verify?token=abc\n",
    "http://mp.test/verify?token=abc",
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mp", b"s3cret")
    # handled=False: aiosmtpd answers the refusal (535) itself; with its default (True) a
    # wrong password got no answer, and became MailNotSent only at SMTP_TIMEOUT (20 s)
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_auth,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_mail_goes_through_the_smtp_server(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = mailer_for(
        Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="mp@mp.test", smtp_starttls=False)
    )
    assert isinstance(mailer, SmtpMailer)
    with capture_logs() as logs:
        mailer.send(MAIL)
    [(sender, rcpts, content)] = inbox.messages
    assert sender == "mp@mp.test" and rcpts == ["someone@example.org"]
    msg = message_from_bytes(content, policy=policy.default)
    assert msg["Subject"] == MAIL.subject
    assert MAIL.link in msg.get_content()  # type: ignore[attr-defined]
    assert "someone@example.org" not in repr(logs) and "token=abc" not in repr(logs)
    assert any(e.get("user_id") == "u123" for e in logs)


def test_smtp_login_is_used_when_configured(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    good = SmtpMailer("127.0.0.1", port, "mp@mp.test", "mp", "s3cret", starttls=False)
    good.send(MAIL)
    assert len(inbox.messages) == 1
    bad = SmtpMailer("127.0.0.1", port, "mp@mp.test", "mp", "wrong-password", starttls=False)
    with capture_logs() as logs, pytest.raises(MailNotSent):
        bad.send(MAIL)
    assert len(inbox.messages) == 1
    assert "wrong-password" not in repr(logs) and "someone@example.org" not in repr(logs)


def test_starttls_refused_by_a_plain_server_is_mail_not_sent(smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    with pytest.raises(MailNotSent):
        SmtpMailer("127.0.0.1", port, "mp@mp.test", starttls=True).send(MAIL)


def test_an_unreachable_server_is_mail_not_sent() -> None:
    with pytest.raises(MailNotSent):
        SmtpMailer("127.0.0.1", free_port(), "mp@mp.test", starttls=False).send(MAIL)


def test_without_smtp_the_link_goes_to_the_log_but_not_the_address() -> None:
    mailer = mailer_for(Settings())
    assert isinstance(mailer, LogMailer)
    with capture_logs() as logs:
        mailer.send(MAIL)
    [event] = logs
    assert event["link"] == MAIL.link and event["user_id"] == "u123"
    assert "someone@example.org" not in repr(logs)
