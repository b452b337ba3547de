"""Reading Kubernetes objects from files and walking the pod specs inside workloads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from enclave.errors import InputError, NotFound, Problem
from enclave.spec.document import parse_all, read_text

Located = tuple[str, dict[str, Any]]
"""An object and where it came from (file#document, file#document.items[n], or renderer name)."""
BUILD_CONFIG_GROUPS = ("kustomize.config.k8s.io/",)
"""API groups of build-time configuration files that live beside manifests but are never cluster objects."""
NOT_AN_OBJECT_FIX = ("make it a whole Kubernetes object, a mapping with apiVersion and kind (as `kubectl get -o "
                     "yaml` writes each document and each item of a List), or remove it")


def load_manifests(paths: Iterable[Path], *, strict: bool = True, notes: list[str] | None = None) -> list[Located]:
    """Every Kubernetes object in the given YAML/JSON files or directories (multi-document, `List` kinds).

    A file named explicitly must hold only Kubernetes objects (unless ``strict=False``). Inside a directory a
    file that cannot be read or parsed, and a document that is not a Kubernetes object (Helm values, a
    kubeadm or HTCondor configuration next to the manifests), is skipped and named in ``notes``: one foreign
    file does not stop the others being read. An item of a List that is not a Kubernetes object is a problem
    wherever the List is read."""
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
        docs = [data for data, _ in parse_all(read_text(f), str(f))]
    except InputError as exc:  # unreadable, not UTF-8, or refused YAML (enclave.spec.document)
        if notes is not None:
            notes.append(f"{f} skipped: it was refused ({exc.problems[0].what})")
        return []
    return _documents(docs, str(f), strict=False, skipped=notes if strict else None)


def parse_manifests(text: str, where: str, *, strict: bool = True,
                    skipped: list[str] | None = None) -> list[Located]:
    return _documents([data for data, _ in parse_all(text, where)], where, strict=strict, skipped=skipped)


def _documents(docs: list[Any], where: str, *, strict: bool, skipped: list[str] | None) -> list[Located]:
    return _all(((f"{where}#{i}", doc) for i, doc in enumerate(docs) if doc is not None), strict=strict,
                skipped=skipped, in_list="")


def _all(found: Iterable[tuple[str, Any]], *, strict: bool, skipped: list[str] | None,
         in_list: str) -> list[Located]:
    """The objects of every (where, document or List item); every problem at once, so one run names them all."""
    out: list[Located] = []
    problems: list[Problem] = []
    for at, value in found:
        try:
            out.extend(_objects(value, at, strict=strict, skipped=skipped, in_list=in_list))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return out


def not_an_object(value: Any) -> str | None:
    """Why ``value`` is no Kubernetes object (None: it is one): every object names its apiVersion and kind."""
    if not isinstance(value, dict):
        return f"is {_a(value)}, not a Kubernetes object"
    lacking = [f for f in ("apiVersion", "kind") if value.get(f) in (None, "")]
    return f"has no {' and no '.join(lacking)}, so it is not a Kubernetes object" if lacking else None


def _objects(doc: Any, at: str, *, strict: bool, skipped: list[str] | None, in_list: str) -> list[Located]:
    """The objects of one document, or of one item of a List (``in_list``: the List's kind)."""
    why = not_an_object(doc)
    if why is not None:
        # A document without apiVersion and kind, in a directory, is taken for another tool's file (Helm values)
        # and skipped. A List's item cannot be: the List is a Kubernetes object, and its `items` are whole objects
        # with apiVersion and kind (Kubernetes API conventions, "Lists and Simple kinds":
        # https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#lists-and-simple-kinds;
        # metav1.List's items are RawExtensions, each a whole object), so kubectl refuses the List and no check
        # could judge what it holds: a note there would let the check pass what it never read.
        if strict or in_list:
            raise InputError([Problem(at, f"the {in_list}'s item {why}" if in_list else why, NOT_AN_OBJECT_FIX)])
        if skipped is not None:
            skipped.append(f"{at} skipped: it {why}")
        return []
    if str(doc["apiVersion"]).startswith(BUILD_CONFIG_GROUPS):
        # kustomize's own configuration (a Kustomization, a Component) is read by `kubectl kustomize`, never
        # sent to the API server (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/).
        if skipped is not None:
            skipped.append(f"{at} skipped: {doc['kind']} is kustomize's configuration, not an object")
        return []
    items = doc.get("items")
    if not str(doc["kind"]).endswith("List") or items is None:
        return [(at, doc)]
    if not isinstance(items, list):
        raise InputError([Problem(f"{at}.items", f"is {_a(items)}, not a list of Kubernetes objects",
                                  "make `items` a list of whole Kubernetes objects")])
    return _all(((f"{at}.items[{j}]", item) for j, item in enumerate(items)), strict=strict, skipped=skipped,
                in_list=str(doc["kind"]))


def _a(value: Any) -> str:
    """What a YAML value is, for a message: "a string", "a list", "null"."""
    names = {str: "a string", list: "a list", dict: "a mapping", bool: "a boolean", int: "a number",
             float: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")


Flaw = tuple[str, str]
"""Where inside an object (a dotted path: spec.template, containers[1]) and why it cannot be judged there."""


def list_flaws(holder: Mapping[str, Any], field: str, schema: str) -> list[Flaw]:
    """``holder[field]`` is a list of ``schema`` objects (absent or null: none); what in it is not."""
    value = holder.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        return [(field, f"is {_a(value)}, not a list of {schema} objects")]
    article = "an" if schema[0] in "AEIOU" else "a"
    return [(f"{field}[{i}]", f"is {_a(v)}, not {article} {schema} object") for i, v in enumerate(value)
            if not isinstance(v, dict)]


def entries(holder: Mapping[str, Any], field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, entry) of the mappings in the list ``holder[field]``; what is not is named by ``list_flaws``."""
    value = holder.get(field)
    for i, v in enumerate(value if isinstance(value, list) else ()):
        if isinstance(v, dict):
            yield i, v


def name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{meta.get('name', '?')}"


# Where each workload kind keeps its pod spec, and the object schema of each step on the way (Kubernetes API
# reference, "Workload Resources": a Deployment's spec is a DeploymentSpec, whose template is a PodTemplateSpec,
# whose spec is a PodSpec; a CronJob's spec.jobTemplate is a JobTemplateSpec whose spec is a JobSpec).
_TEMPLATE = (("template", "PodTemplateSpec"), ("spec", "PodSpec"))
POD_SPEC_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "Pod": (("spec", "PodSpec"),),
    "PodTemplate": _TEMPLATE,
    "CronJob": (("spec", "CronJobSpec"), ("jobTemplate", "JobTemplateSpec"), ("spec", "JobSpec"), *_TEMPLATE),
    **{kind: (("spec", f"{kind}Spec"), *_TEMPLATE)
       for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job")},
}
CONTAINER_FIELDS = (("initContainers", "Container"), ("containers", "Container"),
                    ("ephemeralContainers", "EphemeralContainer"))


def _walk(obj: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Flaw | None]:
    steps = POD_SPEC_PATHS.get(str(obj.get("kind")))
    if steps is None:
        return None, None
    at: Mapping[str, Any] = obj
    found: dict[str, Any] = {}
    path: list[str] = []
    for i, (field, schema) in enumerate(steps):
        value = at.get(field)
        path.append(field)
        if value is None:  # not given: nothing to run (a Pod without a spec runs the empty PodSpec's defaults)
            return ({} if obj.get("kind") == "Pod" and i == 0 else None), None
        if not isinstance(value, dict):
            return None, (".".join(path), f"is {_a(value)}, not a {schema} object")
        at = found = value
    return found, None


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod spec a workload object runs, wherever the kind keeps it (None: the kind runs no pod, it is not
    given, or ``spec_flaw`` names the step that is not a mapping)."""
    return _walk(obj)[0]


def spec_flaw(obj: Mapping[str, Any]) -> Flaw | None:
    """The step on the way to a workload's pod spec (spec, template, ...) that is not the object its schema says,
    so the API server refuses the workload and no check can judge it."""
    return _walk(obj)[1]


def container_flaws(spec: Mapping[str, Any]) -> list[Flaw]:
    """The container lists of a PodSpec that are not lists of Container objects, and their entries that are not."""
    return [flaw for field, schema in CONTAINER_FIELDS for flaw in list_flaws(spec, field, schema)]


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The containers of a PodSpec (those that are no Container object are named by ``container_flaws``)."""
    for field, _ in CONTAINER_FIELDS:
        for i, c in entries(spec, field):
            yield f"{field}[{i}]({c.get('name', '?')})", c
