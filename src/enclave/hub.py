"""The JupyterHub front end: ``jupyterhub_config.py`` (rendered by `enclave render notebooks`) calls
``configure(c)`` to install enclave's profile_list and pre-spawn hook. The hook decides from the account lookups
and image vetting the notebook service provides; it never opens the database itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from enclave.notebooks.hook import make_pre_spawn_hook, make_profile_list
from enclave.notebooks.options import ImageVetter
from enclave.services.factory import Factory, open_database
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

AccountLookup = Callable[[str], Any]


def configure(c: Any, *, spec: EnclaveSpec | None = None, lookup: AccountLookup | None = None,
              vetted: ImageVetter | None = None) -> None:
    """Install enclave's profile_list and pre_spawn_hook on a JupyterHub config object. ``lookup`` and
    ``vetted`` default to the enclave database's ($ENCLAVE_DB)."""
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
