"""The JupyterHub front end: ``jupyterhub_config.py`` (rendered by `enclave render notebooks`) calls
``configure(c)`` to install enclave's profile_list and pre-spawn hook (and with notebook batch tokens the hook that
gives each pod its HTCondor token, from the notebook key the values mount), the refresh settings its Authenticator
(``enclave.hub.auth``) relies on, and the token of the ``enclave-lifecycle`` hub service as enclave presents it.
It refuses to start a hub whose Authenticator is not built on ``enclave.hub.auth.EnclaveAdmission``
(``require_enclave_admission``): Zero-to-JupyterHub's own default is the DummyAuthenticator, any user with any
password.
The hooks decide from the account lookups and image vetting the notebook service provides; they never open the
database themselves."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator

from enclave.errors import InputError, Problem
from enclave.hub.auth import EnclaveAdmission
from enclave.notebooks.hook import make_after_pod_created_hook, make_pre_spawn_hook, make_profile_list
from enclave.notebooks.options import ImageVetter
from enclave.notebooks.profiles import (
    HUB_AUTHENTICATOR,
    LIFECYCLE_SERVICE,
    NOTEBOOK_KEY_ENV,
    NOTEBOOK_KEY_PATH,
    NOTEBOOK_KEY_SECRET,
)
from enclave.services.factory import Factory, open_database
from enclave.services.notebooks import NotebookService
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

AccountLookup = Callable[[str], Any]

AUTH_REFRESH_AGE = 1
"""Seconds before JupyterHub asks the Authenticator again (``Authenticator.auth_refresh_age``, default 300): the
smallest non-zero value (0 turns refreshing off), so a departed or expired account loses its hub session on its
next request rather than up to five minutes later."""


@cache
def notebook_service() -> NotebookService:
    """The notebook service of the enclave database ($ENCLAVE_DB) and spec ($ENCLAVE_SPEC), once per hub process."""
    return Factory(load(default_spec_path()), open_database()).notebooks


def configure(c: Any, *, spec: EnclaveSpec | None = None, lookup: AccountLookup | None = None,
              vetted: ImageVetter | None = None, key_file: bytes | None = None) -> None:
    """Install enclave's profile_list, pre_spawn_hook and Authenticator settings on a JupyterHub config object, and
    with notebook batch tokens the after_pod_created_hook that gives each pod its HTCondor token.
    ``lookup`` and ``vetted`` default to the enclave database's ($ENCLAVE_DB), ``key_file`` to ``notebook_key()``.
    First of all it refuses an Authenticator not built on EnclaveAdmission (``require_enclave_admission``)."""
    require_enclave_admission(c)
    the_spec = spec or load(default_spec_path())
    pin: Callable[[str], str] | None = None
    if lookup is None or vetted is None:
        notebooks = Factory(the_spec, open_database()).notebooks
        lookup = lookup or notebooks.lookup
        if vetted is None:
            vetted = notebooks.vetter()
            pin = notebooks.pinner()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.KubeSpawner.namespace = the_spec.notebooks.namespace
    c.KubeSpawner.profile_list = make_profile_list(the_spec, lookup, vetted=vetted)
    c.KubeSpawner.pre_spawn_hook = make_pre_spawn_hook(the_spec, lookup, vetted=vetted, pin=pin)
    if the_spec.notebooks.batch_tokens.enabled:
        c.KubeSpawner.after_pod_created_hook = make_after_pod_created_hook(the_spec, key_file or notebook_key(),
                                                                           lookup)
    refresh_settings(c, Authenticator)  # the installed JupyterHub's
    strip_lifecycle_token(c)


def notebook_key(environ: Mapping[str, str] = os.environ) -> bytes:
    """The notebook signing key's file, from where the rendered values mount it (``$ENCLAVE_NOTEBOOK_KEY``,
    ``profiles.NOTEBOOK_KEY_PATH`` unless set). Read once as the hub starts: a hub told to give tokens without a
    key would fail every spawn, so it refuses to start instead, saying what is missing."""
    path = Path(environ.get(NOTEBOOK_KEY_ENV) or NOTEBOOK_KEY_PATH)
    fix = (f"create the Secret {NOTEBOOK_KEY_SECRET} in the notebook namespace from the notebook key file "
           "(docs/deploy.md), or turn notebooks.batch_tokens off")
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read the notebook signing key: {exc.strerror}", fix)]) from exc
    if not key:
        raise InputError([Problem(str(path), "the notebook signing key is empty", fix)])
    return key


def strip_lifecycle_token(c: Any) -> None:
    """The lifecycle service's token is the chart's (``profiles.LIFECYCLE_TOKEN_VALUE``: Z2JH's services loop set
    its ``api_token`` before this extraConfig runs), read as its Secret holds it (files/hub/z2jh.py
    get_secret_value), so with the last newline of a file ``helm --set-file`` gave, which no Authorization header
    carries: the hub takes it stripped, as enclave's control plane presents it (``HubAdmin.from_env``)."""
    for service in c.JupyterHub.get("services", []):
        if service.get("name") == LIFECYCLE_SERVICE and isinstance(service.get("api_token"), str):
            service["api_token"] = service["api_token"].strip()


def refresh_settings(c: Any, authenticator: type[Any]) -> None:
    """enclave.hub.auth.EnclaveAdmission answers refresh_user from the account; these make JupyterHub ask it on the
    next request (auth_refresh_age), before every spawn (refresh_pre_spawn) and for token-authenticated API
    requests too (auth_refresh_strict) — https://jupyterhub.readthedocs.io/en/stable/reference/api/auth.html"""
    c.Authenticator.auth_refresh_age = AUTH_REFRESH_AGE
    c.Authenticator.refresh_pre_spawn = True
    # auth_refresh_strict came with JupyterHub 6.1 (default False; "Prior to 6.1, the behavior was the same as
    # auth_refresh_strict = True", jupyterhub/auth.py). The deployed hub, k8s-hub:4.1.0, runs 5.2.1, which has no
    # such trait and would log the option as unrecognized; it is strict already: get_current_user refreshes a
    # token-authenticated user as a cookie's, and a failed refresh_auth returns None (5.2.1 handlers/base.py).
    if "auth_refresh_strict" in authenticator.class_trait_names():
        c.Authenticator.auth_refresh_strict = True


AUTHENTICATOR_FIX = (f"set hub.config.JupyterHub.authenticator_class to {HUB_AUTHENTICATOR} (what `enclave render "
                     "notebooks` writes: an enclave token as the password), or to a site login class built on "
                     "enclave.hub.auth.EnclaveAdmission (class SiteAuthenticator(EnclaveAdmission, "
                     "GenericOAuthenticator), docs/notebooks.md \"Who may log in to the hub\")")


def require_enclave_admission(c: Any) -> None:
    """Fail closed: refuse to start a hub whose Authenticator is not an ``EnclaveAdmission``, which alone refuses
    the accounts enclave does not admit. Zero-to-JupyterHub 4.1.0's values set
    ``hub.config.JupyterHub.authenticator_class: dummy`` (values.yaml), JupyterHub's DummyAuthenticator, which
    lets anyone in as anyone; JupyterHub's own default is PAM, the hub container's Unix users.

    ``configure`` runs while JupyterHub executes its config file, before the file's config is applied to the
    ``JupyterHub.authenticator_class`` trait (``Application.load_config_file`` → ``update_config``), so ``c`` holds
    what the config said, a class or a string, which is resolved here by that very trait
    (``jupyterhub.traitlets.EntryPointType.validate``: an entry point name of ``jupyterhub.authenticators``, any
    case, else a dotted import path). Nothing chosen (neither the config so far nor the command line): enclave's
    own login, ``HUB_AUTHENTICATOR``. And since a config line after ``configure`` (a later ``hub.extraConfig``)
    could still change the class, the running hub's trait is watched until it starts: a change to a class that is
    no EnclaveAdmission stops it too."""
    hub = _starting_hub()
    cli = hub.cli_config.get("JupyterHub", {}) if hub is not None else {}
    if "authenticator_class" in cli:  # the command line wins over the config file (load_config_file)
        _admitting(cli["authenticator_class"], "the hub's command line --JupyterHub.authenticator_class")
    elif "authenticator_class" in c.JupyterHub:
        _admitting(c.JupyterHub.authenticator_class, "c.JupyterHub.authenticator_class")
    else:
        c.JupyterHub.authenticator_class = HUB_AUTHENTICATOR
    if hub is not None:
        hub.observe(lambda change: _admitting(change["new"], "JupyterHub.authenticator_class (set after "
                                              "enclave's configure)"), names="authenticator_class")


def _starting_hub() -> Any:
    """The JupyterHub application whose config file is running, if this is a hub (``jupyterhub`` starts it by
    ``JupyterHub.launch_instance``, the singleton)."""
    from jupyterhub.app import JupyterHub  # the hub's own; loaded already in the hub process

    return JupyterHub.instance() if JupyterHub.initialized() else None


def _admitting(configured: Any, where: str) -> type[Any]:
    """``configured`` resolved as JupyterHub resolves ``JupyterHub.authenticator_class``; an InputError unless it is
    an EnclaveAdmission."""
    from jupyterhub.app import JupyterHub
    from traitlets import TraitError

    name = configured if isinstance(configured, str) else _dotted(configured)
    try:
        cls: type[Any] = JupyterHub.class_traits()["authenticator_class"].validate(None, configured)
    except TraitError as exc:
        raise InputError([Problem(where, f"the hub's authenticator {name!r} cannot be loaded ({exc}), so enclave "
                                  "cannot tell whether it refuses the accounts enclave does not admit; the hub "
                                  "will not start", AUTHENTICATOR_FIX)]) from exc
    if not issubclass(cls, EnclaveAdmission):
        resolved = _dotted(cls)
        shown = name if name == resolved else f"{name!r} ({resolved})"
        raise InputError([Problem(where, f"the hub's authenticator is {shown}, which is not built on "
                                  "enclave.hub.auth.EnclaveAdmission: it would let in accounts enclave refuses "
                                  "(departed, expired, without notebooks.spawn) — the chart's default 'dummy' lets "
                                  "anyone in as anyone with any password — so the hub will not start",
                                  AUTHENTICATOR_FIX)])
    return cls


def _dotted(value: Any) -> str:
    return f"{value.__module__}.{value.__qualname__}" if isinstance(value, type) else repr(value)
