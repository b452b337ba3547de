"""What Zero-to-JupyterHub 4.1.0 makes of the values' ``hub.services`` and ``hub.loadRoles`` (files/hub/
jupyterhub_config.py), for the tests' hubs: the key is the name, and each service's ``api_token`` is the chart
Secret's ``hub.services.<key>.apiToken``, which holds the values' ``api_token`` or ``apiToken`` (helm's
``--set-file`` sets the latter from a file, as the file is, its last newline included) or else a token the chart
generates (templates/hub/_helpers-passwords.tpl ``jupyterhub.hub.services.get_api_token``, randHex 64)."""

from __future__ import annotations

import secrets
from typing import Any


def services(hub: dict[str, Any], set_file: dict[str, str]) -> list[dict[str, Any]]:
    """``hub``: the values' hub section; ``set_file``: service key → what ``--set-file
    hub.services.<key>.apiToken=FILE`` sets."""
    out = []
    for key, given in hub.get("services", {}).items():
        service = {"name": key, **given}
        api_token = service.pop("apiToken", None)
        service["api_token"] = service.get("api_token") or set_file.get(key, api_token) or secrets.token_hex(32)
        out.append(service)
    return out


def load_roles(hub: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, **role} for name, role in hub.get("loadRoles", {}).items()]
