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


CHART_HUB_CONFIG: dict[str, Any] = {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}}
"""The chart's default ``hub.config`` (Zero-to-JupyterHub 4.1.0 jupyterhub/values.yaml, lines 35-38): JupyterHub's
DummyAuthenticator unless the values name another."""

SEEDED_SECRETS = {"JupyterHub": ("proxy_auth_token", "cookie_secret", "services"),
                  "ConfigurableHTTPProxy": ("auth_token",), "CryptKeeper": ("keys",)}
"""What files/hub/jupyterhub_config.py drops from ``hub.config`` before applying it (it set them from the Secret)."""


def helm_merge(chart: Any, given: Any) -> Any:
    """The values Helm gives the chart for ``-f values.yaml``: maps merged key by key, any other value replaced."""
    if not (isinstance(chart, dict) and isinstance(given, dict)):
        return given
    return {**chart, **{key: helm_merge(chart.get(key), value) for key, value in given.items()}}


def apply_hub_config(c: Any, hub: dict[str, Any]) -> None:
    """files/hub/jupyterhub_config.py's ``hub.config`` loop: each section ``c[app].update(cfg)``, secrets aside.
    ``hub``: the values' hub section as the chart sees it (``helm_merge`` of its defaults and the values)."""
    for app, cfg in hub.get("config", {}).items():
        cfg = {key: value for key, value in cfg.items() if key not in SEEDED_SECRETS.get(app, ())}
        c[app].update(cfg)


def hub_config(values: dict[str, Any], c: Any) -> Any:
    """What the chart's jupyterhub_config.py makes of ``values`` for the login: the values merged over the chart's
    ``hub.config`` defaults, applied, then every ``hub.extraConfig`` entry executed in key order with ``c`` (enclave's
    is ``configure(c)``)."""
    hub = helm_merge({"config": CHART_HUB_CONFIG}, values.get("hub", {}))
    apply_hub_config(c, hub)
    for _key, config_py in sorted(hub.get("extraConfig", {}).items()):
        exec(config_py, {"c": c, "get_config": lambda: c})
    return c
