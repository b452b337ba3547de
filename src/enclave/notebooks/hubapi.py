"""The hub side of a lifecycle transition (seed §4): stop an account's notebook servers and revoke its hub tokens,
through JupyterHub's REST API (https://jupyterhub.readthedocs.io/en/stable/reference/rest-api.html), as the
``enclave-lifecycle`` hub service whose role holds only ``read:servers``, ``delete:servers`` and ``tokens``
(``profiles.LIFECYCLE_SCOPES``).

An adapter to a running system, like ``enclave.batch.live``: the services layer calls it after the transition has
committed; the hub's own refusal (the Authenticator's ``refresh_user`` and the pre-spawn hook) does not depend on
it, so a hub that cannot be reached delays only the stopping of servers already running, never a refusal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from enclave.errors import ExternalError

HUB_URL_ENV = "ENCLAVE_HUB_URL"
"""The hub's API, e.g. http://hub.jupyter-lsst:8081/hub/api (Z2JH's ``hub`` Service)."""
HUB_TOKEN_ENV = "ENCLAVE_HUB_TOKEN"
"""The ``enclave-lifecycle`` service's token (Secret ``enclave-hub``, key ``token``, in enclave's namespace; the hub
has the same value as that service's ``apiToken``: ``profiles.LIFECYCLE_TOKEN_VALUE``)."""


@dataclass
class HubAdmin:
    """A client for the parts of JupyterHub's REST API a transition needs: the reach dispatch's ``HubSystem``
    (``enclave.domain.reach``), configured by ``Factory.use_live_systems`` from the environment."""

    api_url: str
    token: str
    timeout: float = 10.0
    stop_wait: float = 30.0
    """How long to wait for a stop the hub answers with 202 (pending) before reporting failure."""
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_env(cls) -> HubAdmin | None:
        """The hub named by $ENCLAVE_HUB_URL and $ENCLAVE_HUB_TOKEN; None when either is unset (no hub here)."""
        # Stripped: a token file written with its newline (kustomize's secretGenerator keeps it) still works, and
        # the hub strips its copy too (enclave.hub.strip_lifecycle_token).
        url, token = os.environ.get(HUB_URL_ENV), (os.environ.get(HUB_TOKEN_ENV) or "").strip()
        return cls(url, token) if url and token else None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            # JupyterHub takes "Authorization: token <token>" (REST API docs, "Authenticating with the API").
            self._client = httpx.Client(base_url=self.api_url.rstrip("/"), timeout=self.timeout,
                                        headers={"Authorization": f"token {self.token}"},
                                        transport=self.transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        try:
            response = self.client.request(method, path)
        except httpx.HTTPError as exc:
            raise ExternalError(f"the hub at {self.api_url} did not answer {method} {path}: {exc}",
                                where=HUB_URL_ENV, fix="check that the hub runs and $ENCLAVE_HUB_URL names its API"
                                ) from exc
        if response.status_code not in ok:
            raise ExternalError(f"the hub answered {method} {path} with {response.status_code}: "
                                f"{response.text[:200]}", where=HUB_TOKEN_ENV,
                                fix="check that $ENCLAVE_HUB_TOKEN is the enclave-lifecycle service's token and "
                                    "that its role holds read:servers, delete:servers and tokens")
        return response

    def _user(self, username: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/users/{quote(username, safe='')}", ok=(200, 404))
        return None if response.status_code == 404 else dict(response.json())

    def stop_servers(self, username: str) -> int:
        """Stop every running server of ``username`` (the default one and named ones); how many (0 if the hub
        has no such user). DELETE answers 204 when stopped, 202 while stopping (REST API, "Stop a user's
        server"); a pending stop is waited for, so the caller knows the server is gone."""
        user = self._user(username)
        if user is None:
            return 0
        names = tuple(sorted(user.get("servers") or {}))
        who = quote(username, safe="")
        for name in names:
            path = f"/users/{who}/server" if name == "" else f"/users/{who}/servers/{quote(name, safe='')}"
            if self._call("DELETE", path, ok=(202, 204)).status_code == 202:
                self._wait_stopped(username, name)
        return len(names)

    def _wait_stopped(self, username: str, name: str) -> None:
        deadline = time.monotonic() + self.stop_wait
        while time.monotonic() < deadline:
            user = self._user(username)
            if user is None or name not in (user.get("servers") or {}):
                return
            time.sleep(0.2)
        raise ExternalError(f"the hub did not stop {username}'s server {name!r} within {self.stop_wait:g} s",
                            where=f"hub user {username}",
                            fix="look at the hub's log; stop the server on the hub's admin page")

    def revoke_tokens(self, username: str) -> int:
        """Revoke every hub token of ``username`` (GET /users/{name}/tokens lists API and OAuth tokens; DELETE
        /users/{name}/tokens/{token_id} revokes one); how many (0 if the hub has no such user)."""
        who = quote(username, safe="")
        response = self._call("GET", f"/users/{who}/tokens", ok=(200, 404))
        if response.status_code == 404:
            return 0
        tokens = response.json().get("api_tokens", [])
        for token in tokens:
            self._call("DELETE", f"/users/{who}/tokens/{quote(str(token['id']), safe='')}", ok=(204, 404))
        return len(tokens)
