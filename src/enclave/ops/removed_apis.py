"""Find objects whose apiVersion is deprecated or removed on the way to a target release (like Pluto)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from enclave.errors import InputError, Problem
from enclave.ops.versions import Version
from enclave.spec.document import parse


@dataclass(frozen=True)
class ApiEntry:
    api: str
    kind: str
    deprecated_in: Version
    removed_in: Version
    replacement: str
    source: str = ""


@dataclass(frozen=True)
class ApiFinding:
    where: str
    name: str
    api: str
    kind: str
    status: str  # "removed" (stops working on the way), "already-removed", "deprecated"
    release: str
    replacement: str

    def __str__(self) -> str:
        verb = {"removed": "is removed in", "already-removed": "was already removed in",
                "deprecated": "is deprecated since"}[self.status]
        return f"{self.where}: {self.kind} {self.name} uses {self.api}, which {verb} {self.release}; " \
               f"use {self.replacement}"


def parse_removed_apis(text: str, where: str = "removed-apis.yaml") -> tuple[str, tuple[ApiEntry, ...]]:
    """Every row must cite where its dates come from (the deprecation guide, or pluto for what it omits)."""
    try:
        raw, _ = parse(text, where)
        rows = []
        for i, r in enumerate(raw["apis"]):
            at = f"{where}: apis[{i}]"
            if not str(r.get("source", "")).strip():
                raise InputError([Problem(at, f"{r.get('api')} {r.get('kind')} cites no source",
                                          "add source: guide#v1-NN (the deprecation guide section) or pluto")])
            rows.append(ApiEntry(str(r["api"]), str(r["kind"]), Version.parse(str(r["deprecated_in"]), where=at),
                                 Version.parse(str(r["removed_in"]), where=at), str(r["replacement"]),
                                 str(r["source"])))
        return str(raw["data_version"]), tuple(rows)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError([Problem(where, f"removed-API data is malformed ({exc!r})",
                                  "compare it with the shipped removed-apis.yaml")]) from None


@lru_cache(maxsize=1)
def removed_apis() -> tuple[str, tuple[ApiEntry, ...]]:
    return parse_removed_apis(resources.files("enclave.ops").joinpath("data/removed-apis.yaml").read_text())


def scan(objects: Iterable[tuple[str, Mapping[str, Any]]], source: Version, target: Version,
         entries: tuple[ApiEntry, ...] | None = None) -> list[ApiFinding]:
    """Report each object whose API stops being served after ``source`` up to and including ``target``,
    was already gone at ``source``, or is deprecated by ``target``."""
    table = {(e.api, e.kind): e for e in (entries if entries is not None else removed_apis()[1])}
    out: list[ApiFinding] = []
    for where, obj in objects:
        e = table.get((str(obj.get("apiVersion", "")), str(obj.get("kind", ""))))
        if e is None:
            continue
        name = str((obj.get("metadata") or {}).get("name", "?"))
        if e.removed_in.minor_key <= source.minor_key:
            status = "already-removed"
        elif e.removed_in.minor_key <= target.minor_key:
            status = "removed"
        elif e.deprecated_in.minor_key <= target.minor_key:
            status = "deprecated"
        else:
            continue
        release = e.deprecated_in.minor_name if status == "deprecated" else e.removed_in.minor_name
        out.append(ApiFinding(where, name, e.api, e.kind, status, release, e.replacement))
    return out
