"""Reading Kubernetes objects from files and walking the pod specs inside workloads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from enclave.errors import InputError, NotFound, Problem
from enclave.spec.document import parse_all, read_text

Located = tuple[str, dict[str, Any]]
BUILD_CONFIG_GROUPS = ("kustomize.config.k8s.io/",)
"""API groups of build-time configuration files that live beside manifests but are never cluster objects."""
"""An object and where it came from (file#document, or renderer name)."""


def load_manifests(paths: Iterable[Path], *, strict: bool = True, notes: list[str] | None = None) -> list[Located]:
    """Every Kubernetes object in the given YAML/JSON files or directories (multi-document, `List` kinds).

    A file named explicitly must hold only Kubernetes objects (unless ``strict=False``). Inside a directory a
    file that cannot be read or parsed, and a document that is not a Kubernetes object (Helm values, a
    kubeadm or HTCondor configuration next to the manifests), is skipped and named in ``notes``: one foreign
    file does not stop the others being read."""
    out: list[Located] = []
    for path in paths:
        if not path.exists():
            raise NotFound(f"{path} does not exist", where=str(path), fix="give a manifest file or directory")
        if not path.is_dir():
            out.extend(parse_manifests(read_text(path), str(path), strict=strict))
            continue
        for f in sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()):
            out.extend(_lenient(f, strict, notes))
    return out


def _lenient(f: Path, strict: bool, notes: list[str] | None) -> list[Located]:
    try:
        found = parse_manifests(read_text(f), str(f), strict=False, skipped=notes if strict else None)
    except InputError as exc:  # unreadable, not UTF-8, or refused YAML (enclave.spec.document)
        found, why = [], f"was refused ({exc.problems[0].what})"
    else:
        return found
    if notes is not None:
        notes.append(f"{f} skipped: it {why}")
    return found


def parse_manifests(text: str, where: str, *, strict: bool = True,
                    skipped: list[str] | None = None) -> list[Located]:
    docs = [data for data, _ in parse_all(text, where)]
    out: list[Located] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            if not strict:
                if skipped is not None:
                    skipped.append(f"{where}#{i} skipped: not a Kubernetes object (no apiVersion and kind)")
                continue
            raise InputError([Problem(f"{where}#{i}", "a document is not a Kubernetes object",
                                      "each document must be a mapping with apiVersion and kind")])
        if str(doc["apiVersion"]).startswith(BUILD_CONFIG_GROUPS):
            # kustomize's own configuration (a Kustomization, a Component) is read by `kubectl kustomize`, never
            # sent to the API server (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/).
            if skipped is not None:
                skipped.append(f"{where}#{i} skipped: {doc['kind']} is kustomize's configuration, not an object")
            continue
        items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else None
        if isinstance(items, list):
            out.extend((f"{where}#{i}.items[{j}]", it) for j, it in enumerate(items) if isinstance(it, dict))
        else:
            out.append((f"{where}#{i}", doc))
    return out


def name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{meta.get('name', '?')}"


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod spec a workload object runs, wherever the kind keeps it."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec if isinstance(spec, dict) else None
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"):
        tpl = (spec.get("template") or {}).get("spec")
        return tpl if isinstance(tpl, dict) else None
    if kind == "PodTemplate":
        tpl = (obj.get("template") or {}).get("spec")
        return tpl if isinstance(tpl, dict) else None
    return None


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            if isinstance(c, dict):
                yield f"{field}[{i}]({c.get('name', '?')})", c
