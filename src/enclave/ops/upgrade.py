"""Upgrade planning (seed §9): one minor at a time, as kubeadm requires, with version skew checked at every phase.

Pure decision code: it takes component versions and release data and returns a plan; it runs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from enclave.errors import InputError, InvalidTransition, Problem
from enclave.ops.versions import Release, ReleaseData, SkewPolicy, Version, release_data
from enclave.spec.models import EnclaveSpec, NodeRole

PACKAGES = ("kubeadm", "kubelet", "kubectl")
# pkgs.k8s.io serves one repository per minor, from 1.24 on ("The new package repositories provide downloads
# for Kubernetes versions starting with v1.24.0", kubernetes/website content/en/docs/tasks/administer-cluster/
# kubeadm/change-package-repository.md, legacy-repos-deprecation note); the Google-hosted apt/yum repositories
# that carried older releases were frozen in 2023 and shut down in 2024.
PKGS_K8S_IO_FIRST = Version(1, 24)
# kubeadm ≤ 1.27 upgrades the kube-proxy and CoreDNS add-ons inside `kubeadm upgrade apply` on the first
# control-plane node; from 1.28 it waits until every control-plane node runs the new version (CHANGELOG-1.28:
# "Kubeadm: introduce a new feature gate UpgradeAddonsBeforeControlPlane to fix a kube-proxy skew policy
# misalignment … Upgrade of the CoreDNS and kube-proxy addons will now trigger after all the control plane
# instances have been upgraded"; the gate, default false, was removed in 1.31).
KUBEADM_ADDONS_AFTER_CONTROL_PLANE = Version(1, 28)
# From 1.13 the kubeadm guide upgrades further control-plane nodes with `kubeadm upgrade node
# experimental-control-plane` (kubernetes/website kubeadm-upgrade-ha-1-13.md); before, `upgrade apply` on each.
UPGRADE_NODE_CONTROL_PLANE = Version(1, 13)
# The first kubeadm upgrade guide that installs the kubeadm package before `upgrade apply` (see kubeadm_binary_first).
KUBEADM_PACKAGE_FIRST = Version(1, 12)
# kubeadm 1.11 moved the kubelet's runtime flags into /var/lib/kubelet/kubeadm-flags.env (see worker_commands).
KUBELET_FLAGS_FILE = Version(1, 11)
# "In v1.22 and later, if the user does not set the cgroupDriver field under KubeletConfiguration, kubeadm
# defaults it to systemd" (kubernetes/website configure-cgroup-driver.md).
KUBEADM_SYSTEMD_CGROUPS = Version(1, 22)
# "the dockershim component has been removed from the kubelet in Kubernetes v1.24" (CHANGELOG-1.24, Major Themes).
DOCKERSHIM_REMOVED = Version(1, 24)
# "The default DNS provider in version 1.11 is CoreDNS rather than kube-dns" (kubernetes/website
# kubeadm-upgrade-1-11.md, "Additional information"); `kubeadm upgrade apply` to 1.11 replaces kube-dns.
COREDNS_DEFAULT = Version(1, 11)


@dataclass(frozen=True)
class ControlPlaneNode:
    name: str
    apiserver: Version
    controller_manager: Version
    scheduler: Version


@dataclass(frozen=True)
class Components:
    """What runs in the cluster: control-plane nodes, kubelets by version, kube-proxy, kubectl, kubeadm."""

    control_plane: tuple[ControlPlaneNode, ...]
    kubelets: tuple[tuple[Version, int], ...]
    kube_proxy: Version
    kubectl: Version
    kubeadm: Version

    @property
    def apiservers(self) -> list[Version]:
        return [n.apiserver for n in self.control_plane]

    @property
    def kubelet_count(self) -> int:
        return sum(n for _, n in self.kubelets)

    def with_all(self, version: Version) -> Components:
        return Components(
            control_plane=tuple(ControlPlaneNode(n.name, version, version, version) for n in self.control_plane),
            kubelets=((version, self.kubelet_count),),
            kube_proxy=version, kubectl=version, kubeadm=version,
        )


def components_from_spec(spec: EnclaveSpec) -> Components:
    """Every component at the spec's version; kubelets run on control-plane and worker nodes."""
    v = Version.parse(spec.cluster.kubernetes_version, where="cluster.kubernetes_version")
    cps = spec.node_names(NodeRole.CONTROL_PLANE)
    if not cps:
        raise InputError([Problem("cluster.node_groups", "the spec has no control-plane node group",
                                  "add a node group with role: control-plane")])
    kubelets = len(cps) + len(spec.node_names(NodeRole.WORKER))
    return Components(tuple(ControlPlaneNode(n, v, v, v) for n in cps), ((v, kubelets),), v, v, v)


def components_from_mapping(raw: Any, where: str = "observed") -> Components:
    """Observed versions, e.g. from `kubectl version` and `kubectl get nodes`, written as YAML:

    apiserver: [1.9.3, 1.9.3]          # one per control-plane node (or one string)
    controller_manager: 1.9.3           # optional, default: the apiserver's
    scheduler: 1.9.3                    # optional
    kubelets: {1.9.3: 20}               # version → node count
    kube_proxy: 1.9.3                   # optional, default: the oldest apiserver
    kubectl: 1.9.3                      # optional
    kubeadm: 1.9.3                      # optional
    """
    if not isinstance(raw, dict):
        raise InputError([Problem(where, "observed versions must be a mapping", "see `enclave upgrade plan --help`")])
    allowed = {"apiserver", "controller_manager", "scheduler", "kubelets", "kube_proxy", "kubectl", "kubeadm"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InputError([Problem(f"{where}.{unknown[0]}", "unknown key", f"use only {sorted(allowed)}")])
    if "apiserver" not in raw or "kubelets" not in raw:
        raise InputError([Problem(where, "apiserver and kubelets are required",
                                  "give apiserver: [versions…] and kubelets: {version: count}")])
    api = raw["apiserver"] if isinstance(raw["apiserver"], list) else [raw["apiserver"]]
    apis = [Version.parse(_text(a, f"{where}.apiserver[{i}]"), where=f"{where}.apiserver[{i}]")
            for i, a in enumerate(api)]
    if not apis:
        raise InputError([Problem(f"{where}.apiserver", "no API server listed", "list one version per node")])

    def one(key: str, default: Version) -> Version:
        at = f"{where}.{key}"
        return Version.parse(_text(raw[key], at), where=at) if raw.get(key) is not None else default

    oldest = min(apis)
    cm, sch = one("controller_manager", oldest), one("scheduler", oldest)
    # As observed: a controller newer than its API server is a skew violation to report, not to round down.
    cps = tuple(ControlPlaneNode(f"control-plane-{i + 1}", a, cm, sch) for i, a in enumerate(apis))
    if not isinstance(raw["kubelets"], dict) or not raw["kubelets"]:
        raise InputError([Problem(f"{where}.kubelets", "kubelets must map version → node count",
                                  "e.g. kubelets: {1.9.3: 20}")])
    kubelets: Counter[Version] = Counter()
    for k, n in raw["kubelets"].items():
        if not isinstance(n, int) or n < 0:
            raise InputError([Problem(f"{where}.kubelets.{k}", f"{n!r} is not a node count", "give a whole number")])
        kubelets[Version.parse(_text(k, f"{where}.kubelets.{k}"), where=f"{where}.kubelets")] += n
    return Components(cps, tuple(sorted(kubelets.items())), one("kube_proxy", oldest),
                      one("kubectl", oldest), one("kubeadm", oldest))


def _text(value: object, where: str) -> str:
    """A version as written. YAML reads an unquoted 1.10 as the number 1.1 (and 1.20 as 1.2), which would parse as
    another release: refused, with the fix, rather than planned for the wrong one."""
    if isinstance(value, str):
        return value
    raise InputError([Problem(where, f"{value!r} is a {type(value).__name__}, not a version (YAML reads 1.10 as 1.1)",
                              f"quote it: '{value}'")])


@dataclass(frozen=True)
class SkewCheck:
    rule: str
    ok: bool
    detail: str


def check_skew(c: Components, policy: SkewPolicy) -> list[SkewCheck]:
    """The version-skew policy, rule by rule, for one state of the cluster."""
    newest, oldest = max(c.apiservers), min(c.apiservers)
    out: list[SkewCheck] = []
    spread = newest.minors_after(oldest)
    out.append(SkewCheck("kube-apiserver instances within one minor", spread <= policy.apiserver_max_spread,
                         f"apiservers {sorted({str(a) for a in c.apiservers})}"))
    k_older = policy.kubelet_older(newest)
    for v, n in c.kubelets:
        out.append(SkewCheck("kubelet not newer than kube-apiserver", v.minor_key <= oldest.minor_key,
                             f"{n} kubelet(s) at {v} vs oldest apiserver {oldest}"))
        out.append(SkewCheck(f"kubelet at most {k_older} minors older than kube-apiserver",
                             newest.minors_after(v) <= k_older,
                             f"{n} kubelet(s) at {v} vs newest apiserver {newest}"))
    p_older = policy.kube_proxy_older(newest)
    out.append(SkewCheck("kube-proxy not newer than kube-apiserver", c.kube_proxy.minor_key <= oldest.minor_key,
                         f"kube-proxy {c.kube_proxy} vs oldest apiserver {oldest}"))
    out.append(SkewCheck(f"kube-proxy at most {p_older} minors older than kube-apiserver",
                         newest.minors_after(c.kube_proxy) <= p_older,
                         f"kube-proxy {c.kube_proxy} vs newest apiserver {newest}"))
    beside = policy.kube_proxy_kubelet(c.kube_proxy)
    for v, n in c.kubelets:
        out.append(SkewCheck(f"kube-proxy within {beside} minor(s) of the kubelet beside it",
                             abs(c.kube_proxy.minors_after(v)) <= beside,
                             f"kube-proxy {c.kube_proxy} vs {n} kubelet(s) at {v}"))
    for node in c.control_plane:
        for name, v, limit in (("kube-controller-manager", node.controller_manager,
                                policy.controller_manager_max_older),
                               ("kube-scheduler", node.scheduler, policy.scheduler_max_older)):
            # kubeadm points each controller at the API server on its own node.
            out.append(SkewCheck(f"{name} not newer than kube-apiserver", v.minor_key <= node.apiserver.minor_key,
                                 f"{node.name}: {name} {v} vs apiserver {node.apiserver}"))
            out.append(SkewCheck(f"{name} at most {limit} minor older than kube-apiserver",
                                 newest.minors_after(v) <= limit,
                                 f"{node.name}: {name} {v} vs newest apiserver {newest}"))
    d = policy.kubectl_max_distance
    out.append(SkewCheck(f"kubectl within ±{d} minor of kube-apiserver",
                         all(abs(a.minors_after(c.kubectl)) <= d for a in c.apiservers),
                         f"kubectl {c.kubectl} vs apiservers {oldest}–{newest}"))
    return out


@dataclass(frozen=True)
class Phase:
    name: str
    state: Components
    checks: tuple[SkewCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class Step:
    number: int
    source: Version
    target: Version
    kind: str  # "patch" or "minor"
    release: Release
    maintained: bool
    phases: tuple[Phase, ...]
    commands: dict[str, tuple[str, ...]]
    kubeadm_skew: tuple[str, ...] = ()  # violations kubeadm itself causes (add-on timing), reported not refused
    notes: tuple[str, ...] = ()  # what this step needs beyond its commands (step_notes)
    required: tuple[str, ...] = ()  # what must be done on the nodes before this step starts (step_prerequisites)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.phases)


@dataclass(frozen=True)
class ComponentRow:
    component: str
    current: str
    target: str


@dataclass(frozen=True)
class Plan:
    current: Components
    target: Version
    today: dt.date
    data_version: str
    maintained: tuple[Release, ...]
    steps: tuple[Step, ...]
    table: tuple[ComponentRow, ...]
    pinning: dict[str, tuple[str, ...]]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _violations(checks: list[SkewCheck]) -> list[SkewCheck]:
    return [c for c in checks if not c.ok]


def addons_with_apply(kubeadm: Version) -> bool:
    """Whether `kubeadm upgrade apply` of this version upgrades kube-proxy and the DNS add-on on the first node."""
    return kubeadm.minor_key < KUBEADM_ADDONS_AFTER_CONTROL_PLANE.minor_key


def node_commands(to: Version) -> tuple[str, str | None]:
    """The kubeadm command for further control-plane nodes and for workers, as kubeadm ``to`` has them
    (kubeadm upgrade docs of each release, https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/
    kubeadm-upgrade/ and its v1-NN archives):
    < 1.11  no `kubeadm upgrade node`: `kubeadm upgrade apply` on every control-plane node, nothing on workers;
    1.11–1.14  `kubeadm upgrade node config --kubelet-version vX` writes the kubelet configuration on every node;
               further control-plane nodes: `kubeadm upgrade apply` up to 1.12 (kubernetes/website
               kubeadm-upgrade-ha-1-12.md, "Upgrading additional control plane nodes"; see step_notes for the
               kubeadm-config edit each needs), `kubeadm upgrade node experimental-control-plane` in 1.13–1.14
               (kubeadm-upgrade-ha-1-13.md, same section; kubeadm has it since 1.12, CHANGELOG-1.12 "HA
               improvements", but the 1.12 guide still applies on each node);
    ≥ 1.15  `kubeadm upgrade node` on further control-plane nodes and on workers (CHANGELOG-1.15, #78408:
            "`kubeadm upgrade node config` and `kubeadm upgrade node experimental-control-plane` … are
            deprecated in favor of `kubeadm upgrade node`")."""
    if to.minor_key < (1, 11):
        return f"kubeadm upgrade apply {to.v}", None
    if to.minor_key < (1, 15):
        cp = f"kubeadm upgrade apply {to.v}" if to.minor_key < UPGRADE_NODE_CONTROL_PLANE.minor_key else \
            "kubeadm upgrade node experimental-control-plane"
        return cp, f"kubeadm upgrade node config --kubelet-version {to.v}"
    return "kubeadm upgrade node", "kubeadm upgrade node"


def crosses(source: Version, to: Version, boundary: Version) -> bool:
    """Whether a step from ``source`` to ``to`` enters the minor ``boundary`` (a patch step within it does not)."""
    return source.minor_key < boundary.minor_key <= to.minor_key


def worker_commands(source: Version, to: Version) -> tuple[str, ...]:
    """kubeadm on a worker, after its new kubeadm is installed and before its kubelet restarts.

    The step from 1.10 into 1.11 also writes /var/lib/kubelet/kubeadm-flags.env: the 1.11 kubelet drop-in reads
    the runtime flags (--network-plugin=cni, --cni-bin-dir, …) from it, `kubeadm upgrade apply` writes it only on
    the first control-plane node and the 1.11 guide nothing on workers, so their pods fell back to the Docker
    bridge (kubernetes/kubeadm#1418); kubernetes/kubernetes#65562: "Run `kubeadm alpha phase kubelet
    write-env-file` on each node". Once there (1.11.x → 1.11.y and later minors) the file stays."""
    worker = node_commands(to)[1]
    if worker is None:
        return ()
    if crosses(source, to, KUBELET_FLAGS_FILE):
        return worker, "kubeadm alpha phase kubelet write-env-file"
    return (worker,)


def step_prerequisites(source: Version, to: Version) -> tuple[str, ...]:
    """What must be true of every node before the step from ``source`` into ``to`` begins."""
    if crosses(source, to, DOCKERSHIM_REMOVED):
        return ("every node whose kubelet runs Docker Engine through dockershim (`kubectl get nodes -o wide`: "
                "CONTAINER-RUNTIME docker://…) moves to containerd or CRI-O, or keeps Docker Engine through "
                "cri-dockerd, before this step: kubelet 1.24 has no dockershim (kubernetes/kubernetes "
                "CHANGELOG-1.24, \"Dockershim Removed from kubelet\"). Per node: drain, install the runtime, set "
                "--container-runtime-endpoint in /var/lib/kubelet/kubeadm-flags.env and the node's "
                "kubeadm.alpha.kubernetes.io/cri-socket annotation to its socket, restart the kubelet, uncordon "
                "(kubernetes/website content/en/docs/tasks/administer-cluster/migrating-from-dockershim/"
                "change-runtime-containerd.md)",)
    return ()


def step_notes(source: Version, to: Version, control_planes: int) -> tuple[str, ...]:
    """What the step into ``to`` needs beyond its commands, from the kubeadm upgrade guide of that release."""
    notes: list[str] = []
    if crosses(source, to, KUBEADM_SYSTEMD_CGROUPS):
        notes.append(
            "kubeadm 1.22 defaults the kubelet's cgroupDriver to systemd when kube-system's kubelet-config "
            "ConfigMap (kubelet-config-1.21 here) does not set it, and `kubeadm upgrade` writes it into each node's "
            "/var/lib/kubelet/config.yaml; the container runtime must use the same driver. Nodes whose runtime "
            "uses cgroupfs: set `cgroupDriver: cgroupfs` in that ConfigMap before this step, or move runtime and "
            "kubelet to systemd node by node (kubernetes/website content/en/docs/tasks/administer-cluster/kubeadm/"
            "configure-cgroup-driver.md, \"Using the cgroupfs driver\", \"Migrating to the systemd driver\")")
    if crosses(source, to, COREDNS_DEFAULT):
        notes.append(
            "`kubeadm upgrade apply` to 1.11 replaces kube-dns with CoreDNS, its new default DNS add-on; to keep "
            "kube-dns add --feature-gates=CoreDNS=false to each `kubeadm upgrade apply` (kubernetes/website "
            "kubeadm-upgrade-1-11.md, \"Additional information\", which spells the flag --feature-flags; "
            "kubeadm's flag is --feature-gates, as kubeadm-upgrade-1-9.md uses it for CoreDNS=true)")
    if control_planes > 1 and to.minor_key < UPGRADE_NODE_CONTROL_PLANE.minor_key:
        # kubeadm-config holds one node's settings; `upgrade apply` on a further node reads them as its own.
        notes.append(
            "before `kubeadm upgrade apply` on each further control-plane node, edit the kube-system/kubeadm-config "
            "ConfigMap for that node (kubectl get cm -n kube-system kubeadm-config -o yaml > f; edit; kubectl apply "
            "-f f --force): up to 1.10 set nodeName to that node (kubernetes/website kubeadm-upgrade-ha.md, "
            "1.9.x → 1.9.y, \"Upgrading your control plane\"); for 1.11–1.12 set its address in the local etcd "
            "extraArgs URLs, add it to ClusterStatus apiEndpoints and annotate the node "
            "kubeadm.alpha.kubernetes.io/cri-socket (kubeadm-upgrade-ha-1-12.md, \"Upgrading additional control "
            "plane nodes\")")
    return tuple(notes)


def _phases(before: Components, to: Version, policy: SkewPolicy) -> tuple[Phase, ...]:
    """The cluster states one kubeadm step passes through, each checked against the skew policy."""
    states: list[tuple[str, Components]] = []
    first, *rest = before.control_plane
    up = ControlPlaneNode(first.name, to, to, to)
    early = addons_with_apply(to)
    c = replace(before, kubeadm=to, control_plane=(up, *rest), kube_proxy=to if early else before.kube_proxy)
    states.append((f"kubeadm upgrade apply {to.v} on {first.name}"
                   + (f" (kubeadm < 1.28 upgrades kube-proxy and {dns_addon(to)} here)" if early else ""), c))
    if rest:
        c = replace(c, control_plane=tuple(ControlPlaneNode(n.name, to, to, to) for n in before.control_plane))
        states.append((f"{node_commands(to)[0]} on {', '.join(n.name for n in rest)}", c))
    if not early:
        c = replace(c, kube_proxy=to)
        states.append((f"kube-proxy and {dns_addon(to)} add-ons upgraded once every control-plane node runs {to.v}",
                       c))
    c = replace(c, kubelets=((to, before.kubelet_count),))
    states.append((f"drain, upgrade and uncordon each of {before.kubelet_count} kubelet(s)", c))
    c = replace(c, kubectl=to)
    states.append(("kubectl on admin hosts", c))
    return tuple(Phase(name, s, tuple(check_skew(s, policy))) for name, s in states)


def kubeadm_binary_first(to: Version) -> bool:
    """Whether the step into ``to`` puts the kubeadm binary on the control-plane nodes instead of the package.

    The upgrade guides up to 1.11 download it (kubernetes/website kubeadm-upgrade-1-9.md and kubeadm-upgrade-1-11.md,
    "Upgrade the control plane": "upgrading the `kubeadm` package on your system prior to upgrading the control
    plane causes a failed upgrade"; the package carries the kubelet's systemd drop-in, which 1.11 rewrote for a
    /var/lib/kubelet/config.yaml the old control plane has not written yet, kubernetes/kubernetes#64780, #65562);
    kubeadm-upgrade-1-12.md is the first to install the package. No 1.10 guide is stored; both neighbours download."""
    return to.minor_key < KUBEADM_PACKAGE_FIRST.minor_key


def kubeadm_binary_url(to: Version) -> str:
    # amd64, the LDF's nodes; dl.k8s.io serves arm64, ppc64le and s390x at the same path.
    return f"https://dl.k8s.io/release/{to.v}/bin/linux/amd64/kubeadm"


def _manager_commands(source: Version, to: Version, unhold: str, install: str, hold: str,
                      sep: str) -> tuple[str, ...]:
    """One package manager's sequence; ``sep`` joins a package to its version (apt `kubeadm='1.10.4-*'`,
    dnf `kubeadm-'1.10.4-*'`). Each line says where it runs: drain and uncordon on a control-plane node, whose
    admin.conf may change nodes (a worker has only its kubelet's credentials; upgrading-linux-nodes.md: "execute
    this command on a control plane node"), the packages and the kubelet restart on the node being upgraded."""
    cp_cmd = node_commands(to)[0]

    def package(*names: str, where: str = "") -> tuple[str, ...]:
        pinned = " ".join(f"{n}{sep}'{to}-*'" for n in names)
        return (f"{unhold} {' '.join(names)}{where}", install.format(pkgs=pinned), f"{hold} {' '.join(names)}")

    worker = tuple(f"{c}   # on each worker, after installing its kubeadm, before its kubelet"
                   for c in worker_commands(source, to))
    kubeadm: tuple[str, ...]
    before_drain: tuple[str, ...]
    on_node = "   # on <node>:"
    if kubeadm_binary_first(to):
        kubeadm = (f"curl -sSL {kubeadm_binary_url(to)} -o /usr/bin/kubeadm && chmod a+rx /usr/bin/kubeadm"
                   "   # on each control-plane node: the binary, not the package, before apply",)
        # the package (and its kubelet drop-in) goes on with the kubelet; a worker's kubeadm comes with it
        before_drain, node = (), (*package("kubeadm", "kubelet", "kubectl", where=on_node), *worker)
    else:
        kubeadm = package("kubeadm", where="   # on every node, control-plane nodes first:")
        before_drain, node = worker, package("kubelet", "kubectl", where=on_node)
    return (
        *kubeadm,
        f"kubeadm upgrade plan {to.v} && kubeadm upgrade apply {to.v}   # on the first control-plane node",
        f"{cp_cmd}   # on every other control-plane node",
        *before_drain,
        "kubectl drain <node> --ignore-daemonsets   # on a control-plane node, for each node in turn",
        *node,
        "systemctl daemon-reload && systemctl restart kubelet   # on <node>",
        "kubectl uncordon <node>   # on a control-plane node",
    )


def package_commands(source: Version, to: Version) -> dict[str, tuple[str, ...]]:
    """Commands that move the pinned packages from ``source`` to ``to`` and pin them again (never automatic
    updates), with the kubeadm node commands that exist in that version."""
    pkgs = " ".join(PACKAGES)
    if to.minor_key >= PKGS_K8S_IO_FIRST.minor_key:
        repo = (f"point the kubernetes repository at https://pkgs.k8s.io/core:/stable:/v{to.minor_name}/"
                "{deb,rpm}/ (one repository per minor)")
    else:
        repo = (f"packages for {to.minor_name} are not on pkgs.k8s.io (1.24+ only) and the legacy Google repository "
                "is shut down: serve them from the enclave's local package mirror")
    return {
        "repository": (repo,),
        "apt": _manager_commands(source, to, "apt-mark unhold", "apt-get update && apt-get install -y {pkgs}",
                                 "apt-mark hold", "="),
        "dnf": _manager_commands(source, to, "dnf versionlock delete",
                                 "dnf install -y {pkgs} --disableexcludes=kubernetes", "dnf versionlock add", "-"),
        "check": (f"kubeadm version -o short   # must print {to.v} before apply", f"# packages: {pkgs}"),
    }


def pinning_snippets(version: Version) -> dict[str, tuple[str, ...]]:
    """Stop yum/dnf/apt from updating Kubernetes packages behind the administrator's back (seed §8)."""
    pkgs = " ".join(PACKAGES)
    return {
        "apt (Debian/Ubuntu)": (f"apt-mark hold {pkgs}", "apt-mark showhold   # verify"),
        "dnf (RHEL/Rocky 8+)": (
            "dnf install -y 'dnf-command(versionlock)'",
            f"dnf versionlock add {' '.join(f'{p}-{version}' for p in PACKAGES)}",
            "dnf versionlock list   # verify",
        ),
        "yum (CentOS 7)": (
            "yum install -y yum-plugin-versionlock",
            f"yum versionlock add {' '.join(f'{p}-{version}' for p in PACKAGES)}",
            "yum versionlock list   # verify",
        ),
        "repository exclude (yum/dnf, belt and braces)": (
            "# /etc/yum.repos.d/kubernetes.repo, [kubernetes] section:",
            "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni",
            "# upgrades then name the repository explicitly: --disableexcludes=kubernetes",
        ),
        "puppet/automatic updates": (
            "# keep kubelet kubeadm kubectl out of automatic update runs (yum-cron/dnf-automatic exclude=…,",
            "# unattended-upgrades Package-Blacklist) so a routine update never rewrites their configuration",
        ),
    }


def _table(current: Components, target: Version) -> tuple[ComponentRow, ...]:
    def vs(versions: list[Version]) -> str:
        return ", ".join(f"{n} x {v.v}" for v, n in sorted(Counter(versions).items()))

    cp = current.control_plane
    rows = [
        ComponentRow("Kubelet", ", ".join(f"{n} x {v.v}" for v, n in current.kubelets), target.v),
        ComponentRow("API Server", vs([n.apiserver for n in cp]), target.v),
        ComponentRow("Controller Manager", vs([n.controller_manager for n in cp]), target.v),
        ComponentRow("Scheduler", vs([n.scheduler for n in cp]), target.v),
        ComponentRow("Kube Proxy", current.kube_proxy.v, target.v),
        ComponentRow("kubectl", current.kubectl.v, target.v),
        ComponentRow("kubeadm", current.kubeadm.v, target.v),
        ComponentRow("Etcd", "kubeadm-managed", f"the version kubeadm {target.v} ships"),
    ]
    # kubeadm's plan names the DNS add-on it manages, and lists both while the step into 1.11 replaces one by the
    # other (kubeadm-upgrade-1-11.md: "CoreDNS  1.1.3" beside "Kube DNS  1.14.8"; seed §9: "Kube DNS 1.14.7").
    now, then = dns_addon(min(current.apiservers)), dns_addon(target)
    if now == then:
        rows.append(ComponentRow(now, "kubeadm-managed", f"the version kubeadm {target.v} ships"))
    else:
        rows.append(ComponentRow(now, "kubeadm-managed", f"replaced by {then} (kubeadm {COREDNS_DEFAULT.minor_name})"))
        rows.append(ComponentRow(then, "-", f"the version kubeadm {target.v} ships"))
    return tuple(rows)


def dns_addon(version: Version) -> str:
    """The DNS add-on kubeadm installs by default at ``version`` (see COREDNS_DEFAULT)."""
    return "CoreDNS" if version.minor_key >= COREDNS_DEFAULT.minor_key else "Kube DNS"


def _check_path(start: Version, path: list[Version]) -> None:
    at = start
    for i, nxt in enumerate(path):
        where = f"step {i + 1} ({at} → {nxt})"
        if nxt <= at:
            raise InvalidTransition(f"{nxt} is not newer than {at}", where=where,
                                    fix="Kubernetes does not support downgrades; restore a backup instead")
        if nxt.minors_after(at) > 1:
            skipped = ", ".join(f"{at.major}.{m}" for m in range(at.minor + 1, nxt.minor))
            raise InvalidTransition(f"the step skips minor release(s) {skipped}", where=where,
                                    fix="kubeadm upgrades one minor at a time: add a step for every minor between")
        at = nxt


def _kubeadm_caused(check: SkewCheck, kubeadm: Version) -> bool:
    """A kube-proxy skew violation that kubeadm's own add-on timing causes (kubeadm < 1.28 moves kube-proxy
    with the first control-plane node): unavoidable with that kubeadm, so reported on the step, not refused."""
    return addons_with_apply(kubeadm) and check.rule.startswith("kube-proxy")


def plan_upgrade(current: Components, target: Version | None = None, *, today: dt.date | None = None,
                 data: ReleaseData | None = None, steps: list[Version] | None = None,
                 patch_first: bool = False) -> Plan:
    """Plan the upgrade from ``current`` to ``target`` (default: the newest maintained release's latest patch).

    ``patch_first`` adds a first step to the newest patch of the current minor (kubeadm allows, but does
    not require, it). ``steps`` names the versions to pass through explicitly (e.g. a plan someone wrote by hand); it is
    refused if it skips a minor. Raises InvalidTransition when the cluster already breaks the skew policy,
    when the target is older than the cluster, or when a step would break it.
    """
    data = data or release_data()
    today = today or dt.date.today()
    broken = _violations(check_skew(current, data.skew))
    if broken:
        raise InvalidTransition(
            "the cluster already breaks the version-skew policy: "
            + "; ".join(f"{c.rule} ({c.detail})" for c in broken),
            where="current component versions",
            fix="bring the offending components back within the skew policy before planning an upgrade")
    if len({a.minor_key for a in current.apiservers}) > 1:
        raise InvalidTransition("control-plane nodes run different minors: an upgrade is half done",
                                where="current component versions",
                                fix="finish it with `kubeadm upgrade node` on the remaining control-plane nodes")
    start = min(current.apiservers)
    target = target or data.newest_maintained(today).latest_patch
    if target < start:
        raise InvalidTransition(f"target {target} is older than the cluster's {start}", where="--to",
                                fix="Kubernetes does not support downgrades; restore a control-plane backup instead")
    data.release(start)
    target_release = data.release(target)
    notes: list[str] = []
    if target.patch > target_release.latest_patch.patch:
        notes.append(f"{target} is newer than the latest {target.minor_name} patch in the release data "
                     f"({target_release.latest_patch}); confirm it exists before applying")
    if not target_release.maintained_on(today):
        notes.append(f"target {target.minor_name} is not maintained on {today} (end of life {target_release.eol})")

    if steps is not None:
        path = list(steps)
        if not path or path[-1] != target:
            path.append(target)
    else:
        path = []
        start_latest = data.release(start).latest_patch
        if patch_first and start < start_latest and start.minor_key != target.minor_key:
            path.append(start_latest)
        for m in range(start.minor + 1, target.minor):
            path.append(data.release(Version(start.major, m)).latest_patch)
        if target != start:
            path.append(target)
    _check_path(start, path)

    out: list[Step] = []
    state, at = current, start
    for i, to in enumerate(path, 1):
        rel = data.release(to)
        phases = _phases(state, to, data.skew)
        bad = [(p.name, c) for p in phases for c in p.checks if not c.ok]
        caused = [f"{c.rule} during '{name}' ({c.detail})" for name, c in bad if _kubeadm_caused(c, to)]
        hard = [(name, c) for name, c in bad if not _kubeadm_caused(c, to)]
        if hard:
            name, check = hard[0]
            raise InvalidTransition(f"{check.rule} breaks during '{name}' ({check.detail})",
                                    where=f"step {i} ({at} → {to})",
                                    fix="upgrade the lagging components first, then plan again")
        step = Step(i, at, to, "patch" if to.minor_key == at.minor_key else "minor", rel, rel.maintained_on(today),
                    phases, package_commands(at, to), tuple(caused), step_notes(at, to, len(state.control_plane)),
                    step_prerequisites(at, to))
        if caused:
            notes.append(f"step {i} ({at} → {to}): kubeadm {to.minor_name} upgrades kube-proxy inside "
                         f"`kubeadm upgrade apply`, so the cluster leaves the skew policy until every "
                         f"control-plane node is upgraded: {'; '.join(caused)} — keep that window short")
        out.append(step)
        state, at = phases[-1].state, to
    if any(not s.maintained for s in out):
        notes.append("intermediate releases past end of life are passed through only: do not stop on them")
    notes.append("take `enclave backup create` before every `kubeadm upgrade apply`, and try each step on the "
                 "development cluster first (seed §9)")
    return Plan(current, target, today, data.data_version, tuple(data.maintained(today)), tuple(out),
                _table(current, target), pinning_snippets(target), tuple(notes))
