"""Webhooks: endpoints that receive the platform's events, signed, with retries and replay.

An admin adds an endpoint (``POST /api/v1/webhooks {url, events}``; the URL is checked
like a URL import's: public addresses only unless ``webhook_allow`` names a network).
The relay fans each event it publishes out into delivery rows (:func:`fan_out`, in the
transaction that marks the event published: once per event, across restarts). A
:class:`Dispatcher` in every web process claims due deliveries one by one (a conditional
UPDATE, so processes never send one at once) and POSTs the event JSON with
``Mediaplane-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``; timeouts,
connection errors, 429 and 5xx are retried with exponential backoff and jitter for
``webhook_retry_window_seconds`` (24 h), then ``failed``; a 410 disables the endpoint.
Per endpoint, an object's deliveries go one at a time in the order of its events (outbox
sequence): one waits while an earlier one is pending, in flight or waiting for a retry,
and goes once that one is delivered or ``failed``; other objects' go beside it.

A package of its own above ``events`` (which ARCHITECTURE.md lists it under): it needs
``accounts`` (the admin gate of its API) and ``intake`` (the URL guard), which ``events``,
imported by the services that emit, must stay below.

Errors::

    WebhookError
    ├── InvalidWebhook    a URL, pattern or time range we cannot take (400)
    └── WebhookNotFound   no such endpoint or delivery (404)
"""

from __future__ import annotations

from ._api import router
from ._errors import InvalidWebhook, WebhookError, WebhookNotFound
from ._model import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from ._retry import next_attempt, retry_delay
from ._send import Dispatcher, Outcome, RetryPolicy, SendLimits, post, record
from ._service import (
    EndpointChanges,
    create_endpoint,
    delete_endpoint,
    fan_out,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    prune_deliveries,
    replay_delivery,
    replay_range,
    rotate_secret,
    update_endpoint,
)
from ._sign import HEADER, signature, signature_header

__all__ = [
    "HEADER",
    "DeliveryStatus",
    "Dispatcher",
    "EndpointChanges",
    "InvalidWebhook",
    "Outcome",
    "RetryPolicy",
    "SendLimits",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookError",
    "WebhookNotFound",
    "create_endpoint",
    "delete_endpoint",
    "fan_out",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "next_attempt",
    "post",
    "prune_deliveries",
    "record",
    "replay_delivery",
    "replay_range",
    "retry_delay",
    "rotate_secret",
    "router",
    "signature",
    "signature_header",
    "update_endpoint",
]
