"""The account, hardware and webhook-secret endpoints."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._core import ACCOUNT_NAME, HARDWARE
from cogfleet.server._webhooks import Webhooks


def account_doc() -> dict[str, Any]:
    """The account every token acts as."""
    return {
        "type": "organization",
        "username": ACCOUNT_NAME,
        "name": "cogfleet local server",
        "github_url": None,
    }


class Account:
    """``/v1/account``, ``/v1/hardware`` and ``/v1/webhooks/default/secret``."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        return [
            Route("/v1/account", self.account, methods=["GET"]),
            Route("/v1/hardware", self.hardware, methods=["GET"]),
            Route("/v1/webhooks/default/secret", self.webhook_secret, methods=["GET"]),
        ]

    async def account(self, request: Request) -> Response:
        """GET /v1/account."""
        return JSONResponse(account_doc())

    async def hardware(self, request: Request) -> Response:
        """GET /v1/hardware (a bare array)."""
        return JSONResponse(HARDWARE)

    async def webhook_secret(self, request: Request) -> Response:
        """GET /v1/webhooks/default/secret: a stable per-state-dir signing secret."""
        return JSONResponse({"key": self.webhooks.key()})
