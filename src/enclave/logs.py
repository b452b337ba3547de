"""Structured logs for the long-running processes (`enclave serve` with its broker loop, `enclave webdav`,
`enclave vospace`): one configuration, one event shape, text for people or one JSON object per line for a log
collector, always on stdout (the twelve-factor rule a Kubernetes Deployment expects: the kubelet keeps a
container's stdout, https://kubernetes.io/docs/concepts/cluster-administration/logging/).

Built on the standard library's ``logging`` rather than structlog (Rubin's safir uses structlog): uvicorn,
cheroot, WsgiDAV, alembic and the Kubernetes client already log through ``logging``, so one handler on the
root logger puts their warnings in the same stream and format as ours, and no dependency is added. An event
is a message plus fields, given as ``extra={"fields": {...}}`` (``event(...)`` below).

Secrets never reach a log: request paths are logged without their query string, callers by account name,
never by credential, and every rendered line passes ``redact``, which blanks anything shaped like an enclave
token (``enc_…``) as a last line of defence.

A library never prints by itself: the ``enclave`` logger has a ``NullHandler`` (the logging HOWTO's rule for
libraries, https://docs.python.org/3/howto/logging.html#configuring-logging-for-a-library), so a CLI command
that is not a server stays quiet until ``configure`` is called.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Annotated, Any

import typer

from enclave.errors import InputError, Problem

ROOT = "enclave"
logging.getLogger(ROOT).addHandler(logging.NullHandler())

LEVEL_ENV = "ENCLAVE_LOG_LEVEL"
FORMAT_ENV = "ENCLAVE_LOG_FORMAT"
LEVELS = ("debug", "info", "warning", "error")

LevelOption = Annotated[str | None, typer.Option(
    "--log-level", help="Log level: debug, info (default), warning or error; or $ENCLAVE_LOG_LEVEL.")]
FormatOption = Annotated[str | None, typer.Option(
    "--log-format", help="Log format on stdout: text (default) or json, one object per line; or "
    "$ENCLAVE_LOG_FORMAT.")]
"""The two options of every server command (`serve`, `webdav`, `vospace`), defined once."""

_TOKEN = re.compile(r"enc_[A-Za-z0-9_\-]{8,}")
"""An enclave token as ``accounts.tokens`` makes them (``enc_`` and URL-safe base64)."""


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def enclave_version() -> str:
    """The installed enclave's version, for the start-up event."""
    try:
        return version("enclave")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def logger(name: str) -> logging.Logger:
    """The logger of one part of enclave: ``enclave.<name>``."""
    return logging.getLogger(f"{ROOT}.{name}")


def event(log: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` (plain values: str, numbers, bools, None, lists of those)."""
    if log.isEnabledFor(level):
        log.log(level, message, extra={"fields": fields}, stacklevel=2)


def redact(text: str) -> str:
    return _TOKEN.sub("enc_[redacted]", text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _stamp(record), "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage()}
        for key, value in _fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value …``, values quoted when they hold spaces."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_stamp(record)} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"]
        for key, value in _fields(record).items():
            text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) or \
                not value or any(c.isspace() or c in '"=' for c in value) else value
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def settings(level: str | None, fmt: str | None) -> tuple[int, LogFormat]:
    """The level and format from the options, else $ENCLAVE_LOG_LEVEL / $ENCLAVE_LOG_FORMAT, else info/text;
    an unknown value is an InputError naming the option or variable."""
    level_text = (level or os.environ.get(LEVEL_ENV) or "info").lower()
    fmt_text = (fmt or os.environ.get(FORMAT_ENV) or "text").lower()
    problems = []
    if level_text not in LEVELS:
        problems.append(Problem("--log-level" if level else f"${LEVEL_ENV}", f"unknown log level {level_text!r}",
                                f"use one of: {', '.join(LEVELS)}"))
    if fmt_text not in {f.value for f in LogFormat}:
        problems.append(Problem("--log-format" if fmt else f"${FORMAT_ENV}", f"unknown log format {fmt_text!r}",
                                "use text (people) or json (one object per line, for a log collector)"))
    if problems:
        raise InputError(problems)
    return logging.getLevelNamesMapping()[level_text.upper()], LogFormat(fmt_text)


_HANDLER_NAME = "enclave-logs"


def configure(level: str | None = None, fmt: str | None = None, stream: IO[str] | None = None) -> LogFormat:
    """Send every log record at ``level`` or above to ``stream`` (stdout) in ``fmt``. Called once by each server
    command; calling again replaces the handler (tests)."""
    number, chosen = settings(level, fmt)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if chosen == LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    logging.getLogger(ROOT).setLevel(number)
    # Servers' own chatter: uvicorn's access log is replaced by ours (it would log query strings); the rest
    # of uvicorn, WsgiDAV and alembic's migration notes pass through at warning and above.
    for name in ("uvicorn", "uvicorn.error", "wsgidav", "cheroot", "alembic"):
        third = logging.getLogger(name)
        third.handlers.clear()
        third.propagate = True
        third.setLevel(max(number, logging.WARNING))
    logging.getLogger("uvicorn.access").disabled = True
    return chosen
