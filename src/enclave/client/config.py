"""Client contexts, as kubectl's kubeconfig has them (https://kubernetes.io/docs/concepts/configuration/
organize-cluster-access-kubeconfig/): a file of named contexts — each a server, a credential (an enclave API
token) and a default spec — and the current one. The file holds tokens, so it is written 0600 and refused when
others may read it (kubectl only warns; a token is a password).

The directory it is written in is created 0700 whatever the umask; enclave's own directory ($ENCLAVE_HOME), when
it exists already with group or other access (made by an older version under umask 000, say), is made 0700 with a
warning before the file is read or written, and refused when another OS user owns it. The file is written through
an unpredictable temporary file created exclusively (``tempfile.mkstemp``) and renamed into place, and a file owned
by another OS user is refused: a directory others may write would let them plant the file and read the tokens
written into it. An error about the file never quotes it (it holds tokens): YAML errors give the line and column.

File: $ENCLAVE_CONFIG, else $ENCLAVE_HOME/config.yaml. Context chosen by ``--context``, else $ENCLAVE_CONTEXT,
else the file's ``current-context``; none: local mode (``enclave.services.local``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import httpx
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enclave.errors import InputError, NotFound, PermissionDenied, Problem
from enclave.home import enclave_home, private_dir


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    server: str = Field(min_length=1, description="The API's base URL, e.g. https://enclave.example.org")
    token: str = Field(min_length=1, repr=False)
    username: str = Field(description="The token's account when the context was made (the server re-checks it "
                                      "on every request).")
    spec: str | None = None
    """Default --spec for commands run in this context."""

    @field_validator("server")
    @classmethod
    def _server_is_a_url(cls, value: str) -> str:
        problem = server_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("token")
    @classmethod
    def _token_is_printable_ascii(cls, value: str) -> str:
        problem = token_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def server_problem(server: str) -> str | None:
    """Why ``server`` is not an http(s) URL with a host (None: it is one). httpx.InvalidURL is not an
    httpx.HTTPError, so a URL that does not parse is caught here, when the context is made or read."""
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL as exc:
        return f"{server!r} is not a valid URL ({exc})"
    if url.scheme not in ("http", "https") or not url.host:
        return f"{server!r} is not an http(s) URL with a host"
    return None


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be sent in an Authorization header (None: it can). It travels as an HTTP header
    value, so printable ASCII only (RFC 6750 §2.1's b64token is a subset); the token itself is never quoted."""
    if not (token.isascii() and token.isprintable()):
        return "the token has a character that is not printable ASCII (a token is printable ASCII only)"
    return None


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


def warn(message: str) -> None:
    """A warning for the person at the terminal, on stderr so that stdout stays the command's output (-o json)."""
    typer.echo(f"warning: {message}", err=True)


_FIELDS = frozenset({*ClientConfig.model_fields, "current-context", *Context.model_fields})


def _validation_problems(exc: ValidationError) -> str:
    """A ValidationError's problems without their input values, which may be tokens. A key that is not a field is
    not named either: a token pasted on a line of its own is read as such a key."""
    def where(loc: tuple[int | str, ...]) -> str:
        return ".".join(str(part) if isinstance(part, int) or part in _FIELDS else "(a key that is not a field)"
                        for part in loc) or "file"

    return "; ".join(f"{where(error['loc'])}: {error['msg']}"
                     for error in exc.errors(include_url=False, include_input=False))


def _yaml_position(exc: yaml.YAMLError, text: str) -> str:
    """Where in the file the YAML error is, as "line L, column C" (1-based), never the text there: yaml's own
    message quotes the offending line, which may hold a token."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses: a position in the text, no mark
        before = text[:exc.position]
        return f"line {before.count(chr(10)) + 1}, column {len(before) - before.rfind(chr(10))}"
    return "an unknown place"


def _refuse_if_not_mine(path: Path, status: os.stat_result, what: str) -> None:
    """The client's config, and enclave's directory holding it, must be the caller's: another user's could have
    been planted to read the tokens written into it."""
    euid = os.geteuid()
    if status.st_uid != euid:
        raise InputError([Problem(str(path), f"{what} {path} is owned by uid {status.st_uid}, not by you (uid "
                                  f"{euid}): another user could have planted it, or read the tokens written into it",
                                  f"if it is yours, `chown {euid} {path}`; if not, remove it (revoking any token "
                                  "it held), then `enclave login` again")])


def _private_home(directory: Path) -> None:
    """Make enclave's own directory 0700 if group or others have any access to it (``home.private_dir`` leaves a
    directory that exists as it is): one others may write lets them remove the config or plant files beside it.
    Only $ENCLAVE_HOME, which enclave chose: the directory of a file $ENCLAVE_CONFIG names, and $HOME, are the
    user's to set."""
    try:
        status, ours = directory.stat(), enclave_home().stat()
    except FileNotFoundError:
        return
    if not os.path.samestat(status, ours):
        return
    with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: no home directory to tell apart
        if os.path.samestat(status, Path.home().stat()):
            return
    _refuse_if_not_mine(directory, status, "the client config's directory")
    mode = status.st_mode
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    try:
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise PermissionDenied(f"{directory} has mode {stat.filemode(mode)} and cannot be made 0700 "
                               f"({exc.strerror}): others could remove or plant files beside the tokens",
                               where=str(directory), fix=f"chmod 700 {directory}") from exc
    warn(f"{directory} had mode {stat.filemode(mode)}, which let other users in beside the API tokens kept there; "
         "it is now 0700 (drwx------): check it for files you did not put there")


def load_config(path: Path | None = None) -> ClientConfig:
    """The contexts file (empty if there is none). Refused if another OS user owns it (they could have planted it
    to read the tokens written into it) or if group or others may read it: it holds tokens."""
    path = path or config_path()
    if not path.exists():
        return ClientConfig()
    _private_home(path.parent)
    status = path.stat()
    _refuse_if_not_mine(path, status, "the client config")
    mode = status.st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionDenied(f"{path} has mode {stat.filemode(mode)}: it holds API tokens others could read",
                               where=str(path), fix=f"chmod 600 {path} (and revoke its tokens if others read it)")
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        return ClientConfig.model_validate(data)
    except UnicodeDecodeError as exc:
        raise InputError([Problem(str(path), f"not a valid enclave client config: not UTF-8 text ({exc.reason} "
                                  f"at byte {exc.start})", "fix or remove the file, then `enclave login` again")]) \
            from exc
    # Neither is chained (`from None`): their messages quote the file (pydantic's input values, yaml's line), and
    # a traceback that showed the cause would print a token.
    except ValidationError as exc:
        raise InputError([Problem(str(path), f"not a valid enclave client config: {_validation_problems(exc)}",
                                  "fix or remove the file, then `enclave login` again")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(str(path), f"not a valid enclave client config: not valid YAML at "
                                  f"{_yaml_position(exc, text)} (the text is not shown: the file holds tokens)",
                                  "fix the YAML there, or remove the file, then `enclave login` again")]) from None


def save_config(config: ClientConfig, path: Path | None = None) -> Path:
    """Write the contexts file atomically, mode 0600 from the first byte, in a directory made 0700: through a
    temporary file of an unpredictable name created exclusively (``mkstemp``: O_EXCL, mode 0600), renamed over the
    file, so no file another user planted is ever written to."""
    path = path or config_path()
    private_dir(path.parent)
    _private_home(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), out, sort_keys=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
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
