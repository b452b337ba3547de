"""Hub login follows the account (seed §4, §5 AA1): JupyterHub admits only accounts enclave admits, and drops the
session of one that changes.

``EnclaveAdmission`` goes in front of the site's real login, which still decides WHO the person is; enclave
decides whether that account may use the hub::

    from oauthenticator.generic import GenericOAuthenticator
    from enclave.hub.auth import EnclaveAdmission

    class SiteAuthenticator(EnclaveAdmission, GenericOAuthenticator):
        pass

    c.JupyterHub.authenticator_class = SiteAuthenticator

It answers JupyterHub's Authenticator hooks (https://jupyterhub.readthedocs.io/en/stable/reference/api/auth.html):

- ``check_blocked_users`` — run on every login, whatever the allow configuration (``get_authenticated_user`` calls
  it before ``allow_all`` and ``check_allowed``): an account enclave does not admit is refused, with enclave's
  reason (departed, allocation expired, no role that may spawn notebooks, unknown);
- ``refresh_user`` — run when a user's auth info is older than ``Authenticator.auth_refresh_age`` seconds
  ("The max age (in seconds) of authentication info before forcing a refresh of user auth info"); returning False
  forces a new login for a browser session, and refuses token-authenticated API requests too (JupyterHub before
  6.1 always; from 6.1 with ``auth_refresh_strict``). ``enclave.hub.configure`` sets the age to 1 s, so a changed
  account loses its session on its next request (one database read per active user per second at most).

``EnclaveTokenAuthenticator`` is a complete login for hubs without a site login (the tests, a small site): the
user name and an enclave token with scope ``notebooks.spawn`` as the password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Callable as CallableTrait
from traitlets import default

from enclave.errors import EnclaveError, http_status

Admit = Callable[[str], object]
"""username → the account, or an EnclaveError saying why the hub must refuse it (NotebookService.admit)."""
Login = Callable[[str, str], object]
"""(username, enclave token) → the account, or an EnclaveError (NotebookService.hub_login)."""


def _notebooks() -> Any:
    # The enclave database the hub's hooks use ($ENCLAVE_DB, $ENCLAVE_SPEC), built once per hub process.
    from enclave.hub import notebook_service

    return notebook_service()


class EnclaveAdmission(Authenticator):  # type: ignore[misc]  # jupyterhub is untyped
    """Refuse, at login and on refresh, every account enclave does not admit."""

    admit = CallableTrait(None, allow_none=True, config=True,
                          help="username -> account, raising an EnclaveError to refuse (default: the enclave "
                               "database's NotebookService.admit)")

    def _admit(self, username: str) -> str | None:
        """None if admitted, else enclave's reason."""
        check: Admit = self.admit if self.admit is not None else _notebooks().admit
        try:
            check(username)
        except EnclaveError as error:
            return str(error)
        return None

    async def check_blocked_users(self, username: str, authentication: dict[str, Any] | None = None) -> bool:
        refusal = self._admit(username)
        if refusal is not None:
            self.log.warning("enclave refused hub login of %s: %s", username, refusal)
            raise _refused(403, refusal)
        return bool(await _maybe(super().check_blocked_users(username, authentication)))

    async def refresh_user(self, user: Any, handler: Any = None) -> bool | dict[str, Any]:
        refusal = self._admit(user.name)
        if refusal is not None:
            self.log.warning("enclave ends the hub session of %s: %s", user.name, refusal)
            return False
        # The site's own answer (an OAuthenticator may refresh its tokens, or ask for a new login).
        answer: bool | dict[str, Any] = await _maybe(super().refresh_user(user, handler))
        return answer


class EnclaveTokenAuthenticator(EnclaveAdmission):
    """Log in with your user name and an enclave token (scope notebooks.spawn) as the password."""

    login = CallableTrait(None, allow_none=True, config=True,
                          help="(username, token) -> account, raising an EnclaveError to refuse (default: the "
                               "enclave database's NotebookService.hub_login)")

    @default("allow_all")
    def _allow_all(self) -> bool:
        # Enclave alone decides who may use this hub (check_blocked_users); there is no separate allow list.
        return True

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        username, token = (data or {}).get("username", ""), (data or {}).get("password", "")
        if not username or not token:
            return None
        check: Login = self.login if self.login is not None else _notebooks().hub_login
        try:
            check(username, token)
        except EnclaveError as error:
            self.log.warning("enclave refused the token login of %s: %s", username, error)
            raise _refused(http_status(error), str(error)) from error
        return {"name": username}


class LoginRefused(web.HTTPError):
    """The error page JupyterHub renders shows ``jupyterhub_message`` (jupyterhub/handlers/base.py, ``write_error``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, "enclave refused this login: %s", reason)
        self.jupyterhub_message = f"enclave refused this login: {reason}"


def _refused(status: int, reason: str) -> LoginRefused:
    return LoginRefused(status, reason)


async def _maybe(value: Any) -> Any:
    """JupyterHub lets these hooks be sync or async (``maybe_future``)."""
    if hasattr(value, "__await__"):
        return await value
    return value
