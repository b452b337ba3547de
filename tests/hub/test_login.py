"""Who the rendered hub lets in. Zero-to-JupyterHub 4.1.0's default ``hub.config.JupyterHub.authenticator_class`` is
``dummy`` (jupyterhub/values.yaml, lines 35-38), JupyterHub's DummyAuthenticator: any user name, any password. The
values name enclave's login instead, and ``enclave.hub.configure`` refuses to start a hub with any login that is not
an ``EnclaveAdmission`` — with the chart's default among them. The hub config is built as the chart builds it
(tests/hub/z2jh.py ``hub_config``: the values merged over the chart's hub.config, applied, then the extraConfig)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.app import JupyterHub
from jupyterhub.auth import DummyAuthenticator
from tornado import web
from traitlets.config import Config

import enclave.hub
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.clock import utcnow
from enclave.db import Database
from enclave.errors import InputError
from enclave.hub.auth import EnclaveAdmission, EnclaveTokenAuthenticator
from enclave.notebooks.profiles import HUB_AUTHENTICATOR, z2jh_values
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import dump
from tests.hub import z2jh


@pytest.fixture(scope="module")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def resolved(c: Config) -> type[Any]:
    """The class JupyterHub makes of the config's authenticator_class (its trait: an entry point name, or a dotted
    import path)."""
    cls: type[Any] = JupyterHub.class_traits()["authenticator_class"].validate(None, c.JupyterHub.authenticator_class)
    return cls


def test_the_rendered_values_name_enclaves_login(ldf: EnclaveSpec) -> None:
    values = z2jh_values(ldf)
    assert values["hub"]["config"] == {"JupyterHub": {"authenticator_class": HUB_AUTHENTICATOR}}
    assert HUB_AUTHENTICATOR == "enclave.hub.auth.EnclaveTokenAuthenticator"
    # Merged over the chart's defaults as Helm merges them: enclave's login replaces dummy, admin_access stays.
    c = Config()
    z2jh.apply_hub_config(c, z2jh.helm_merge({"config": z2jh.CHART_HUB_CONFIG}, values["hub"]))
    assert c.JupyterHub.admin_access is True
    assert resolved(c) is EnclaveTokenAuthenticator


def test_the_charts_default_login_is_refused(ldf: EnclaveSpec) -> None:
    """Without enclave's hub.config the chart's hub would run DummyAuthenticator; enclave's extraConfig stops it."""
    values = z2jh_values(ldf)
    del values["hub"]["config"]
    c = Config()
    z2jh.apply_hub_config(c, z2jh.helm_merge({"config": z2jh.CHART_HUB_CONFIG}, values["hub"]))
    assert c.JupyterHub.authenticator_class == "dummy" and resolved(c) is DummyAuthenticator  # the upstream default
    with pytest.raises(InputError) as refused:
        z2jh.hub_config(values, Config())  # runs the extraConfig: configure(c)
    message = str(refused.value)
    assert "c.JupyterHub.authenticator_class" in message  # where
    assert "'dummy' (jupyterhub.auth.DummyAuthenticator)" in message  # what is configured
    assert "not built on enclave.hub.auth.EnclaveAdmission" in message and "will not start" in message  # why
    assert f"set hub.config.JupyterHub.authenticator_class to {HUB_AUTHENTICATOR}" in message  # how to fix
    assert "EnclaveAdmission" in refused.value.problem.fix


@pytest.mark.parametrize("configured", ["dummy", "DUMMY", "pam", "null", "jupyterhub.auth.DummyAuthenticator",
                                        DummyAuthenticator])
def test_every_login_not_built_on_enclave_admission_is_refused(configured: Any) -> None:
    c = Config()
    c.JupyterHub.authenticator_class = configured  # entry point names in any case, as JupyterHub resolves them
    with pytest.raises(InputError, match="not built on enclave.hub.auth.EnclaveAdmission"):
        enclave.hub.require_enclave_admission(c)


def test_a_login_that_cannot_be_loaded_is_refused() -> None:
    c = Config()
    c.JupyterHub.authenticator_class = "no_such_site.SiteAuthenticator"
    with pytest.raises(InputError, match="'no_such_site.SiteAuthenticator' cannot be loaded"):
        enclave.hub.require_enclave_admission(c)


class SiteAuthenticator(EnclaveAdmission, DummyAuthenticator):  # type: ignore[misc]
    """A site's own login with enclave in front (DummyAuthenticator stands in for an OAuthenticator)."""


@pytest.mark.parametrize("configured", [HUB_AUTHENTICATOR, EnclaveTokenAuthenticator, SiteAuthenticator,
                                        f"{__name__}.SiteAuthenticator"])
def test_enclaves_login_and_site_logins_on_enclave_admission_are_accepted(configured: Any) -> None:
    c = Config()
    c.JupyterHub.authenticator_class = configured
    enclave.hub.require_enclave_admission(c)
    assert c.JupyterHub.authenticator_class is configured


def test_no_login_chosen_gets_enclaves() -> None:
    """JupyterHub's own default is PAM (the hub container's Unix users); a config that chose nothing gets enclave's."""
    c = Config()
    enclave.hub.require_enclave_admission(c)
    assert c.JupyterHub.authenticator_class == HUB_AUTHENTICATOR


@pytest.fixture
def starting_hub() -> Iterator[JupyterHub]:
    """The JupyterHub application as `jupyterhub` makes it (launch_instance: the singleton), before its config."""
    app = JupyterHub.instance()
    try:
        yield app
    finally:
        JupyterHub.clear_instance()


def test_a_later_config_line_cannot_swap_the_login(tmp_path: Path, starting_hub: JupyterHub) -> None:
    """configure runs while the config file runs, before JupyterHub applies it to its trait; a line after it (a
    later hub.extraConfig) that swaps the login stops the hub as the file's config is applied."""
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.authenticator_class = {HUB_AUTHENTICATOR!r}\n"
                      "from enclave.hub import require_enclave_admission\n"
                      "require_enclave_admission(c)\n"
                      "c.JupyterHub.authenticator_class = 'dummy'\n")
    with pytest.raises(InputError, match="set after enclave's configure"):
        starting_hub.load_config_file(str(config))  # JupyterHub.initialize's first step: the hub stops there


def test_the_command_line_is_checked_too(tmp_path: Path, starting_hub: JupyterHub) -> None:
    """The command line wins over the config file (traitlets load_config_file merges cli_config last)."""
    starting_hub.parse_command_line(["--JupyterHub.authenticator_class=dummy"])
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.authenticator_class = {HUB_AUTHENTICATOR!r}\n"
                      "from enclave.hub import require_enclave_admission\n"
                      "require_enclave_admission(c)\n")
    with pytest.raises(InputError, match="command line"):
        starting_hub.load_config_file(str(config))


def test_enclaves_login_of_a_good_config_loads(tmp_path: Path, starting_hub: JupyterHub) -> None:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.authenticator_class = {HUB_AUTHENTICATOR!r}\n"
                      "from enclave.hub import require_enclave_admission\n"
                      "require_enclave_admission(c)\n")
    starting_hub.load_config_file(str(config))
    assert starting_hub.authenticator_class is EnclaveTokenAuthenticator


@pytest.fixture
def enclave_db(tmp_path: Path, ldf: EnclaveSpec, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An enclave database the hub's config reads ($ENCLAVE_DB, $ENCLAVE_SPEC), with alice (science, allocation
    current) and her token with scope notebooks.spawn."""
    spec_file = tmp_path / "enclave.yaml"
    spec_file.write_text(dump(ldf))
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    factory = Factory(ldf, db)
    factory.accounts.ensure_admin("root")
    factory.accounts.onboard("root", "alice", name="Alice", email="alice@example.org", kind=AccountKind.SCIENCE,
                             reason="test", allocation=Allocation("P-21", expires=utcnow().replace(year=2100)))
    token = factory.tokens.issue("root", "alice", ["notebooks.spawn"], 3600).token
    monkeypatch.setenv("ENCLAVE_DB", db.url)
    monkeypatch.setenv("ENCLAVE_SPEC", str(spec_file))
    enclave.hub.notebook_service.cache_clear()
    try:
        yield {"alice": token}
    finally:
        enclave.hub.notebook_service.cache_clear()
        db.dispose()


def login(authenticator: Any, username: str, password: str) -> str | None:
    """JupyterHub's login of a form's user name and password (what LoginHandler.post calls)."""
    user = asyncio.run(authenticator.get_authenticated_user(None, {"username": username, "password": password}))
    return None if user is None else str(user["name"])


def test_the_rendered_hub_refuses_a_wrong_password_and_an_unknown_user(ldf: EnclaveSpec,
                                                                       enclave_db: dict[str, str]) -> None:
    """The hub config the chart builds from the rendered values, with its own login: only alice with her token."""
    c = z2jh.hub_config(z2jh_values(ldf), Config())
    authenticator = resolved(c)(config=c)
    assert isinstance(authenticator, EnclaveTokenAuthenticator)
    assert login(authenticator, "alice", enclave_db["alice"]) == "alice"
    for username, password in (("alice", "not-alices-password"), ("alice", ""),
                               ("mallory-not-an-account", "x"), ("mallory-not-an-account", enclave_db["alice"])):
        try:
            got = login(authenticator, username, password)
        except web.HTTPError as refused:
            assert refused.status_code in (401, 403), (username, password)
            assert "enclave refused this login" in refused.jupyterhub_message  # type: ignore[attr-defined]
        else:
            assert got is None, (username, password)


SITE_LOGIN = '''\
from jupyterhub.auth import DummyAuthenticator  # stands in for docs/notebooks.md's GenericOAuthenticator
from enclave.hub.auth import EnclaveAdmission

class SiteAuthenticator(EnclaveAdmission, DummyAuthenticator):
    pass

c.JupyterHub.authenticator_class = SiteAuthenticator
c.Authenticator.allow_all = True
'''


def test_a_site_login_as_the_docs_give_it(ldf: EnclaveSpec, enclave_db: dict[str, str]) -> None:
    """docs/notebooks.md: the site's login in an extraConfig entry sorting before enclave's; enclave still refuses
    the accounts it does not admit, whatever the site's login says."""
    values = z2jh.helm_merge(z2jh_values(ldf), {"hub": {"extraConfig": {"00-site-login": SITE_LOGIN}}})
    c = z2jh.hub_config(values, Config())
    cls = resolved(c)
    assert cls.__name__ == "SiteAuthenticator" and issubclass(cls, EnclaveAdmission)
    authenticator = cls(config=c)
    assert login(authenticator, "alice", "anything") == "alice"  # the site's say; enclave admits alice
    with pytest.raises(web.HTTPError) as refused:
        login(authenticator, "mallory-not-an-account", "anything")
    assert refused.value.status_code == 403
    # A site values file that puts the chart's dummy back (given after enclave's, it wins): the hub will not start.
    late = z2jh.helm_merge(z2jh_values(ldf), {"hub": {"config": {"JupyterHub": {"authenticator_class": "dummy"}}}})
    with pytest.raises(InputError, match="'dummy'"):
        z2jh.hub_config(late, Config())
