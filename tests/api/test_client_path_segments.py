"""The API client puts arguments into URL paths as one segment each (review: client_path.py).

docs/accounts.md, "Who is acting": with a context, a command goes through the API "with the same methods and models
as the local services", and "an API refusal becomes the same `enclave.errors` exception — same message, same exit
code — as a local one". So a name that names no account, namespace or token is NotFound through
``enclave.client.remote`` exactly as in local mode — never another account's (``victim?x`` read as ``victim``),
never another route (``../whoami``), never an uncaught error. Run against a real server on loopback (uvicorn),
which decodes ``%2F`` in the path before routing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enclave.api.app import create_app
from enclave.api.server import ThreadedServer
from enclave.client.config import Context
from enclave.client.http import Api
from enclave.client.remote import Remote
from enclave.errors import NotFound
from enclave.spec.models import Role
from tests.api.conftest import ADMIN, World

NAMES = ["victim?x", "victim#x", "../whoami", "..", ".", "victim/depart", "victim/", "victim%2Fdepart", "%2e%2e",
         "victim%", "a b", ""]
"""None of them names an account ("victim" does): each must be NotFound, as local mode says."""

CALLS: dict[str, Callable[[Any, str], object]] = {
    "show": lambda s, n: s.accounts.show(ADMIN, n),
    "depart": lambda s, n: s.accounts.depart(ADMIN, n, reason="test"),
    "grow-quota": lambda s, n: s.accounts.grow_quota(ADMIN, n, 500, reason="test"),
    "correct-quota": lambda s, n: s.accounts.correct_quota(ADMIN, n, 50, reason="test"),
    "grant-role": lambda s, n: s.accounts.grant_role(ADMIN, n, Role.SECURITY, reason="test"),
    "revoke-role": lambda s, n: s.accounts.revoke_role(ADMIN, n, Role.DEVELOPER, reason="test"),
    "join": lambda s, n: s.accounts.join_namespace(ADMIN, n, "qserv", reason="test"),
    "leave (namespace)": lambda s, n: s.accounts.leave_namespace(ADMIN, "victim", n, reason="test"),
    "tokens revoke": lambda s, n: s.tokens.revoke(ADMIN, n, reason="test"),
}


@pytest.fixture
def remote(world: World) -> Iterator[Remote]:
    server = ThreadedServer(create_app(world.service)).start()
    api = Api(Context(name="test", server=server.url, token=world.tokens[ADMIN], username=ADMIN))
    try:
        yield Remote(api)
    finally:
        api.close()
        server.stop()


def _outcome(call: Callable[[Any, str], object], services: Any, name: str) -> tuple[type[BaseException] | None, str]:
    try:
        call(services, name)
    except Exception as exc:  # noqa: BLE001  (the test compares whatever each side raises)
        return type(exc), str(exc)
    return None, ""


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_a_name_that_names_nothing_is_not_found_through_the_api_as_locally(world: World, remote: Remote,
                                                                            call: str) -> None:
    before = remote.accounts.show(ADMIN, "victim")
    for name in NAMES:
        local_error, _ = _outcome(CALLS[call], world.service.factory, name)
        assert local_error is NotFound, (call, name, local_error)
        remote_error, message = _outcome(CALLS[call], remote, name)
        assert remote_error is NotFound, (call, name, remote_error, message)
    # and victim, whose name each of them begins with, is untouched
    assert remote.accounts.show(ADMIN, "victim") == before


def test_the_message_is_local_modes(world: World, remote: Remote) -> None:
    for name in ("victim?x", "../whoami", "victim/depart"):
        with pytest.raises(NotFound) as here:
            world.service.factory.accounts.show(ADMIN, name)
        with pytest.raises(NotFound) as there:
            remote.accounts.show(ADMIN, name)
        assert str(there.value) == str(here.value)

