"""The directory a command writes its files into: made when missing, refused with the fix when it cannot be.

One copy of the rule for every ``--out``: each writer made its own with ``mkdir``, and an ``--out`` naming an
existing file (or a file where a parent should be) ended in a traceback, sometimes after a twin run's whole
simulation or with part of ``render all`` written (review, stop 48)."""

from __future__ import annotations

from pathlib import Path

from enclave.errors import InputError, Problem

FIX = "give --out a directory, new or existing, that is not a file and can be written"


def output_dir(path: Path) -> Path:
    """``path``, made with its parents if missing; an ``InputError`` naming it when it is a file or cannot be made."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot be the output directory: {exc.strerror or exc}", FIX)]) from None
    return path


def check_output_dir(path: Path) -> None:
    """Refuse now, making nothing, an ``--out`` that cannot become a directory: the nearest of it and its parents
    that exists is a file. For commands that work long before they write (a twin run) and make nothing when their
    input is refused."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError([Problem(str(path), f"cannot be the output directory: {existing} is a file", FIX)])
