"""Client contexts, as kubectl's kubeconfig has them (https://kubernetes.io/docs/concepts/configuration/
organize-cluster-access-kubeconfig/): a file of named contexts — each a server, a credential (an enclave API
token) and a default spec — and the current one. The file holds tokens, so it is written 0600 and refused when
others may read it (kubectl only warns; a token is a password).

File: $ENCLAVE_CONFIG, else $ENCLAVE_HOME/config.yaml. Context chosen by ``--context``, else $ENCLAVE_CONTEXT,
else the file's ``current-context``; none: local mode (``enclave.services.local``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from enclave.errors import InputError, NotFound, PermissionDenied, Problem
from enclave.home import enclave_home


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    server: str = Field(min_length=1, description="The API's base URL, e.g. https://enclave.example.org")
    token: str = Field(min_length=1, repr=False)
    username: str = Field(description="The token's account when the context was made (the server re-checks it "
                                      "on every request).")
    spec: str | None = None
    """Default --spec for commands run in this context."""


class ClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    current_context: str | None = Field(default=None, alias="current-context")
    contexts: list[Context] = Field(default_factory=list)

    def find(self, name: str) -> Context:
        for context in self.contexts:
            if context.name == name:
                return context
        known = ", ".join(c.name for c in self.contexts) or "none"
        raise NotFound(f"no context named {name!r} (contexts: {known})", where=str(config_path()),
                       fix="`enclave config get-contexts` lists them; `enclave login SERVER --context NAME` adds one")

    def put(self, context: Context) -> None:
        self.contexts = [c for c in self.contexts if c.name != context.name] + [context]


def config_path() -> Path:
    value = os.environ.get("ENCLAVE_CONFIG")
    return Path(value).expanduser() if value else enclave_home() / "config.yaml"


def load_config(path: Path | None = None) -> ClientConfig:
    """The contexts file (empty if there is none). Refused if group or others may read it: it holds tokens."""
    path = path or config_path()
    if not path.exists():
        return ClientConfig()
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionDenied(f"{path} has mode {stat.filemode(mode)}: it holds API tokens others could read",
                               where=str(path), fix=f"chmod 600 {path} (and revoke its tokens if others read it)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ClientConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise InputError([Problem(str(path), f"not a valid enclave client config: {exc}",
                                  "fix or remove the file, then `enclave login` again")]) from exc


def save_config(config: ClientConfig, path: Path | None = None) -> Path:
    """Write the contexts file atomically, mode 0600 from the first byte."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), out, sort_keys=False)
    os.chmod(tmp, 0o600)  # an older tmp file left behind may have had another mode
    os.replace(tmp, path)
    return path


def selected(option: str | None) -> Context | None:
    """The context a command runs in: ``--context`` (``option``), else $ENCLAVE_CONTEXT, else current-context."""
    name = option or os.environ.get("ENCLAVE_CONTEXT") or None
    if name is None:
        path = config_path()
        if not path.exists():
            return None
        name = load_config(path).current_context
        if name is None:
            return None
    return load_config().find(name)
