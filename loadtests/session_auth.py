"""Bearer auth for the asyncio clients (replay): renews the 15-minute access token.

The same as dispatch.simulator.SessionAuth: load tests are a client and may not import
the service, nor the service its load tests (import-linter), so each side has its own.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class SessionAuth(httpx.Auth):
    """Bearer auth that outlives a 15-minute access token: on a 401 it spends the refresh
    token for a new pair (or signs in again if the session is gone) and retries once."""

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.access: str | None = None
        self.refresh: str | None = None

    def take(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        body = response.json()
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        return True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.path.startswith("/api/auth/"):
            yield request
            return
        if self.access is None:
            self.take((yield self._sign_in(request)))
        request.headers["Authorization"] = f"Bearer {self.access}"
        response = yield request
        if response.status_code != 401:
            return
        renewed = False
        if self.refresh is not None:
            renewed = self.take((yield self._renew(request)))
        if not renewed:
            renewed = self.take((yield self._sign_in(request)))
        if renewed:
            request.headers["Authorization"] = f"Bearer {self.access}"
            yield request

    def _sign_in(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path="/api/auth/token", query=None)
        return httpx.Request(
            "POST", url, data={"username": self.username, "password": self.password}
        )

    def _renew(self, request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(path="/api/auth/refresh", query=None)
        return httpx.Request("POST", url, json={"refresh_token": self.refresh})
