"""Errors of the webhooks package::

WebhookError
├── InvalidWebhook    a URL, pattern or time range we cannot take (400, ``code``)
└── WebhookNotFound   no such endpoint or delivery (404)
"""

from __future__ import annotations


class WebhookError(Exception):
    """Root of webhook errors."""

    code = "webhook_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidWebhook(WebhookError):
    code = "invalid_webhook"


class WebhookNotFound(WebhookError):
    code = "not_found"
