"""Find objects whose apiVersion is deprecated or removed on the way to a target release (like Pluto)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from enclave.errors import InputError, NotFound, Problem
from enclave.ops.versions import Version


@dataclass(frozen=True)
class ApiEntry:
    api: str
    kind: str
    deprecated_in: Version
    removed_in: Version
    replacement: str


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
    try:
        raw = yaml.safe_load(text)
        rows = tuple(ApiEntry(str(r["api"]), str(r["kind"]), Version.parse(str(r["deprecated_in"]), where=where),
                              Version.parse(str(r["removed_in"]), where=where), str(r["replacement"]))
                     for r in raw["apis"])
        return str(raw["data_version"]), rows
    except (KeyError, TypeError, yaml.YAMLError) as exc:
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


def load_manifests(paths: Iterable[Path]) -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object in the given YAML/JSON files or directories (multi-document, `List` kinds)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        if not path.exists():
            raise NotFound(f"{path} does not exist", where=str(path), fix="give a manifest file or directory")
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() \
            else [path]
        for f in files:
            try:
                docs = list(yaml.safe_load_all(f.read_text()))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f":{mark.line + 1}" if mark is not None else ""
                raise InputError([Problem(f"{f}{line}", "not valid YAML", "fix the syntax")]) from None
            for i, doc in enumerate(docs):
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise InputError([Problem(f"{f}#{i}", "a document is not a Kubernetes object",
                                              "each document must be a mapping with apiVersion and kind")])
                items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else None
                if isinstance(items, list):
                    out.extend((f"{f}#{i}.items[{j}]", it) for j, it in enumerate(items) if isinstance(it, dict))
                else:
                    out.append((f"{f}#{i}", doc))
    return out
