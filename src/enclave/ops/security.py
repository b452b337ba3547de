"""Security benchmark (seed §14): the CIS Kubernetes Benchmark items kube-bench automates, plus enclave's own
policy, kept as data and run against a node's files (static-pod manifests, kubeconfigs, PKI, the kubelet's
configuration file and command line) and against Kubernetes manifests (pods, RBAC, images).

Checks live in data/security-checks.yaml; each names the CIS item it encodes (benchmark version in the file's
``benchmark``), so a new check is a new YAML entry. A run follows each item into the benchmark kube-bench would
choose for the cluster's release (``enclave.ops.cis``) and reports that benchmark's number, title and
Automated/Manual; an item the chosen benchmark lacks is NOT APPLICABLE. Pure apart from reading the node directory
it is given.

Results are those kube-bench reports (PASS, FAIL, WARN, INFO) plus NOT APPLICABLE (nothing of the kind was given or
the item does not exist for the cluster's version: never reported as PASS) and WAIVED (enclave's annotation).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from enclave.errors import InputError, NotFound, Problem
from enclave.ops import cis as cis_catalogue
from enclave.ops.cis import Chosen
from enclave.ops.manifests import (
    Flaw,
    Located,
    container_flaws,
    containers,
    entries,
    list_flaws,
    name_of,
    pod_spec,
    spec_flaw,
)
from enclave.ops.versions import Version
from enclave.spec.document import parse, read_text

NODE_TARGETS = ("apiserver", "controller-manager", "scheduler", "etcd", "kubelet")
FLAG_TARGETS = NODE_TARGETS[:4]
MANIFEST_TARGETS = ("pod", "container", "volume", "rbac-rule", "binding", "object")
TARGETS = (*NODE_TARGETS, "file", "kube-proxy", *MANIFEST_TARGETS)
OPS = ("eq", "ne", "set", "not_set", "has", "has_any", "lacks", "none_of", "gte", "lte", "prefix", "matches", "in",
       "mode_max")
STATUSES = ("pass", "fail", "warn", "info", "na", "waived")
WAIVER_PREFIX = "security.enclave.lsst.io/waive-"
COMPONENT_BINARIES = {"kube-apiserver": "apiserver", "kube-controller-manager": "controller-manager",
                      "kube-scheduler": "scheduler", "etcd": "etcd"}
CIS_TYPES = ("Automated", "Manual")


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
class Cis:
    """The CIS Kubernetes Benchmark item a check encodes, as the benchmark names it (None: no item; ``note``
    then says why: not in the chosen benchmark, or enclave's own policy)."""

    id: str | None
    type: str = ""  # Automated | Manual, as CIS marks the item
    title: str = ""
    note: str = ""
    benchmark: str = ""  # the benchmark ``id`` is numbered in
    check_type: str = ""  # kube-bench's check `type` there ("manual": WARN whatever the test)


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
    cis: Cis = Cis(None)
    since: Version | None = None  # the first Kubernetes minor the item applies to
    until: Version | None = None  # the first minor it no longer applies to (the flag is gone)
    skip_kinds: tuple[str, ...] = ()
    policy_scored: bool | None = None  # enclave's own say (``scored`` in the data), else kube-bench's
    absent: str = ""  # why the chosen benchmark has no such item (the result is then NOT APPLICABLE)
    differs: str = ""  # where enclave's reading differs from kube-bench's, and why (``differs`` in the data)

    def applies_to(self, version: Version | None) -> bool:
        if version is None:
            return True
        return not ((self.since and version.minor_key < self.since.minor_key)
                    or (self.until and version.minor_key >= self.until.minor_key))


@dataclass(frozen=True)
class Benchmark:
    """The benchmark the check data is numbered in (the file's ``benchmark``)."""

    name: str = ""
    version: str = ""
    source: str = ""


@dataclass(frozen=True)
class Finding:
    where: str
    detail: str
    waived: str | None = None


@dataclass(frozen=True)
class Unjudged:
    """An entry a check reads that is not the object its schema says (a string where a Container is): the API
    server refuses the object, so the check cannot judge it and reports a finding instead of passing it."""

    why: str  # "is a string, not a Container object"


UNJUDGED = "the API server refuses such an object, so nothing in it can be checked"


@dataclass(frozen=True)
class CheckResult:
    check: Check
    status: str  # one of STATUSES
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    checked: tuple[str, ...] = ()  # what was read: "where: value" (kube-bench's actual_value)


@dataclass(frozen=True)
class Report:
    results: tuple[CheckResult, ...]
    data_version: str
    benchmark: Chosen
    kubernetes: Version | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> bool:
        return any(r.status == "fail" for r in self.results)


@dataclass
class NodeConfig:
    """Flags of each control-plane component, the kubelet's configuration file and command line, and the node
    directory (/etc/kubernetes) whose files are checked, as found on one node."""

    flags: dict[str, dict[str, str]] = field(default_factory=dict)
    kubelet: dict[str, Any] | None = None
    kubelet_flags: dict[str, str] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)  # named files outside root (kubelet-config)
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # component → {flag: the variable it came from}
    version: Version | None = None  # from the control-plane images' tags


# Flags pflag parses into a slice or a map, where every occurrence adds to the value instead of replacing it:
# spf13/pflag string_slice.go `stringSliceValue.Set` appends once the flag was set ("--ss=v1,v2 --ss=v3" is
# [v1 v2 v3]), and kube-apiserver declares --authorization-mode (pkg/kubeapiserver/options/authorization.go),
# --enable-admission-plugins and --disable-admission-plugins (k8s.io/apiserver pkg/server/options/admission.go)
# and, before 1.10, --admission-control with StringSliceVar; component-base featuregate `Set` merges each
# --feature-gates into the gates set before (SetFromMap). All occurrences are kept, comma-joined, so a check
# sees every value: `--authorization-mode=AlwaysAllow --authorization-mode=Node,RBAC` runs AlwaysAllow. (A gate
# a later occurrence turns back on is still seen as turned off: kube-bench, reading the first occurrence only
# — check/test.go flagTestItem.findValue, FindStringSubmatch — sees the same.)
SLICE_FLAGS = frozenset({"--authorization-mode", "--enable-admission-plugins", "--disable-admission-plugins",
                         "--admission-control", "--feature-gates"})
# The kubelet's --authorization-mode is a plain string (cmd/kubelet/app/options/options.go, StringVar): the last
# occurrence wins there.
KUBELET_SLICE_FLAGS = frozenset({"--feature-gates"})
# The boolean flags the checks read (each component's command-line reference lists them without a value type;
# etcd's are Go flag BoolVar). A bare boolean flag is true and never takes the next word as its value — pflag
# gives it NoOptDefVal "true" (spf13/pflag bool.go), Go's flag package sets it at once (flag.go parseOne) — so
# `--profiling false` is --profiling=true and a stray "false"; kube-bench reads it as true too (check/test.go
# flagTestItem.findValue: an empty value after a `--` flag is "true").
BOOL_FLAGS = frozenset({
    "--anonymous-auth", "--profiling", "--service-account-lookup", "--service-account-extend-token-expiration",
    "--use-service-account-credentials", "--client-cert-auth", "--peer-client-cert-auth", "--auto-tls",
    "--peer-auto-tls", "--rotate-certificates", "--protect-kernel-defaults", "--make-iptables-util-chains"})


def parse_flags(args: Iterable[str], slices: frozenset[str] = SLICE_FLAGS) -> dict[str, str]:
    """`--a=b`, `--a b` and bare `--a` (a boolean switch, "true"; a flag of BOOL_FLAGS never takes the next
    word). A repeated flag keeps its last value, as spf13/pflag (which every Kubernetes component parses its
    command line with) does for scalar flags; a flag in ``slices`` keeps every value, comma-joined."""
    out: dict[str, str] = {}

    def put(name: str, value: str) -> None:
        out[name] = f"{out[name]},{value}" if name in slices and name in out else value

    items = list(args)
    i = 0
    while i < len(items):
        arg = str(items[i])
        if arg.startswith("--"):
            if "=" in arg:
                put(*arg.split("=", 1))
            elif arg not in BOOL_FLAGS and i + 1 < len(items) and not str(items[i + 1]).startswith("--"):
                put(arg, str(items[i + 1]))
                i += 1
            else:
                put(arg, "true")
        i += 1
    return out


_IMAGE_TAG = re.compile(r":v?(\d+\.\d+\.\d+)(?:[-+@].*)?$")


def _image_version(image: str) -> Version | None:
    m = _IMAGE_TAG.search(image)
    return Version.parse(m.group(1)) if m else None


def _etcd_env_flags(container: Mapping[str, Any], flags: dict[str, str]) -> dict[str, str]:
    """etcd takes a flag it was not given from the variable ETCD_<FLAG> (upper case, `-` as `_`), and ignores an
    empty one (etcdmain/config.go configFromCmdLine → pkg/flags SetFlagsFromEnv, FlagToEnv; etcd docs,
    "Configuration flags"); with --config-file it reads neither. kube-bench reads ETCD_* too (check/check.go:
    a test item's `env` when its flag is absent, cfg/cis-1.6 on); enclave does so under every benchmark, etcd
    doing so in every release. The container's literal `env` values are added to ``flags``; a value from
    `valueFrom` cannot be read from the manifest and is left out. Returns {flag: variable} for those added."""
    if "--config-file" in flags:
        return {}
    added: dict[str, str] = {}
    for _, item in entries(container, "env"):  # one that is no EnvVar is refused by node_config_from_manifests
        name, value = str(item.get("name", "")), item.get("value")
        flag = "--" + name.removeprefix("ETCD_").lower().replace("_", "-")
        if name.startswith("ETCD_") and value not in (None, "") and flag not in flags:
            flags[flag] = str(value)
            added[flag] = name
    return added


def node_config_from_manifests(objects: Iterable[Located], kubelet: Mapping[str, Any] | None = None) -> NodeConfig:
    """Read component flags from static-pod manifests (kubeadm: /etc/kubernetes/manifests), etcd's also from its
    ETCD_* environment, and the Kubernetes version from the API server's image tag (kubeadm tags every
    control-plane image with it). A static pod with an entry that is not the object its schema says (a spec or
    container that is no mapping, an etcd `env` entry that is no EnvVar) is refused, the kubelet refusing to run
    it: the node cannot be judged from it."""
    cfg = NodeConfig(kubelet=dict(kubelet) if kubelet is not None else None)
    problems: list[Problem] = []

    def refused(at: str, flaws: Iterable[Flaw]) -> None:
        problems.extend(Problem(f"{at} {path}", f"{why}; the kubelet refuses such a static pod, so the node "
                                "cannot be judged", "correct the static pod's manifest") for path, why in flaws)

    for where, obj in objects:
        flaw = spec_flaw(obj)
        spec = pod_spec(obj)
        refused(f"{where} {name_of(obj)}", [flaw] if flaw else container_flaws(spec) if spec is not None else [])
        if spec is None:
            continue
        for cwhere, c in containers(spec):
            argv = [*(c.get("command") or []), *(c.get("args") or [])]
            if len(argv) == 1 and " " in str(argv[0]):
                argv = shlex.split(str(argv[0]))
            binary = Path(str(argv[0])).name if argv else ""
            component = COMPONENT_BINARIES.get(binary)
            if component:
                cfg.flags[component] = parse_flags(argv[1:])
                cfg.sources[component] = where
                if component == "etcd":
                    refused(f"{where} {name_of(obj)} {cwhere}", list_flaws(c, "env", "EnvVar"))
                    cfg.env[component] = _etcd_env_flags(c, cfg.flags[component])
                if component == "apiserver":
                    cfg.version = _image_version(str(c.get("image", "")))
    if problems:
        raise InputError(problems)
    return cfg


# ---- the kubelet's command line ----------------------------------------------------------------------
# kube-bench audits the kubelet's real argv (`/bin/ps -fC $kubeletbin`, cfg/cis-1.12/node.yaml 4.2.x). Off the
# process list, enclave rebuilds it as systemd does from the unit files and environment files the operator gives.

# The ExecStart kubeadm's drop-in 10-kubeadm.conf gives the kubelet (kubeadm docs, "Configuring each kubelet in
# your cluster using kubeadm", section "The kubelet drop-in file for systemd":
# https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/kubelet-integration/), assumed when only
# environment files (kubeadm-flags.env, /etc/default/kubelet) are given.
KUBEADM_EXEC_START = ("/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS "
                      "$KUBELET_EXTRA_ARGS")
_UNIT_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class ServiceUnit:
    """What a unit file or drop-in says about the process it starts (systemd.exec, systemd.service): the
    Environment= variables, the EnvironmentFile= paths, and every ExecStart= assignment ("" resets those
    before). An empty Environment= or EnvironmentFile= resets the list, those of units read before too."""

    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)
    exec_start: list[str] = field(default_factory=list)  # every assignment in order, "" included
    resets_environment: bool = False
    resets_environment_files: bool = False


def is_unit_file(text: str) -> bool:
    """A unit file or drop-in has [Section] headers (systemd.syntax); an environment file has none."""
    return any(_UNIT_SECTION.match(line) for line in text.splitlines())


def _unit_lines(text: str) -> Iterator[tuple[str, str]]:
    """(key, value) of the [Service] section. systemd.syntax: `#` and `;` start comments, a trailing backslash
    joins the next line (the backslash read as a space)."""
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        header = _UNIT_SECTION.match(line)
        if header:
            section = header.group(1)
        elif section == "Service" and line and line[0] not in "#;" and "=" in line:
            key, value = line.split("=", 1)
            yield key.strip(), value.strip()


def _words(text: str, where: str) -> list[str]:
    """Words split with shell-like quoting, as systemd splits Environment= and ExecStart= (systemd.syntax)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InputError([Problem(where, f"cannot split {text!r} into words ({exc})",
                                  "close the quotes as systemd.syntax requires")]) from None


def parse_unit(text: str, where: str = "unit file") -> ServiceUnit:
    """Environment= takes space-separated assignments, each quoted whole when it holds spaces
    (`Environment="VAR1=word1 word2" VAR2=word3`), the later of a name winning and an empty assignment resetting
    the list; EnvironmentFile= likewise (systemd.exec, "Environment=", "EnvironmentFile="). ExecStart= is kept
    as assigned (systemd.service: an empty assignment resets the commands)."""
    unit = ServiceUnit()
    for key, value in _unit_lines(text):
        if key == "Environment":
            if not value:
                unit.environment.clear()
                unit.resets_environment = True
            for word in _words(value, f"{where}: Environment="):
                name, sep, val = word.partition("=")
                if sep and _ENV_NAME.fullmatch(name):
                    unit.environment[name] = val
        elif key == "EnvironmentFile":
            unit.environment_files = [*unit.environment_files, value] if value else []
            unit.resets_environment_files = unit.resets_environment_files or not value
        elif key == "ExecStart":
            unit.exec_start.append(value)
    return unit


def parse_env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile= (systemd.exec): `NAME=value` lines; blank lines, lines without `=` and lines starting
    with `#` or `;` are ignored; a trailing backslash continues the line; a value in double quotes loses them
    (a backslash escaping a double quote, backslash, dollar or backquote), in single quotes loses them and is
    verbatim, unquoted loses its surrounding whitespace and its backslashes (each keeps the character after
    it)."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        pending = ""
        if line.rstrip().endswith("\\") and not line.rstrip().endswith("\\\\"):
            pending = line.rstrip()[:-1]
            continue
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        name, value = (part.strip() for part in stripped.split("=", 1))
        if not _ENV_NAME.fullmatch(name):
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\(["\\$`])', r"\1", value[1:-1])
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        else:
            value = re.sub(r"\\(.)", r"\1", value)
        out[name] = value
    return out


def expand_exec(command: str, env: Mapping[str, str], where: str = "ExecStart=") -> list[str]:
    """An ExecStart command line as systemd runs it (systemd.service, "Command lines"): its prefixes (`-`, `@`,
    `:`, `+`, `!`) dropped, words split with shell-like quoting, a word that is `$NAME` replaced by the
    variable's value split at whitespace (zero or more arguments), `${NAME}` replaced by the value as is (unset:
    empty)."""
    words = _words(command.lstrip("-@:+!"), where)
    argv: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(env.get(whole.group(1), "").split())
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


@dataclass(frozen=True)
class KubeletCommand:
    flags: dict[str, str]
    read: tuple[Path, ...]  # every file the command line came from, in the order read
    unit: Path | None  # the unit file the kubelet's service is (kube-bench's kubelet service file, CIS 4.1.1)


def _env_file_path(assigned: str, given: Sequence[Path], root: Path) -> Path | None:
    """Where an EnvironmentFile= path is read from, simply: a file the operator gave with the same name (their
    copy of /var/lib/kubelet/kubeadm-flags.env or /etc/default/kubelet), else the node directory's kubelet/ copy
    of a /var/lib/kubelet file (kubeadm's layout, as for kubelet/config.yaml), else the path itself (run on the
    node). A leading `-` (ignore when missing) is dropped here."""
    path = Path(assigned.removeprefix("-"))
    candidates = [g for g in given if g.name == path.name]
    if path.parent == Path("/var/lib/kubelet"):
        candidates.append(root / "kubelet" / path.name)
    candidates.append(path)
    return next((c for c in candidates if c.is_file()), None)


def kubelet_argv(units: Sequence[ServiceUnit], env_files: Sequence[Mapping[str, str]]) -> list[str]:
    """The command systemd starts from these units (in the order it reads them: kubelet.service, then its
    drop-ins) and the environment files they name (in order): EnvironmentFile= values override Environment= ones,
    a later file a former (systemd.exec); the last ExecStart runs, an empty one dropping those before
    (systemd.service). With no ExecStart, kubeadm's (KUBEADM_EXEC_START)."""
    environment: dict[str, str] = {}
    exec_start: list[str] = []
    for unit in units:
        if unit.resets_environment:
            environment.clear()
        environment.update(unit.environment)
        exec_start += unit.exec_start
    for env in env_files:
        environment.update(env)
    last_reset = max((i for i, command in enumerate(exec_start) if not command), default=-1)
    commands = exec_start[last_reset + 1:]
    return expand_exec(commands[-1] if commands else KUBEADM_EXEC_START, environment)


def read_kubelet_command(files: Sequence[Path], root: Path, notes: list[str] | None = None) -> KubeletCommand:
    """The kubelet's command line from the systemd unit files (kubelet.service, the 10-kubeadm.conf drop-in) and
    environment files in ``files``, units in the order given. The environment files the units name are found
    by _env_file_path; files given that no unit names are read after them (with no unit at all, kubeadm's
    ExecStart is assumed, so kubeadm-flags.env alone is its KUBELET_KUBEADM_ARGS)."""
    texts = {f: read_text(f) for f in files}
    unit_files = [f for f in files if is_unit_file(texts[f])]
    units = [parse_unit(texts[f], str(f)) for f in unit_files]
    named: list[str] = []
    for unit in units:
        named = [*([] if unit.resets_environment_files else named), *unit.environment_files]
    env_paths: list[Path] = []
    for assigned in named:
        path = _env_file_path(assigned, files, root)
        if path is not None:
            env_paths.append(path)
        elif notes is not None and not assigned.startswith("-"):  # "-": systemd ignores it when missing
            notes.append(f"EnvironmentFile={assigned} of the kubelet's unit is not found (systemd would not start "
                         "the kubelet); give a copy with --kubelet-flags")
    env_paths += [f for f in files if f not in unit_files and f not in env_paths]
    env_files = [parse_env_file(texts[p] if p in texts else read_text(p)) for p in env_paths]
    argv = kubelet_argv(units, env_files)
    service = next((u for u in unit_files if u.suffix == ".conf"), unit_files[0] if unit_files else None)
    return KubeletCommand(parse_flags(argv[1:], KUBELET_SLICE_FLAGS), (*unit_files, *env_paths), service)


def _read_kubelet_config(path: Path) -> dict[str, Any]:
    raw, _ = parse(read_text(path), str(path))
    if not isinstance(raw, dict):
        raise InputError([Problem(str(path), "kubelet configuration is not a mapping",
                                  "give a KubeletConfiguration YAML file")])
    return raw


def _kubelet_config_path(given: Path | None, flags: Mapping[str, str] | None, root: Path,
                         notes: list[str] | None) -> Path:
    """--kubelet-config, else the file the kubelet's own --config names when it can be read here (on the node),
    else the node directory's kubelet/config.yaml."""
    if given is not None:
        return given
    named = (flags or {}).get("--config")
    if named:
        if Path(named).is_file() and os.access(named, os.R_OK):
            return Path(named)
        if notes is not None:
            notes.append(f"the kubelet's --config {named} cannot be read here; reading {root / 'kubelet'} "
                         "/config.yaml (give the file with --kubelet-config)")
    return root / "kubelet" / "config.yaml"


def load_node_dir(root: Path, kubelet_config: Path | None = None,
                  kubelet_flags: Sequence[Path] | Path | None = None, notes: list[str] | None = None) -> NodeConfig:
    """A node's configuration laid out as kubeadm leaves it: ROOT/manifests/*.yaml, kubeconfigs and pki/ under
    ROOT (/etc/kubernetes), the kubelet's command line (``kubelet_flags``: its systemd unit and drop-in and the
    environment files they read, see read_kubelet_command; else ROOT/kubelet/kubeadm-flags.env) and its config
    file (``kubelet_config``, else the kubelet's --config, else ROOT/kubelet/config.yaml)."""
    from enclave.ops.manifests import load_manifests

    mdir = root / "manifests"
    if not mdir.is_dir():
        raise NotFound(f"{mdir} does not exist", where="--node", fix="give the kubeadm directory (/etc/kubernetes)")
    if kubelet_config is not None and not kubelet_config.is_file():
        raise NotFound(f"{kubelet_config} does not exist", where="--kubelet-config",
                       fix="give the kubelet's config.yaml")
    given = [kubelet_flags] if isinstance(kubelet_flags, Path) else list(kubelet_flags or ())
    for path in given:
        if not path.is_file():
            raise NotFound(f"{path} does not exist", where="--kubelet-flags",
                           fix="give the kubelet's systemd drop-in (10-kubeadm.conf) and the environment files it "
                               "reads (/var/lib/kubelet/kubeadm-flags.env, /etc/default/kubelet)")
    default_env = root / "kubelet" / "kubeadm-flags.env"
    flag_files = given or ([default_env] if default_env.is_file() else [])
    command = read_kubelet_command(flag_files, root, notes) if flag_files else None
    kubelet_path = _kubelet_config_path(kubelet_config, command.flags if command else None, root, notes)
    cfg = node_config_from_manifests(load_manifests([mdir], notes=notes),
                                     _read_kubelet_config(kubelet_path) if kubelet_path.is_file() else None)
    cfg.root = root
    if cfg.kubelet is not None:
        cfg.sources["kubelet"] = str(kubelet_path)
        cfg.files["kubelet-config"] = kubelet_path
    if command is not None:
        cfg.kubelet_flags = command.flags
        cfg.sources["kubelet-flags"] = " + ".join(str(p) for p in command.read)
        if command.unit is not None:  # kube-bench's "kubelet service file" (CIS 4.1.1, 4.1.2)
            cfg.files["kubelet-service"] = command.unit
    data_dir = cfg.flags.get("etcd", {}).get("--data-dir")
    if data_dir:  # on the node itself: etcd's data directory (CIS 1.1.11, 1.1.12)
        cfg.files["etcd-data-dir"] = Path(data_dir)
    return cfg


# ---- check data ---------------------------------------------------------------------------------------

def _version(raw: Any, at: str, problems: list[Problem]) -> Version | None:
    if raw is None:
        return None
    try:
        return Version.parse(str(raw), where=at)
    except InputError as exc:
        problems.extend(exc.problems)
        return None


def _cis(r: Mapping[str, Any], at: str, problems: list[Problem], numbered_in: str) -> Cis:
    raw = r.get("cis")
    if not isinstance(raw, dict):
        problems.append(Problem(at, "no cis mapping", "add cis: {id, type, title} or cis: {id: null, note: why}"))
        return Cis(None)
    cis = Cis(None if raw.get("id") is None else str(raw["id"]), str(raw.get("type", "")),
              str(raw.get("title", "")), str(raw.get("note", "")),
              str(raw.get("benchmark", numbered_in)) if raw.get("id") is not None else "")
    if cis.id is None and not cis.note:
        problems.append(Problem(at, "cis.id is null without a note",
                                "say why no CIS item fits (enclave policy of seed §…)"))
    if cis.id is not None:
        _agrees_with_kube_bench(cis, at, problems)
    return cis


def _agrees_with_kube_bench(cis: Cis, at: str, problems: list[Problem]) -> None:
    """The item named in the data is the one kube-bench's cfg/<benchmark> has (number, title, type)."""
    item = cis_catalogue.catalogue().item(cis.benchmark, str(cis.id))
    if item is None:
        problems.append(Problem(at, f"{cis.benchmark} has no item {cis.id}",
                                "name an item of kube-bench cfg/<benchmark> (data/cis-benchmarks.yaml)"))
    elif (item.title, item.type) != (cis.title, cis.type):
        problems.append(Problem(at, f"{cis.benchmark} {cis.id} is {item.type}: {item.title!r}",
                                "copy the title and type as kube-bench's cfg states them"))


def _scored(r: Mapping[str, Any], cis: Cis, at: str, problems: list[Problem]) -> tuple[bool, bool | None]:
    """A check is scored as kube-bench scores its item (cis.Item.fails: `scored` and no `type: manual` in its cfg;
    else kube-bench reports WARN, never FAIL); enclave may score an item kube-bench does not as its own stricter
    policy only by saying so (``policy``). Returns the scoring in the numbering benchmark and enclave's own say
    (None: follow the chosen benchmark's item)."""
    item = cis_catalogue.catalogue().item(cis.benchmark, cis.id) if cis.id is not None else None
    kube_bench = item.fails if item is not None else cis.type != "Manual"
    if "scored" not in r:
        return kube_bench, None
    scored = bool(r["scored"])
    if scored and not kube_bench and not r.get("policy"):
        problems.append(Problem(at, f"{cis.benchmark} {cis.id} is not scored by kube-bench, yet scored here without "
                                    "a policy note", "drop scored: true, or add policy: <why enclave scores it>"))
    return scored, scored


def _check(r: Mapping[str, Any], at: str, problems: list[Problem], numbered_in: str) -> Check:
    cis = _cis(r, at, problems, numbered_in)
    scored, policy_scored = _scored(r, cis, at, problems)
    return Check(id=str(r["id"]), section=str(r["section"]), text=str(r["text"]), target=str(r["target"]),
                 read=dict(r["read"]),
                 test=Test(str(r["test"]["op"]), r["test"].get("value"), r["test"].get("missing")),
                 remediation=str(r["remediation"]), scored=scored, policy_scored=policy_scored,
                 kinds=tuple(str(k) for k in r.get("kinds", ())), cis=cis,
                 since=_version(r.get("since"), f"{at}.since", problems),
                 until=_version(r.get("until"), f"{at}.until", problems),
                 skip_kinds=tuple(str(k) for k in r.get("skip_kinds", ())), differs=str(r.get("differs", "")))


def _read_problem(c: Check) -> tuple[str, str] | None:
    if c.target in FLAG_TARGETS:
        return None if ("flag" in c.read) != ("flags" in c.read) else ("flag", "read: {flag: …} or {flags: […]}")
    if c.target == "kubelet":
        return None if "key" in c.read else ("key", "read: {key: …, flag: …}")
    if c.target == "file":
        ok = "file" in c.read and c.read.get("stat") in ("mode", "owner")
        return None if ok else ("file", "read: {file: …, stat: mode|owner}")
    if c.target == "kube-proxy":
        return None if "flag" in c.read and "key" in c.read else ("key", "read: {flag: …, key: …, default: …}")
    return None if "path" in c.read else ("path", "read: {path: …}")


def _validate(c: Check, at: str, problems: list[Problem]) -> None:
    if c.target not in TARGETS:
        problems.append(Problem(at, f"unknown target {c.target!r}", f"use one of {TARGETS}"))
        return
    if c.test.missing not in (None, "pass", "fail"):
        problems.append(Problem(at, f"test.missing is {c.test.missing!r}", "use pass or fail"))
    if c.test.op not in OPS:
        problems.append(Problem(at, f"unknown test op {c.test.op!r}", f"use one of {OPS}"))
    bad = _read_problem(c)
    if bad:
        problems.append(Problem(at, f"read needs {bad[0]!r} for target {c.target}", f"write {bad[1]}"))


def parse_checks(text: str, where: str = "security-checks.yaml") -> tuple[str, tuple[Check, ...]]:
    version, checks, _ = parse_benchmark(text, where)
    return version, checks


def parse_benchmark(text: str, where: str = "security-checks.yaml") -> tuple[str, tuple[Check, ...], Benchmark]:
    try:
        raw, _ = parse(text, where)
        rows = raw["checks"]
    except (KeyError, TypeError):
        raise InputError([Problem(where, "check data is not a mapping with a checks list",
                                  "compare with the shipped security-checks.yaml")]) from None
    checks: list[Check] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    b = raw.get("benchmark") or {}
    bench = Benchmark(str(b.get("name", "")), str(b.get("version", "")), str(b.get("source", "")))
    for i, r in enumerate(rows):
        at = f"{where}: checks[{i}]"
        try:
            c = _check(r, at, problems, bench.version)
        except (KeyError, TypeError, AttributeError) as exc:
            problems.append(Problem(at, f"missing or malformed field {exc}",
                                    "every check needs id, section, text, target, read, test, remediation, cis"))
            continue
        if c.id in seen:
            problems.append(Problem(at, f"duplicate id {c.id}", "give every check its own id"))
        seen.add(c.id)
        _validate(c, at, problems)
        checks.append(c)
    if problems:
        raise InputError(problems)
    return str(raw.get("data_version", "")), tuple(checks), bench


def for_benchmark(checks: Iterable[Check], benchmark: str) -> tuple[Check, ...]:
    """The checks as ``benchmark`` numbers, titles and types their items (kube-bench cfg/<benchmark>); a
    permission item also takes the mode that benchmark expects (CIS 1.5 asked 644 where 1.12 asks 600). An item
    the benchmark lacks makes its check NOT APPLICABLE, saying which benchmark had it — unless enclave scores the
    check as its own policy (``policy`` in the data), which holds whatever the benchmark."""
    cat = cis_catalogue.catalogue()
    out: list[Check] = []
    for c in checks:
        if c.cis.id is None:
            out.append(c)
            continue
        item = cat.follow(c.cis.benchmark, c.cis.id, benchmark)
        if item is None:
            why = f"{benchmark} has no such item ({c.cis.benchmark} {c.cis.id}: {c.cis.title})"
            if c.policy_scored is not None:  # enclave's own rule (``policy``) stands without the CIS item
                out.append(replace(c, cis=Cis(None, note=f"{why}; checked as enclave policy")))
            else:
                out.append(replace(c, cis=Cis(None, note=why), absent=why))
            continue
        test = replace(c.test, value=item.mode) if c.test.op == "mode_max" and item.mode else c.test
        scored = c.policy_scored if c.policy_scored is not None else item.fails
        out.append(replace(c, cis=Cis(item.id, item.type, item.title, benchmark=benchmark,
                                      check_type=item.check_type), scored=scored,
                           test=test))
    return tuple(out)


@lru_cache(maxsize=1)
def shipped_benchmark() -> tuple[str, tuple[Check, ...], Benchmark]:
    return parse_benchmark(resources.files("enclave.ops").joinpath("data/security-checks.yaml").read_text())


def shipped_checks() -> tuple[str, tuple[Check, ...]]:
    version, checks, _ = shipped_benchmark()
    return version, checks


# ---- evaluation ---------------------------------------------------------------------------------------

def _norm(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# Go's strconv.ParseBool, which reads every boolean flag (spf13/pflag bool.go and Go's flag package: boolValue.Set)
# and every --feature-gates value (component-base featuregate Set): these spellings and no others.
_GO_BOOLS = {"1": "true", "t": "true", "T": "true", "TRUE": "true", "true": "true", "True": "true",
             "0": "false", "f": "false", "F": "false", "FALSE": "false", "false": "false", "False": "false"}


def _as_bool(v: Any) -> str:
    """The canonical true or false for a spelling strconv.ParseBool accepts, else the value as written."""
    text = _norm(v)
    return _GO_BOOLS.get(text, text)


def _same(value: Any, expected: Any) -> bool:
    """eq/ne. Against true or false the value compares as the component reads it, so --auto-tls=True and
    --auto-tls=1 are true and --profiling=False is false (kube-bench's `eq` lower-cases booleans too, check/test.go
    compareOp, though it reads 1 and 0 as other strings)."""
    want = _norm(expected)
    return (_as_bool(value) if want in ("true", "false") else _norm(value)) == want


def _items(v: Any) -> list[str]:
    """A list, or a comma-separated flag value, item by item; a `Gate=<bool>` item (--feature-gates) has its bool
    as the component reads it, so RotateKubeletServerCertificate=False is =false."""
    raw = [_norm(x) for x in v] if isinstance(v, list) else [s.strip() for s in _norm(v).split(",") if s.strip()]
    return [f"{k}={_as_bool(b)}" if sep else k for k, sep, b in (item.partition("=") for item in raw)]


def capability(name: Any) -> str:
    """A Linux capability as the runtime applies it: containerd upper-cases each name and prefixes CAP_
    (pkg/cri opts `WithCapabilities`: "Capabilities in CRI doesn't have `CAP_` prefix, so add it"), so
    `sys_admin` grants CAP_SYS_ADMIN. A name already written with CAP_ is read as the capability it names
    (conservative: a runtime that accepts that spelling grants it)."""
    text = _norm(name).strip().upper()
    return text.removeprefix("CAP_")


def _int(v: Any) -> int | None:
    """A whole number as Go's strconv.Atoi reads one (an optional sign, then digits), which kube-bench's gte/lte
    compare with (check/test.go toNumeric) and the flags they test are (--audit-log-maxage and the others are
    IntVar): 30m or 100.5 is no number, so the test fails."""
    text = _norm(v).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def _zero_duration(v: Any) -> bool:
    """A zero Go duration (time.ParseDuration: "0", or numbers each with a unit — 0s, 0m, 0h0m0s)."""
    text = _norm(v).strip()
    return text == "0" or (re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+", text) is not None
                           and re.search(r"[1-9]", text) is None)


def _subst(value: Any, params: Mapping[str, str]) -> Any:
    """Fill {name} placeholders from params (other braces, as in regex counts, stay as written)."""
    if not isinstance(value, str):
        return value
    for k, v in params.items():
        value = value.replace("{" + k + "}", v)
    return value


def _mode_within(value: Any, limit: Any) -> bool:
    """kube-bench's `bitmask` compare: the file's permission bits set no bit the limit does not."""
    try:
        return int(_norm(value), 8) & ~int(_norm(limit), 8) == 0
    except ValueError:
        return False


def _evaluate_present(op: str, value: Any, expected: Any) -> bool:
    if op == "eq":
        return _same(value, expected)
    if op == "in":
        return _norm(value) in {_norm(e) for e in expected}
    if op == "has":
        return _norm(expected) in _items(value)
    if op == "has_any":
        return bool(set(_items(value)) & {_norm(e) for e in expected})
    if op in ("gte", "lte"):
        got, want = _int(value), _int(expected)
        if got is None or want is None:
            return False
        return got >= want if op == "gte" else got <= want
    if op == "prefix":
        return _norm(value).startswith(str(expected))
    if op == "matches":
        return re.fullmatch(str(expected), _norm(value)) is not None
    if op == "mode_max":
        return _mode_within(value, expected)
    raise InputError([Problem("test.op", f"unknown op {op!r}", f"use one of {OPS}")])


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
        return missing or not _same(value, expected)
    if op in ("lacks", "none_of"):
        banned = expected if isinstance(expected, list) else [expected]
        return missing or not set(_items(value)) & {_norm(b) for b in banned}
    if missing:
        return False
    return _evaluate_present(op, value, expected)


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


def _shown(value: Any) -> str:
    return "not set" if value is MISSING else value if isinstance(value, str) else json.dumps(value)


def _describe(test: Test, value: Any, params: Mapping[str, str]) -> str:
    want = _subst(test.value, params)
    return f"found {_shown(value)}; expected {test.op}{'' if want is None else ' ' + json.dumps(want)}"


def _waiver(obj: Mapping[str, Any], check_id: str) -> str | None:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    reason = ann.get(WAIVER_PREFIX + check_id)
    return str(reason) if reason else None


# ---- reading node values -------------------------------------------------------------------------------

Read = tuple[str, Any]  # (where, value or MISSING)


def default_for(read: Mapping[str, Any], version: Version | None) -> Any:
    """The component's built-in value when the setting is absent. ``default`` is a value, or a list of
    {value, since?, until?} rows for a default that changed between releases (first row that fits wins; an
    unknown version takes the newest row, the last)."""
    d = read.get("default", MISSING)
    if not isinstance(d, list):
        return d
    for row in d:
        since = Version.parse(str(row["since"])) if "since" in row else None
        until = Version.parse(str(row["until"])) if "until" in row else None
        if version is None:
            continue
        if (since is None or version.minor_key >= since.minor_key) and \
                (until is None or version.minor_key < until.minor_key):
            return row["value"]
    return d[-1]["value"] if d else MISSING


def _flag_names(spec: Any, version: Version | None) -> list[str]:
    """A flag, or alternatives read in order (the first one set wins): a name, or {name, since?, until?} for a
    flag that only meant this setting in some releases."""
    names: list[str] = []
    for item in spec if isinstance(spec, list) else [spec]:
        if isinstance(item, str):
            names.append(item)
            continue
        since = Version.parse(str(item["since"])) if "since" in item else None
        until = Version.parse(str(item["until"])) if "until" in item else None
        if version is None or ((since is None or version.minor_key >= since.minor_key)
                               and (until is None or version.minor_key < until.minor_key)):
            names.append(str(item["name"]))
    return names


def _flag_value(flags: Mapping[str, str], spec: Any, version: Version | None) -> tuple[str, Any]:
    names = _flag_names(spec, version)
    for name in names:
        if name in flags:
            return name, flags[name]
    return (names[0] if names else str(spec)), MISSING


def _component_reads(check: Check, node: NodeConfig, version: Version | None) -> list[Read] | str:
    flags = node.flags.get(check.target)
    if flags is None:
        return f"no {check.target} static-pod manifest found"
    source = node.sources.get(check.target, check.target)
    specs = check.read["flags"] if "flags" in check.read else [check.read["flag"]]
    out: list[Read] = []
    for spec in specs:  # `flags`: a certificate and its key, every one must pass (kube-bench bin_op: and)
        name, value = _flag_value(flags, spec, version)
        if value is MISSING:
            value = default_for(check.read, version)
        variable = node.env.get(check.target, {}).get(name)
        out.append((f"{source} {name}" + (f" (from env {variable})" if variable else ""), value))
    return out


def _kubelet_reads(check: Check, node: NodeConfig, version: Version | None) -> list[Read] | str:
    """A kubelet command-line flag wins over the config file: "flags on the command line take precedence over
    the corresponding values in the config file" (kubelet docs, "Set Kubelet parameters via a configuration
    file": https://kubernetes.io/docs/tasks/administer-cluster/kubelet-config-file/), as in kube-bench
    (cfg/cis-1.12/node.yaml: `flag` and `path` on each test item, check/check.go execute). A setting in neither
    takes the kubelet's default, where kube-bench passes or fails the absence as each item says (the checks'
    ``differs`` name where that gives another result)."""
    if node.kubelet is None and node.kubelet_flags is None:
        return "no kubelet configuration or command line found"
    if "flag" in check.read and node.kubelet_flags is not None:
        name, value = _flag_value(node.kubelet_flags, check.read["flag"], version)
        if value is not MISSING:
            return [(f"{node.sources.get('kubelet-flags', 'kubelet command line')} {name}", value)]
    if node.kubelet is None:  # flags only: the command-line default applies
        flag = (_flag_names(check.read.get("flag", ""), version) or [""])[0]
        default = check.read.get("flag_default", check.read.get("default", MISSING))
        return [(f"{node.sources.get('kubelet-flags', 'kubelet command line')} {flag}", default)]
    values = resolve(node.kubelet, str(check.read["key"]))
    where = f"{node.sources.get('kubelet', 'kubelet config')} {check.read['key']}"
    # KubeletConfiguration v1beta1 defaulting fills absent fields and, for durations, zero ones too
    # (`if obj.StreamingConnectionIdleTimeout == zeroDuration { … 4h }`; kubeadm writes such fields as 0s).
    zero_defaults = bool(check.read.get("zero_is_default"))
    if values == [MISSING] or (zero_defaults and all(_zero_duration(v) for v in values)):
        values = [default_for(check.read, version)]
    return [(where, v) for v in values]


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def _patterns(check: Check) -> list[str]:
    raw = check.read["file"]
    return [str(p) for p in (raw if isinstance(raw, list) else [raw])]


def _node_files(patterns: Sequence[str], node: NodeConfig) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        if pattern.startswith("@"):  # a named file outside the node directory
            path = node.files.get(pattern[1:])
            found.update([path] if path is not None and path.exists() else [])
        elif node.root is not None:
            found.update(node.root.glob(pattern))
    return sorted(found)


def kube_bench_control(check: Check) -> str | None:
    """The kube-bench control an item belongs to, the first number of its id: 1 master, 2 etcd, 3 control plane,
    4 node, 5 policies (cfg/<benchmark>/master.yaml … policies.yaml, each file's `id`)."""
    return check.cis.id.split(".", 1)[0] if check.cis.id else None


def _file_reads(check: Check, node: NodeConfig) -> list[Read] | str:
    """Permissions (octal) or owner (user:group) of files, as kube-bench's `stat -c %a` / `%U:%G` audits read
    them. A file of the node directory that is not there reads as not set, so the check fails (test.missing
    aside), as in kube-bench: its audit `if test -e FILE; then stat …; fi` prints nothing and the test finds
    nothing (check/test.go; kube-bench issue #1881, and #255: "it would not be correct to pass tests if the file
    doesn't exist in the expected location"). Not applicable instead: a control-plane file (control 1) on a node
    with no kube-apiserver manifest, kube-bench running master checks only where the API server runs (cmd/root.go
    isMaster); and a named file outside the node directory (@…) not present here — not given, or, like etcd's data
    directory, only on the node itself."""
    if node.root is None:
        return "no node directory given (--node)"
    patterns = _patterns(check)
    paths = _node_files(patterns, node)
    if paths:
        return [(str(path), _stat(path, str(check.read["stat"]))) for path in paths]
    in_root = [p for p in patterns if not p.startswith("@")]
    if not in_root:
        return f"{', '.join(patterns)} not present here"
    if kube_bench_control(check) == "1" and "apiserver" not in node.flags:
        return "not a control-plane node (no kube-apiserver manifest): kube-bench runs its master checks only there"
    return [(f"{' or '.join(str(node.root / p) for p in in_root)} (no such file)", MISSING)]


def _stat(path: Path, what: str) -> str:
    st = path.stat()
    return f"{st.st_mode & 0o777:o}" if what == "mode" else _owner(st)


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _configmap_value(check: Check, found: Located, key: str) -> Read | str:
    """kube-proxy's setting in a KubeProxyConfiguration kept in a ConfigMap; empty or absent takes the default
    (kube-proxy's v1alpha1 defaulting fills an empty metricsBindAddress)."""
    where, cm = found
    at = f"{where} {name_of(cm)} {key}"
    text = (cm.get("data") or {}).get(key)
    if text is None:
        return f"{at} is not in the ConfigMap"
    try:
        config = yaml.safe_load(str(text))
    except yaml.YAMLError:
        return f"{at} is not YAML"
    if not isinstance(config, dict):
        return f"{at} is not a KubeProxyConfiguration"
    value = config.get(str(check.read["key"]))
    return f"{at} {check.read['key']}", check.read["default"] if value in (None, "") else value


def _mounted_configmap(path: str, spec: Mapping[str, Any], container: Mapping[str, Any],
                       namespace: str) -> tuple[tuple[str, str], str] | None:
    """The ConfigMap (namespace, name) and key a file path in the container comes from, via its volume mount."""
    for _, mount in entries(container, "volumeMounts"):
        root = str(mount.get("mountPath", "")).rstrip("/")
        if root and path.startswith(root + "/"):
            for _, volume in entries(spec, "volumes"):
                source = volume.get("configMap") if volume.get("name") == mount.get("name") else None
                if isinstance(source, dict) and source.get("name"):
                    return (namespace, str(source["name"])), path[len(root) + 1:]
    return None


def _kube_proxy_container(check: Check, at: str, argv: Sequence[str], spec: Mapping[str, Any],
                          container: Mapping[str, Any], namespace: str,
                          configmaps: Mapping[tuple[str, str], Located]) -> Read | str:
    flags = parse_flags(argv[1:])
    if "--config" not in flags:
        return f"{at} {check.read['flag']}", flags.get(str(check.read["flag"]), check.read["default"])
    mounted = _mounted_configmap(flags["--config"], spec, container, namespace)
    if mounted is None:
        return f"{at}: --config {flags['--config']} does not come from a ConfigMap"
    (ns, name), key = mounted
    found = configmaps.get((ns, name))
    return _configmap_value(check, found, key) if found else f"{at} reads ConfigMap {ns}/{name}, not given"


def _kube_proxy_reads(check: Check, objects: Iterable[Located]) -> list[Read] | str:
    """kube-proxy's setting from its DaemonSet's command line, or, with --config, from the ConfigMap mounted there
    (flags other than --config are then ignored); with only kubeadm's ConfigMap (kube-system/kube-proxy,
    config.conf), from that."""
    objs = list(objects)
    configmaps = {(_namespace(o), _name(o)): (w, o) for w, o in objs if o.get("kind") == "ConfigMap"}
    found: list[Read | str] = []  # a value read, or why it could not be
    for where, obj in objs:
        spec = pod_spec(obj)
        flaw = spec_flaw(obj)
        for at, why in [flaw] if flaw else container_flaws(spec) if spec is not None else []:
            found.append(f"{where} {name_of(obj)} {at} {why}: {UNJUDGED}")
        for cwhere, c in containers(spec) if spec is not None else ():
            argv = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
            if argv and Path(argv[0]).name == "kube-proxy":
                found.append(_kube_proxy_container(check, f"{where} {name_of(obj)} {cwhere}", argv, spec or {}, c,
                                                   _namespace(obj), configmaps))
    if not found and ("kube-system", "kube-proxy") in configmaps:
        found.append(_configmap_value(check, configmaps[("kube-system", "kube-proxy")], "config.conf"))
    reads = [r for r in found if not isinstance(r, str)]
    unresolved = [r for r in found if isinstance(r, str)]
    if reads:
        return reads
    return "; ".join(unresolved) or ("no kube-proxy DaemonSet or ConfigMap given (--manifests the output of "
                                     "kubectl -n kube-system get ds,cm kube-proxy -o yaml)")


def _node_reads(check: Check, node: NodeConfig | None, version: Version | None) -> list[Read] | str:
    if node is None:
        return "no node configuration given (--node)"
    if check.target == "kubelet":
        return _kubelet_reads(check, node, version)
    if check.target == "file":
        return _file_reads(check, node)
    return _component_reads(check, node, version)


# ---- reading manifest values ---------------------------------------------------------------------------

def _pod_items(check: Check, at: str, spec: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if check.target == "pod":
        yield at, spec
    elif check.target == "container":
        for cwhere, c in containers(spec):
            yield f"{at} {cwhere}", _with_pod_defaults(check, spec, c)
    else:
        for i, v in entries(spec, "volumes"):  # one that is no Volume: _pod_flaws
            yield f"{at} volumes[{i}]({v.get('name', '?')})", v


def _pod_flaws(check: Check, spec: Mapping[str, Any]) -> list[Flaw]:
    """The entries of a pod spec the check reads that are not the objects the PodSpec schema says."""
    if check.target == "container":
        return container_flaws(spec)
    return list_flaws(spec, "volumes", "Volume") if check.target == "volume" else []


def _with_pod_defaults(check: Check, spec: Mapping[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """A container's securityContext over the pod's: "settings specified in the container's securityContext
    override settings made at the pod level" for the fields both have (runAsUser, runAsNonRoot, runAsGroup,
    seLinuxOptions, seccompProfile; Kubernetes API reference, PodSecurityContext / SecurityContext)."""
    pod_path = check.read.get("pod_path")
    if not pod_path:
        return container
    here = resolve(container, str(check.read["path"]))
    pod_values = resolve(spec, str(pod_path))
    if here != [MISSING] or pod_values == [MISSING]:
        return container
    merged = json.loads(json.dumps(container))
    at = merged
    parts = str(check.read["path"]).split(".")
    for part in parts[:-1]:
        nxt = at.get(part)
        if not isinstance(nxt, dict):
            nxt = at[part] = {}
        at = nxt
    at[parts[-1]] = pod_values[0]
    return dict(merged)


def _manifest_items(check: Check, objects: Iterable[Located]) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(where, owning object, item the path is read from) for the check's target."""
    for where, obj in objects:
        kind = obj.get("kind")
        if (check.kinds and kind not in check.kinds) or kind in check.skip_kinds:
            continue
        at = f"{where} {name_of(obj)}"
        is_binding = kind in ("RoleBinding", "ClusterRoleBinding")
        if check.target == "object" or (check.target == "binding" and is_binding):
            yield at, obj, obj
        elif check.target == "rbac-rule" and kind in ("Role", "ClusterRole"):
            for path, why in list_flaws(obj, "rules", "PolicyRule"):
                yield f"{at} {path}", obj, Unjudged(why)
            for i, rule in entries(obj, "rules"):
                yield f"{at} rules[{i}]", obj, rule
        elif check.target in ("pod", "container", "volume"):
            spec, flaw = pod_spec(obj), spec_flaw(obj)
            for path, why in [flaw] if flaw else _pod_flaws(check, spec) if spec is not None else []:
                yield f"{at} {path}", obj, Unjudged(why)
            if spec is not None:
                for item_at, item in _pod_items(check, at, spec):
                    yield item_at, obj, item


def _normalized(check: Check, value: Any) -> Any:
    if check.read.get("normalize") != "capability" or value is MISSING:
        return value
    return [capability(v) for v in value] if isinstance(value, list) else capability(value)


# ---- running -------------------------------------------------------------------------------------------

def _verdict(check: Check, findings: list[Finding], checked: list[str]) -> CheckResult:
    open_findings = [f for f in findings if f.waived is None]
    if open_findings:
        return CheckResult(check, "fail" if check.scored else "warn", tuple(findings), checked=tuple(checked))
    if findings:
        return CheckResult(check, "waived", tuple(findings), checked=tuple(checked))
    return CheckResult(check, "pass", checked=tuple(checked))


def run_check(check: Check, *, node: NodeConfig | None = None, objects: Iterable[Located] = (),
              params: Mapping[str, str] | None = None, version: Version | None = None) -> CheckResult:
    params = params or {}
    version = version or (node.version if node else None)
    if check.absent:
        return CheckResult(check, "na", reason=check.absent)
    if not check.applies_to(version):
        bounds = f"{check.since or '…'} ≤ v < {check.until or '…'}"
        return CheckResult(check, "na", reason=f"applies to Kubernetes {bounds}, not {version}")
    findings: list[Finding] = []
    checked: list[str] = []
    if check.target in (*NODE_TARGETS, "file", "kube-proxy"):
        reads = _kube_proxy_reads(check, objects) if check.target == "kube-proxy" else _node_reads(check, node, version)
        if isinstance(reads, str):
            return CheckResult(check, "na", reason=reads)
        for where, v in reads:
            checked.append(f"{where}: {_shown(v)}")
            if not evaluate(check.test, v, params):
                findings.append(Finding(where, _describe(check.test, v, params)))
        return _verdict(check, findings, checked)
    for where, owner, item in _manifest_items(check, objects):
        if isinstance(item, Unjudged):  # never waived: the waiver is for what the check finds, and it finds nothing
            checked.append(f"{where}: {item.why}")
            findings.append(Finding(where, f"cannot be judged: it {item.why}; {UNJUDGED}"))
            continue
        values = resolve(item, str(check.read["path"]))
        if values == [MISSING] and "default" in check.read:
            values = [check.read["default"]]  # what the API server fills in (e.g. the namespace)
        for v in values:
            v = _normalized(check, v)
            checked.append(f"{where}: {_shown(v)}")
            if not evaluate(check.test, v, params):
                findings.append(Finding(where, _describe(check.test, v, params), _waiver(owner, check.id)))
    if not checked:
        return CheckResult(check, "na", reason="no matching objects")
    return _verdict(check, findings, checked)


def run(checks: Iterable[Check], *, node: NodeConfig | None = None, objects: Iterable[Located] = (),
        params: Mapping[str, str] | None = None, data_version: str = "", benchmark: str | None = None,
        version: Version | None = None) -> Report:
    """Run the checks under the CIS benchmark that fits ``version`` (the node's, when a node is given), as
    kube-bench chooses it, or under ``benchmark`` (kube-bench's --benchmark, e.g. "cis-1.8")."""
    objs = list(objects)
    version = version or (node.version if node else None)
    chosen = cis_catalogue.catalogue().choose(version, benchmark)
    resolved = for_benchmark(checks, chosen.version)
    return Report(tuple(run_check(c, node=node, objects=objs, params=params, version=version) for c in resolved),
                  data_version, chosen, version)


# ---- output -------------------------------------------------------------------------------------------

SUMMARY = ("pass", "fail", "warn", "info", "na", "waived")


def _cis_label(c: Check) -> str:
    """CIS's number and word for the item, and kube-bench's check type when it overrides an Automated one."""
    if c.cis.id is None:
        return "no CIS item"
    override = f"; kube-bench type {c.cis.check_type}" if c.cis.check_type and c.cis.type != "Manual" else ""
    return f"CIS {c.cis.id} ({c.cis.type}{override})"


def to_text(report: Report) -> str:
    b = report.benchmark
    lines: list[str] = [f"== {b.name} {b.version}".rstrip() + (f" · Kubernetes {report.kubernetes}"
                                                                if report.kubernetes else "")]
    if b.note:
        lines.append(f"== note: {b.note}")
    section = None
    for r in report.results:
        if r.check.section != section:
            section = r.check.section
            lines.append(f"== {section}")
        lines.append(f"[{'N/A' if r.status == 'na' else r.status.upper()}] {r.check.id} [{_cis_label(r.check)}] "
                     f"{r.check.text}" + (f" ({r.reason})" if r.reason else ""))
        for f in r.findings:
            lines.append(f"    {f.where}: {f.detail}" + (f" — waived: {f.waived}" if f.waived else ""))
        if r.status in ("fail", "warn"):
            lines.append(f"    remediation: {r.check.remediation}")
        if r.check.differs and r.status != "na":
            lines.append(f"    differs from kube-bench: {r.check.differs}")
    lines.append("== summary: " + ", ".join(f"{report.count(s)} {'not applicable' if s == 'na' else s}"
                                           for s in SUMMARY))
    return "\n".join(lines)


def _cis_dict(c: Check) -> dict[str, Any]:
    return {"id": c.cis.id, "type": c.cis.type or None, "title": c.cis.title or None, "note": c.cis.note or None}


def to_json(report: Report) -> str:
    return json.dumps({
        "data_version": report.data_version,
        "benchmark": {"name": report.benchmark.name, "version": report.benchmark.version,
                      "source": report.benchmark.source, "written_for": list(report.benchmark.written_for)},
        "kubernetes": str(report.kubernetes) if report.kubernetes else None,
        "benchmark_note": report.benchmark.note or None,
        "summary": {s: report.count(s) for s in SUMMARY},
        "results": [{"id": r.check.id, "section": r.check.section, "text": r.check.text, "status": r.status,
                     "scored": r.check.scored, "cis": _cis_dict(r.check), "reason": r.reason,
                     "differs_from_kube_bench": r.check.differs or None,
                     "remediation": r.check.remediation, "checked": list(r.checked),
                     "findings": [{"where": f.where, "detail": f.detail, "waived": f.waived} for f in r.findings]}
                    for r in report.results],
    }, indent=2)


KUBE_BENCH_STATUS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "info": "INFO", "na": "INFO",
                     "waived": "WARN"}


# kube-bench reports an item once; the enclave checks encoding one item (RBAC-02 and RBAC-03: 5.1.3) give it the
# worst of their statuses, a part not checked (INFO) above a part passed.
_KB_SEVERITY = ("PASS", "INFO", "WARN", "FAIL")


def _kb_check(results: Sequence[CheckResult]) -> dict[str, Any]:
    """One kube-bench Check (check/check.go: its json tags; `reason` omitempty). `type` is kube-bench's own for
    the item (cfg: "manual" or none); `status` is enclave's verdict, kept per check in `enclave_status`."""
    first = results[0].check
    reasons = [r.reason for r in results if r.reason]
    out: dict[str, Any] = {
        "test_number": first.cis.id or first.id, "test_desc": first.cis.title or first.text,
        "audit": "; ".join(_audit(r.check) for r in results), "AuditEnv": "", "AuditConfig": "",
        "type": first.cis.check_type, "remediation": "\n".join(dict.fromkeys(r.check.remediation for r in results)),
        "test_info": list(dict.fromkeys(r.check.remediation for r in results)),
        "status": max((KUBE_BENCH_STATUS[r.status] for r in results), key=_KB_SEVERITY.index),
        "actual_value": "\n".join(line for r in results for line in (r.checked or (r.reason,))),
        "scored": any(r.check.scored for r in results), "IsMultiple": False,
        "expected_result": " AND ".join(_expected(r.check) for r in results),
        "enclave_id": ",".join(r.check.id for r in results),
        "enclave_status": ",".join(r.status for r in results)}
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out


def _audit(c: Check) -> str:
    return " ".join(f"{k}={v}" for k, v in c.read.items() if k != "default")


def _expected(c: Check) -> str:
    return f"{c.test.op}{'' if c.test.value is None else ' ' + json.dumps(c.test.value)}"


def _counts(checks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    statuses = [c["status"] for c in checks]
    return {s.lower(): statuses.count(s) for s in ("PASS", "FAIL", "WARN", "INFO")}


def _totals(checks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {f"total_{k}": v for k, v in _counts(checks).items()}


def _numbered(item_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in item_id.split(".") if p.isdigit())


def _kb_groups(results: Sequence[CheckResult]) -> dict[str, list[dict[str, Any]]]:
    """kube-bench Checks by group: a CIS item's group is its id less the last number (1.2.15 → 1.2, 2.1 → 2;
    scripts/cis_benchmarks.py checks this of every cfg); enclave's own checks are grouped by section."""
    by_item: dict[str, list[CheckResult]] = {}
    for r in results:
        by_item.setdefault(r.check.cis.id or r.check.id, []).append(r)
    groups: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(by_item, key=lambda k: (_numbered(k), k)):
        first = by_item[key][0].check
        group = first.cis.id.rsplit(".", 1)[0] if first.cis.id else first.section
        groups.setdefault(group, []).append(_kb_check(by_item[key]))
    return groups


def to_kube_bench(report: Report) -> str:
    """kube-bench's `--json` shape (check/controls.go): Controls, one per controls file of the benchmark (id "1"
    master, "2" etcd, "3" controlplane, "4" node, "5" policies, with its text and node_type) → Groups (`tests`:
    `section` "1.1", `desc`, counts) → Checks (`results`), per-control and overall totals; `detected_version`
    left out when unknown (omitempty). Enclave's own checks, and items the benchmark lacks, go in a last
    control "enclave". NOT APPLICABLE is INFO there and WAIVED is WARN, kube-bench having neither;
    `enclave_status` keeps enclave's own."""
    files = cis_catalogue.catalogue().controls.get(report.benchmark.version, {})
    by_control: dict[str, list[CheckResult]] = {}
    for r in report.results:
        by_control.setdefault(kube_bench_control(r.check) or "enclave", []).append(r)
    controls: list[dict[str, Any]] = []
    for cid in sorted(by_control, key=lambda k: (not k.isdigit(), _numbered(k))):
        known = files.get(cid)
        groups: list[dict[str, Any]] = [{"section": gid, "type": "", **_counts(checks),
                                          "desc": known.groups.get(gid, "") if known else gid, "results": checks}
                                         for gid, checks in _kb_groups(by_control[cid]).items()]
        control: dict[str, Any] = {"id": cid, "version": report.benchmark.version}
        if report.kubernetes:
            control["detected_version"] = report.kubernetes.minor_name
        control |= {"text": known.text if known else f"enclave policy, and items {report.benchmark.version} lacks",
                    "node_type": known.node_type if known else "enclave", "tests": groups,
                    **_totals([c for g in groups for c in g["results"]])}
        controls.append(control)
    every = [c for control in controls for g in control["tests"] for c in g["results"]]
    return json.dumps({"Controls": controls, "Totals": _totals(every),
                       "enclave_benchmark": {"version": report.benchmark.version, "source": report.benchmark.source,
                                             "note": report.benchmark.note or None}}, indent=2)


def to_junit(report: Report) -> str:
    suite = ET.Element("testsuite", name="enclave-security", tests=str(len(report.results)),
                       failures=str(report.count("fail")), skipped=str(report.count("na")))
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"enclave.security.{r.check.section}",
                             name=f"{r.check.id} {r.check.text}")
        detail = "\n".join(f"{f.where}: {f.detail}" for f in r.findings)
        if r.status == "fail":
            el = ET.SubElement(case, "failure", message=r.check.remediation)
            el.text = detail
        elif r.status == "na":
            ET.SubElement(case, "skipped", message=r.reason)
        elif detail:
            out = ET.SubElement(case, "system-out")
            out.text = f"{r.status}: {detail}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
