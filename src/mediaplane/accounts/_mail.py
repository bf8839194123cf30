"""Account mail (verification and password-reset links): sent through the configured SMTP
server, or written to the log when none is set.

Logs name the user by id, never by address, and never carry a password. The log mailer
writes the link itself (that is its whole point: the operator hands it on); the SMTP mailer
logs only that it sent.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

import structlog

from ._errors import AccountsError

if TYPE_CHECKING:
    from mediaplane.config import Settings

log = structlog.get_logger("mediaplane.accounts.mail")

#: Seconds an SMTP conversation may take before we give up.
SMTP_TIMEOUT = 20.0


class MailNotSent(AccountsError):
    """The SMTP server refused the message or could not be reached."""

    code = "mail_not_sent"


@dataclass(frozen=True)
class Mail:
    """One message to one user: ``link`` is the action it carries (logged by the log mailer)."""

    to: str
    user_id: str
    subject: str
    text: str
    link: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Deliver ``mail`` or raise :class:`MailNotSent`."""
        ...


class LogMailer:
    """No SMTP server configured: the link goes to the log, for the operator."""

    def send(self, mail: Mail) -> None:
        log.warning(
            "mail.not_sent_no_smtp",
            user_id=mail.user_id,
            subject=mail.subject,
            link=mail.link,
            hint="set MEDIAPLANE_SMTP_HOST to send account mail",
        )


@dataclass(frozen=True)
class SmtpMailer:
    """Sends through an SMTP server (STARTTLS and a login when configured)."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True

    def _message(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.text)
        return msg

    def send(self, mail: Mail) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(self._message(mail))
        except (OSError, smtplib.SMTPException) as exc:
            # The exception's text may echo the recipient: log its type only.
            log.warning("mail.failed", user_id=mail.user_id, error=type(exc).__name__)
            raise MailNotSent("We could not send the e-mail just now; try again later.") from None
        log.info("mail.sent", user_id=mail.user_id, subject=mail.subject)


def mailer_for(settings: Settings) -> Mailer:
    """The mailer the settings ask for: SMTP when ``smtp_host`` is set, else the log."""
    if not settings.smtp_host:
        return LogMailer()
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        settings.smtp_user,
        settings.smtp_password,
        settings.smtp_starttls,
    )
