"""The hub pieces without a running hub: the services and roles the values render, the Authenticator layered on a
site's login, and a transition whose hub cannot be reached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub.auth import DummyAuthenticator
from tornado import web
from traitlets import Bool, Integer
from traitlets.config import Config, LoggingConfigurable

import enclave.hub
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import PermissionDenied
from enclave.hub.auth import EnclaveAdmission
from enclave.notebooks.hubapi import HubAdmin
from enclave.notebooks.profiles import LIFECYCLE_SERVICE, z2jh_values
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from enclave.spec.models import Role
from tests.hub import z2jh
from tests.hub.conftest import free_port


@pytest.fixture(scope="module")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def test_culler_and_lifecycle_services_with_least_scope_roles(ldf: EnclaveSpec) -> None:
    hub = z2jh_values(ldf)["hub"]
    # examples/lsst-ldf.yaml: idle_cull_seconds 432000, max_age_seconds 864000. Every 600 s: half the timeout
    # (the culler's default) is longer than Z2JH's 10 minutes.
    assert hub["services"]["idle-culler"]["command"] == [
        "python3", "-m", "jupyterhub_idle_culler", "--timeout=432000", "--cull-every=600", "--max-age=864000"]
    # jupyterhub-idle-culler README, "Permissions": exactly these four without --cull-users.
    assert sorted(hub["loadRoles"]["idle-culler"]["scopes"]) == sorted(
        ["list:users", "read:users:activity", "read:servers", "delete:servers"])
    assert hub["loadRoles"]["idle-culler"]["services"] == ["idle-culler"]
    lifecycle = hub["loadRoles"]["enclave-lifecycle"]
    assert lifecycle["services"] == ["enclave-lifecycle"]
    assert sorted(lifecycle["scopes"]) == ["delete:servers", "read:servers", "tokens"]
    assert not {"admin:users", "admin:servers", "users", "servers"} & set(lifecycle["scopes"])
    assert z2jh_values(ldf)["cull"] == {"enabled": False}  # one culler: enclave's service, not Z2JH's too
    # A short timeout is looked at twice per timeout (the culler's own default interval).
    short = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={"idle_cull_seconds": 300})})
    assert "--cull-every=150" in z2jh_values(short)["hub"]["services"]["idle-culler"]["command"]


class SiteLogin(EnclaveAdmission, DummyAuthenticator):  # type: ignore[misc]
    """Enclave in front of a site's own login (DummyAuthenticator stands in for an OAuthenticator)."""


def _refuse(username: str) -> object:
    if username != "alice":
        raise PermissionDenied(f"account '{username}' has departed and has no access to notebooks")
    return object()


def test_admission_layers_on_a_site_login() -> None:
    site = SiteLogin(admit=_refuse, allow_all=True)
    admitted = asyncio.run(site.get_authenticated_user(None, {"username": "alice", "password": "x"}))
    assert admitted is not None and admitted["name"] == "alice"
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(site.get_authenticated_user(None, {"username": "dave", "password": "x"}))
    assert refused.value.status_code == 403
    assert "account 'dave' has departed" in refused.value.jupyterhub_message  # type: ignore[attr-defined]
    # refresh_user: True keeps the session (the site's own answer), False sends the user back to log in.
    assert asyncio.run(site.refresh_user(SimpleNamespace(name="alice"))) is True
    assert asyncio.run(site.refresh_user(SimpleNamespace(name="dave"))) is False


def test_unreachable_hub_is_reported_and_the_departure_stands(tmp_path: Path, ldf: EnclaveSpec) -> None:
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    factory = Factory(ldf, db)
    factory.accounts.ensure_admin("root")
    factory.accounts.onboard("root", "dave", name="Dave", email="dave@example.org", kind=AccountKind.STAFF,
                             reason="test", roles=[Role.DEVELOPER])
    factory.systems.hub = HubAdmin(f"http://127.0.0.1:{free_port()}/hub/api", "token", timeout=2)  # nobody there
    view = factory.accounts.depart("root", "dave", reason="left")
    assert view.status == "departed" and view.reach is not None
    failed = {o.action: o for o in view.reach.failed}
    assert set(failed) == {"revoke tokens", "stop servers"}, view.reach
    assert all(o.system == "jupyterhub" and o.error for o in failed.values())
    assert factory.accounts.show("root", "dave").status == "departed"
    db.dispose()


def test_no_hub_configured_changes_nothing(tmp_path: Path, ldf: EnclaveSpec, monkeypatch: Any) -> None:
    monkeypatch.delenv("ENCLAVE_HUB_URL", raising=False)
    assert HubAdmin.from_env() is None
    monkeypatch.setenv("ENCLAVE_HUB_URL", "http://127.0.0.1:1/hub/api")
    monkeypatch.setenv("ENCLAVE_HUB_TOKEN", "t")
    admin = HubAdmin.from_env()
    assert admin is not None and admin.api_url == "http://127.0.0.1:1/hub/api" and admin.token == "t"


def _authenticator_of_jupyterhub_5_2_1() -> type[Any]:
    """The refresh traits of JupyterHub 5.2.1's Authenticator (jupyterhub/auth.py at 5.2.1: auth_refresh_age,
    refresh_pre_spawn; auth_refresh_strict came in 6.1), the JupyterHub of the deployed hub image
    (zero-to-jupyterhub-k8s 4.1.0 images/hub/requirements.txt: jupyterhub==5.2.1). Named Authenticator so that
    traitlets gives it the config's Authenticator section."""
    class Authenticator(LoggingConfigurable):  # type: ignore[misc]
        auth_refresh_age = Integer(300, config=True)
        refresh_pre_spawn = Bool(False, config=True)

    return Authenticator


def test_refresh_settings_are_only_those_the_hubs_jupyterhub_has(ldf: EnclaveSpec, monkeypatch: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """On 5.2.1 (the deployed hub) configure sets nothing its Authenticator lacks: traitlets logs such an option
    as "Config option `…` not recognized" (Configurable._load_config). 5.2.1 refuses a failed refresh of a
    token-authenticated request anyway (handlers/base.py get_current_user → refresh_auth → None). On 6.1 and
    later (the tests' JupyterHub) it asks for that strictness by auth_refresh_strict."""
    old = _authenticator_of_jupyterhub_5_2_1()
    monkeypatch.setattr(enclave.hub, "Authenticator", old, raising=False)
    c = Config()
    enclave.hub.configure(c, spec=ldf, lookup=lambda name: None, vetted=lambda image: True)
    with caplog.at_level("WARNING"):
        loaded = old(config=c)
    assert "not recognized" not in caplog.text
    assert (loaded.auth_refresh_age, loaded.refresh_pre_spawn) == (1, True)
    monkeypatch.undo()
    c = Config()
    enclave.hub.configure(c, spec=ldf, lookup=lambda name: None, vetted=lambda image: True)
    assert c.Authenticator.auth_refresh_strict is True and c.Authenticator.auth_refresh_age == 1


def test_the_lifecycle_service_has_one_token_enclaves(ldf: EnclaveSpec, monkeypatch: Any) -> None:
    """Installed as documented (the values, and the hub-token file by --set-file), the hub's config gives
    enclave-lifecycle one token, enclave's: Z2JH's services loop sets the service's api_token from its Secret
    (tests/hub/z2jh.py), and enclave's extraConfig registers none beside it — an $ENCLAVE_HUB_TOKEN in the hub's
    environment (the enclave-hub Secret operators made before) no longer goes into JupyterHub.service_tokens, which
    would register a second token (JupyterHub app.py init_api_tokens, _add_tokens)."""
    hub = z2jh_values(ldf)["hub"]
    assert "ENCLAVE_HUB_TOKEN" not in hub["extraEnv"] and "apiToken" not in hub["services"][LIFECYCLE_SERVICE]
    monkeypatch.setenv("ENCLAVE_HUB_TOKEN", "an-earlier-secret")
    c = Config()
    c.JupyterHub.services = z2jh.services(hub, {LIFECYCLE_SERVICE: "enclave-token\n"})  # the file's newline
    enclave.hub.configure(c, spec=ldf, lookup=lambda name: None, vetted=lambda image: True)
    tokens = {s["api_token"] for s in c.JupyterHub.services if s["name"] == LIFECYCLE_SERVICE}
    extra = c.JupyterHub.get("service_tokens", {})
    extra = extra.get_value({}) if hasattr(extra, "get_value") else extra  # a LazyConfigValue once update()d
    tokens |= {token for token, name in extra.items() if name == LIFECYCLE_SERVICE}
    assert tokens == {"enclave-token"}
    # enclave's side reads the same file through its Secret: the newline goes there too.
    monkeypatch.setenv("ENCLAVE_HUB_URL", "http://hub.jupyter-lsst:8081/hub/api")
    monkeypatch.setenv("ENCLAVE_HUB_TOKEN", "enclave-token\n")
    admin = HubAdmin.from_env()
    assert admin is not None and admin.token == "enclave-token"
