"""The admin's webhooks page in Chromium: it lists an endpoint's deliveries, and the Replay
button (a CSRF form) queues the same event again, shown as a replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.accounts import create_user
from mediaplane.config import Settings
from mediaplane.db import Database
from mediaplane.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import Console
    from tests.support import Server

EMAIL = "webhook-admin@example.org"
PASSWORD = "replaying the past"


def _rows(server: Server) -> tuple[str, str]:
    """A disabled endpoint (the other tests' events are not fanned out to it; its loopback
    URL is refused by the server's guard anyway) with one delivered delivery; their ids."""
    db = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        with db.session() as s:
            create_user(s, EMAIL, PASSWORD, "admin", email_verified=True)
            endpoint = WebhookEndpoint(
                url="http://127.0.0.1:9/browser-hook", events=["*"], enabled=False
            )
            s.add(endpoint)
            s.flush()
            delivery = WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id="0e0e0e0e-0000-4000-8000-000000000001",
                event_type="video.asset.ready",
                object_id="a1",
                seq=1,
                body='{"type":"video.asset.ready"}',
                status=DeliveryStatus.DELIVERED,
                attempts=1,
                response_status=200,
                latency_ms=12,
            )
            s.add(delivery)
            s.flush()
            return endpoint.id, delivery.id
    finally:
        db.dispose()


def test_the_admin_replays_a_delivery(sqlite_server: Server, page: Page, console: Console) -> None:
    endpoint_id, delivery_id = _rows(sqlite_server)
    page.goto(f"{sqlite_server.url}/signin?next=/admin/webhooks")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{sqlite_server.url}/admin/webhooks")
    section = page.locator(f"section[data-endpoint-id='{endpoint_id}']")
    assert "http://127.0.0.1:9/browser-hook" in section.inner_text(), console
    row = section.locator(f"tr[data-delivery-id='{delivery_id}']")
    assert row.locator(".status").inner_text() == "delivered"
    row.locator("button", has_text="Replay").click()
    page.wait_for_url(f"{sqlite_server.url}/admin/webhooks")
    rows = section.locator("tr[data-event-id='0e0e0e0e-0000-4000-8000-000000000001']")
    rows.nth(1).wait_for()
    assert rows.count() == 2, console
    assert "(replay)" in rows.first.inner_text()  # newest first
