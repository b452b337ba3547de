"""Security benchmark (seed §14): kube-bench-style checks kept as data, run against node configuration
(API server, controller-manager, scheduler and etcd flags from static-pod manifests; kubelet configuration)
and against Kubernetes manifests (pods, RBAC, images).

Checks live in data/security-checks.yaml; this module only knows how to read a value and test it, so a
new check is a new YAML entry. Pure: callers pass already-loaded objects.
"""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from enclave.errors import InputError, NotFound, Problem
from enclave.ops.manifests import Located, containers, name_of, pod_spec
from enclave.spec.document import parse, read_text

NODE_TARGETS = ("apiserver", "controller-manager", "scheduler", "etcd", "kubelet")
MANIFEST_TARGETS = ("pod", "container", "volume", "rbac-rule", "binding", "object")
OPS = ("eq", "ne", "set", "not_set", "has", "lacks", "none_of", "gte", "lte", "prefix", "matches", "in")
WAIVER_PREFIX = "security.enclave.lsst.io/waive-"
COMPONENT_BINARIES = {"kube-apiserver": "apiserver", "kube-controller-manager": "controller-manager",
                      "kube-scheduler": "scheduler", "etcd": "etcd"}


class _Missing:
    def __repr__(self) -> str:
        return "<not set>"


MISSING = _Missing()


@dataclass(frozen=True)
class Test:
    op: str
    value: Any = None
    missing: str | None = None  # "pass" or "fail" overrides what the op does with an absent value


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    text: str
    target: str
    read: Mapping[str, Any]
    test: Test
    remediation: str
    scored: bool = True
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    where: str
    detail: str
    waived: str | None = None


@dataclass(frozen=True)
class CheckResult:
    check: Check
    status: str  # pass | fail | warn | skip | waived
    findings: tuple[Finding, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Report:
    results: tuple[CheckResult, ...]
    data_version: str

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> bool:
        return any(r.status == "fail" for r in self.results)


@dataclass
class NodeConfig:
    """Flags of each control-plane component and the kubelet's configuration, as found on one node."""

    flags: dict[str, dict[str, str]] = field(default_factory=dict)
    kubelet: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)


def parse_flags(args: Iterable[str]) -> dict[str, str]:
    """`--a=b`, `--a b` and bare `--a` (a boolean switch, "true")."""
    out: dict[str, str] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = str(items[i])
        if arg.startswith("--"):
            if "=" in arg:
                k, v = arg.split("=", 1)
                out[k] = v
            elif i + 1 < len(items) and not str(items[i + 1]).startswith("--"):
                out[arg] = str(items[i + 1])
                i += 1
            else:
                out[arg] = "true"
        i += 1
    return out


def node_config_from_manifests(objects: Iterable[Located], kubelet: Mapping[str, Any] | None = None) -> NodeConfig:
    """Read component flags from static-pod manifests (kubeadm: /etc/kubernetes/manifests)."""
    cfg = NodeConfig(kubelet=dict(kubelet) if kubelet is not None else None)
    for where, obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for _, c in containers(spec):
            argv = [*(c.get("command") or []), *(c.get("args") or [])]
            if len(argv) == 1 and " " in str(argv[0]):
                argv = shlex.split(str(argv[0]))
            binary = Path(str(argv[0])).name if argv else ""
            component = COMPONENT_BINARIES.get(binary)
            if component:
                cfg.flags[component] = parse_flags(argv[1:])
                cfg.sources[component] = where
    return cfg


def load_node_dir(root: Path, kubelet_config: Path | None = None) -> NodeConfig:
    """A node's configuration laid out as kubeadm leaves it: ROOT/manifests/*.yaml and a kubelet config
    (default ROOT/kubelet/config.yaml, else /var/lib/kubelet/config.yaml given explicitly)."""
    from enclave.ops.manifests import load_manifests

    mdir = root / "manifests"
    if not mdir.is_dir():
        raise NotFound(f"{mdir} does not exist", where="--node", fix="give the kubeadm directory (/etc/kubernetes)")
    kubelet_path = kubelet_config or (root / "kubelet" / "config.yaml")
    kubelet: dict[str, Any] | None = None
    if kubelet_path.is_file():
        raw, _ = parse(read_text(kubelet_path), str(kubelet_path))
        if not isinstance(raw, dict):
            raise InputError([Problem(str(kubelet_path), "kubelet configuration is not a mapping",
                                      "give a KubeletConfiguration YAML file")])
        kubelet = raw
    elif kubelet_config is not None:
        raise NotFound(f"{kubelet_config} does not exist", where="--kubelet-config",
                       fix="give the kubelet's config.yaml")
    cfg = node_config_from_manifests(load_manifests([mdir]), kubelet)
    if kubelet is not None:
        cfg.sources["kubelet"] = str(kubelet_path)
    return cfg


# ---- check data ---------------------------------------------------------------------------------------

def parse_checks(text: str, where: str = "security-checks.yaml") -> tuple[str, tuple[Check, ...]]:
    try:
        raw, _ = parse(text, where)
        rows = raw["checks"]
    except (KeyError, TypeError):
        raise InputError([Problem(where, "check data is not a mapping with a checks list",
                                  "compare with the shipped security-checks.yaml")]) from None
    checks: list[Check] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, r in enumerate(rows):
        at = f"{where}: checks[{i}]"
        try:
            c = Check(id=str(r["id"]), section=str(r["section"]), text=str(r["text"]), target=str(r["target"]),
                      read=dict(r["read"]),
                      test=Test(str(r["test"]["op"]), r["test"].get("value"), r["test"].get("missing")),
                      remediation=str(r["remediation"]), scored=bool(r.get("scored", True)),
                      kinds=tuple(str(k) for k in r.get("kinds", ())))
        except (KeyError, TypeError, AttributeError) as exc:
            problems.append(Problem(at, f"missing or malformed field {exc}",
                                    "every check needs id, section, text, target, read, test, remediation"))
            continue
        if c.id in seen:
            problems.append(Problem(at, f"duplicate id {c.id}", "give every check its own id"))
        seen.add(c.id)
        if c.target not in NODE_TARGETS + MANIFEST_TARGETS:
            problems.append(Problem(at, f"unknown target {c.target!r}",
                                    f"use one of {NODE_TARGETS + MANIFEST_TARGETS}"))
        if c.test.missing not in (None, "pass", "fail"):
            problems.append(Problem(at, f"test.missing is {c.test.missing!r}", "use pass or fail"))
        if c.test.op not in OPS:
            problems.append(Problem(at, f"unknown test op {c.test.op!r}", f"use one of {OPS}"))
        key = "flag" if c.target in NODE_TARGETS[:4] else ("key" if c.target == "kubelet" else "path")
        if key not in c.read:
            problems.append(Problem(at, f"read needs {key!r} for target {c.target}", f"add read: {{{key}: …}}"))
        checks.append(c)
    if problems:
        raise InputError(problems)
    return str(raw.get("data_version", "")), tuple(checks)


@lru_cache(maxsize=1)
def shipped_checks() -> tuple[str, tuple[Check, ...]]:
    return parse_checks(resources.files("enclave.ops").joinpath("data/security-checks.yaml").read_text())


# ---- evaluation ---------------------------------------------------------------------------------------

def _norm(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _items(v: Any) -> list[str]:
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return [s.strip() for s in _norm(v).split(",") if s.strip()]


def _num(v: Any) -> float | None:
    text = _norm(v).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text)
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _subst(value: Any, params: Mapping[str, str]) -> Any:
    """Fill {name} placeholders from params (other braces, as in regex counts, stay as written)."""
    if not isinstance(value, str):
        return value
    for k, v in params.items():
        value = value.replace("{" + k + "}", v)
    return value


def evaluate(test: Test, value: Any, params: Mapping[str, str]) -> bool:
    """True when ``value`` (or MISSING) passes ``test``."""
    expected = _subst(test.value, params)
    missing = value is MISSING
    if missing and test.missing is not None:
        return test.missing == "pass"
    op = test.op
    if op == "set":
        return not missing
    if op == "not_set":
        return missing
    if op == "ne":
        return missing or _norm(value) != _norm(expected)
    if op in ("lacks", "none_of"):
        banned = expected if isinstance(expected, list) else [expected]
        return missing or not set(_items(value)) & {_norm(b) for b in banned}
    if missing:
        return False
    if op == "eq":
        return _norm(value) == _norm(expected)
    if op == "in":
        return _norm(value) in {_norm(e) for e in expected}
    if op == "has":
        return _norm(expected) in _items(value)
    if op in ("gte", "lte"):
        got, want = _num(value), _num(expected)
        if got is None or want is None:
            return False
        return got >= want if op == "gte" else got <= want
    if op == "prefix":
        return _norm(value).startswith(str(expected))
    if op == "matches":
        return re.fullmatch(str(expected), _norm(value)) is not None
    raise InputError([Problem("test.op", f"unknown op {op!r}", f"use one of {OPS}")])


def resolve(obj: Any, path: str) -> list[Any]:
    """Values at a dotted path; `*` fans out over a list. [MISSING] when nothing is there."""
    current: list[Any] = [obj]
    for part in path.split("."):
        nxt: list[Any] = []
        for c in current:
            if part == "*":
                if isinstance(c, list):
                    nxt.extend(c)
            elif isinstance(c, dict) and part in c and c[part] is not None:
                nxt.append(c[part])
        current = nxt
    return current or [MISSING]


def _describe(test: Test, value: Any, params: Mapping[str, str]) -> str:
    want = _subst(test.value, params)
    shown = "not set" if value is MISSING else json.dumps(value) if not isinstance(value, str) else value
    return f"found {shown}; expected {test.op}{'' if want is None else ' ' + json.dumps(want)}"


def _waiver(obj: Mapping[str, Any], check_id: str) -> str | None:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    reason = ann.get(WAIVER_PREFIX + check_id)
    return str(reason) if reason else None


def _manifest_items(check: Check, objects: Iterable[Located]) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(where, owning object, item the path is read from) for the check's target."""
    for where, obj in objects:
        if check.kinds and obj.get("kind") not in check.kinds:
            continue
        at = f"{where} {name_of(obj)}"
        is_binding = obj.get("kind") in ("RoleBinding", "ClusterRoleBinding")
        if check.target == "object" or (check.target == "binding" and is_binding):
            yield at, obj, obj
        elif check.target == "rbac-rule" and obj.get("kind") in ("Role", "ClusterRole"):
            for i, rule in enumerate(obj.get("rules") or []):
                yield f"{at} rules[{i}]", obj, rule
        elif check.target in ("pod", "container", "volume"):
            spec = pod_spec(obj)
            if spec is None:
                continue
            if check.target == "pod":
                yield at, obj, spec
            elif check.target == "container":
                for cwhere, c in containers(spec):
                    yield f"{at} {cwhere}", obj, c
            else:
                for i, v in enumerate(spec.get("volumes") or []):
                    yield f"{at} volumes[{i}]({v.get('name', '?')})", obj, v


def run_check(check: Check, *, node: NodeConfig | None = None, objects: Iterable[Located] = (),
              params: Mapping[str, str] | None = None) -> CheckResult:
    params = params or {}
    findings: list[Finding] = []
    if check.target in NODE_TARGETS:
        if node is None:
            return CheckResult(check, "skip", reason="no node configuration given (--node)")
        if check.target == "kubelet":
            if node.kubelet is None:
                return CheckResult(check, "skip", reason="no kubelet configuration found")
            values = resolve(node.kubelet, str(check.read["key"]))
            where = node.sources.get("kubelet", "kubelet config")
        else:
            flags = node.flags.get(check.target)
            if flags is None:
                return CheckResult(check, "skip", reason=f"no {check.target} static-pod manifest found")
            flag = str(check.read["flag"])
            values = [flags[flag]] if flag in flags else [MISSING]
            where = f"{node.sources.get(check.target, check.target)} {flag}"
        if "default" in check.read and values == [MISSING]:
            values = [check.read["default"]]  # the component's built-in default when the setting is absent
        for v in values:
            if not evaluate(check.test, v, params):
                findings.append(Finding(where, _describe(check.test, v, params)))
    else:
        seen_any = False
        for where, owner, item in _manifest_items(check, objects):
            seen_any = True
            for v in resolve(item, str(check.read["path"])):
                if not evaluate(check.test, v, params):
                    findings.append(Finding(where, _describe(check.test, v, params), _waiver(owner, check.id)))
        if not seen_any and not findings:
            return CheckResult(check, "pass", reason="no matching objects")
    open_findings = [f for f in findings if f.waived is None]
    if open_findings:
        return CheckResult(check, "fail" if check.scored else "warn", tuple(findings))
    if findings:
        return CheckResult(check, "waived", tuple(findings))
    return CheckResult(check, "pass")


def run(checks: Iterable[Check], *, node: NodeConfig | None = None, objects: Iterable[Located] = (),
        params: Mapping[str, str] | None = None, data_version: str = "") -> Report:
    objs = list(objects)
    return Report(tuple(run_check(c, node=node, objects=objs, params=params) for c in checks), data_version)


# ---- output -------------------------------------------------------------------------------------------

def to_text(report: Report) -> str:
    lines: list[str] = []
    section = None
    for r in report.results:
        if r.check.section != section:
            section = r.check.section
            lines.append(f"== {section}")
        lines.append(f"[{r.status.upper()}] {r.check.id} {r.check.text}" + (f" ({r.reason})" if r.reason else ""))
        for f in r.findings:
            lines.append(f"    {f.where}: {f.detail}" + (f" — waived: {f.waived}" if f.waived else ""))
        if r.status in ("fail", "warn"):
            lines.append(f"    remediation: {r.check.remediation}")
    lines.append(f"== summary: {report.count('pass')} pass, {report.count('fail')} fail, {report.count('warn')} warn, "
                 f"{report.count('waived')} waived, {report.count('skip')} skip")
    return "\n".join(lines)


def to_json(report: Report) -> str:
    return json.dumps({
        "data_version": report.data_version,
        "summary": {s: report.count(s) for s in ("pass", "fail", "warn", "waived", "skip")},
        "results": [{"id": r.check.id, "section": r.check.section, "text": r.check.text, "status": r.status,
                     "scored": r.check.scored, "reason": r.reason, "remediation": r.check.remediation,
                     "findings": [{"where": f.where, "detail": f.detail, "waived": f.waived} for f in r.findings]}
                    for r in report.results],
    }, indent=2)


def to_junit(report: Report) -> str:
    suite = ET.Element("testsuite", name="enclave-security", tests=str(len(report.results)),
                       failures=str(report.count("fail")), skipped=str(report.count("skip")))
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"enclave.security.{r.check.section}",
                             name=f"{r.check.id} {r.check.text}")
        detail = "\n".join(f"{f.where}: {f.detail}" for f in r.findings)
        if r.status == "fail":
            el = ET.SubElement(case, "failure", message=r.check.remediation)
            el.text = detail
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.reason)
        elif detail:
            out = ET.SubElement(case, "system-out")
            out.text = f"{r.status}: {detail}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
