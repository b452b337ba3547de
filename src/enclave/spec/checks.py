"""Cross-field rules of the spec. Each rule yields (YAML path, what is wrong, how to fix it).

Kept apart from the pydantic models so that all problems are reported at once, each at its own
place in the file, instead of stopping at the first model validator that fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from enclave.spec.models import WORKER_POD_PREFIX, EnclaveSpec, LendMode, NodeRole, node_name

Finding = tuple[tuple[str | int, ...], str, str]

NO_CONTROL_PLANE = "no control-plane node"

REQUIRED_POOLS = ("prompt", "drp", "user", "general")
"""Seed §7.1: nightly (prompt), yearly (data release production), L3 user processing, and the rest."""

IMAGE_RE = re.compile(
    r"^(?P<registry>[A-Za-z0-9][-A-Za-z0-9.]*(:\d+)?)/(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)

_EPS = 1e-9


def check(spec: EnclaveSpec) -> list[Finding]:
    return [
        *_cluster(spec),
        *_pools(spec),
        *_notebooks(spec),
        *_storage(spec),
        *_broker(spec),
    ]


def _cluster(spec: EnclaveSpec) -> Iterator[Finding]:
    seen: set[str] = set()
    for i, group in enumerate(spec.cluster.node_groups):
        if group.name in seen:
            yield (("cluster", "node_groups", i, "name"), f"node group '{group.name}' is defined twice",
                   "give each node group its own name")
        seen.add(group.name)
    for i, group in enumerate(spec.cluster.node_groups):
        if group.role == NodeRole.WORKER and group.count > 0:
            yield from _pod_names(i, group.name, group.count, group.cores)
    if not any(g.count > 0 for g in spec.groups(NodeRole.CONTROL_PLANE)):
        yield (("cluster", "node_groups"), NO_CONTROL_PLANE,
               "add a node group with role: control-plane and count ≥ 1")
    if len(set(spec.cluster.namespaces)) != len(spec.cluster.namespaces):
        yield (("cluster", "namespaces"), "a namespace is listed twice", "list each namespace once")


_HOSTNAME_MAX = 63
"""The kubelet cuts a pod's host name to 63 characters (pkg/kubelet/kubelet_pods.go, truncatePodHostnameIfNeeded),
and a worker pod's startd is known by that host name (its ``Machine``), which the broker matches to the pod's name."""


def _pod_names(i: int, group: str, count: int, cores: int) -> Iterator[Finding]:
    """The longest name the broker gives a share pod on the group's workers, ``htcondor-<node>-<n>``: at most one
    pod per core, numbered past that only while others of the worker still terminate (``naming.pod_names`` takes
    the lowest numbers free), so up to twice as many. A whole worker's pod runs on the host's network, where its
    host name is the node's own, whatever the pod is called."""
    longest = f"{WORKER_POD_PREFIX}{node_name(group, count)}-{2 * cores}"
    if len(longest) > _HOSTNAME_MAX:
        yield (("cluster", "node_groups", i, "name"), f"worker pods on node group '{group}' would be named up to "
               f"{len(longest)} characters ({longest}); the kubelet cuts a pod's host name to {_HOSTNAME_MAX}, and "
               "the broker knows a pod's startd by it",
               f"shorten the group's name by {len(longest) - _HOSTNAME_MAX} characters")


def _pools(spec: EnclaveSpec) -> Iterator[Finding]:
    missing = [p for p in REQUIRED_POOLS if p not in spec.pools]
    if missing:
        yield (("pools",), f"missing pool(s): {', '.join(missing)}",
               f"define at least the pools {', '.join(REQUIRED_POOLS)} (seed §7.1)")
    total = sum(p.guaranteed_share for p in spec.pools.values())
    if total > 1 + _EPS:
        yield (("pools",), f"guaranteed shares add up to {total:.0%}, more than 100% of batch capacity",
               "lower the guaranteed_share of some pools so they sum to at most 1.0")
    for name, pool in spec.pools.items():
        if "-" in name:
            # The startd config names a macro after each pool (ENCLAVE_GRACE_<pool>, ENCLAVE_SCHEDDS_<pool>) and
            # looks it up by the runtime pool knob; an HTCondor macro name holds letters, digits and _./ only
            # (htcondor/htcondor 7491a14, src/condor_utils/config.cpp condor_isidchar): "Illegal Identifier".
            yield (("pools", name), f"pool name '{name}' has a '-', which HTCondor refuses in the config macros "
                   "named after each pool (ENCLAVE_GRACE_<pool>)",
                   f"name the pool with lowercase letters and digits only, e.g. '{name.replace('-', '')}'")
        if pool.day_claim_worklife is not None and spec.cluster.site is None:
            yield (("pools", name, "day_claim_worklife"), "a worklife by day needs the site, whose twilight tells "
                   "the day from the night", "set cluster.site, or remove day_claim_worklife")
        if pool.calm_claim_worklife is not None and not any(p.latency_objective for p in spec.pools.values()):
            yield (("pools", name, "calm_claim_worklife"), "a worklife while calm needs a pool with a latency "
                   "objective: the broker says calm only of the latency pools, so this worklife would never hold",
                   "give a pool a latency_objective, or remove calm_claim_worklife")
        if pool.guaranteed_share > pool.max_share + _EPS:
            yield (("pools", name, "guaranteed_share"),
                   f"guaranteed_share {pool.guaranteed_share} is above max_share {pool.max_share}",
                   "lower guaranteed_share or raise max_share")
    yield from _shared_groups(spec)
    if spec.batch.default_pool not in spec.pools:
        yield (("batch", "default_pool"), f"default pool '{spec.batch.default_pool}' is not defined",
               f"use one of: {', '.join(spec.pools)}")


def _shared_groups(spec: EnclaveSpec) -> Iterator[Finding]:
    """Each pool's effective accounting group must be its own: membership and matching are decided by the
    group (batch.policy), so two pools sharing one let a member of either run on the other's nodes. Names are
    compared ignoring case so that two groups differing only in case are refused too (a reader cannot tell
    them apart in a negotiator log)."""
    owner: dict[str, str] = {}
    for name in spec.pools:
        group = spec.accounting_group(name)
        first = owner.setdefault(group.casefold(), name)
        if first != name:
            yield (("pools", name, "accounting_group"),
                   f"accounting group '{group}' is also pool '{first}'s: a member of one could run on the "
                   "other's nodes", "give each pool its own accounting_group (or remove the key for group_<pool>)")


def _notebooks(spec: EnclaveSpec) -> Iterator[Finding]:
    nb = spec.notebooks
    b = nb.bounds
    if b.min_cpu > b.max_cpu:
        yield (("notebooks", "bounds", "min_cpu"), f"min_cpu {b.min_cpu} is above max_cpu {b.max_cpu}",
               "swap or correct the bounds")
    if b.min_memory_mib > b.max_memory_mib:
        yield (("notebooks", "bounds", "min_memory_mib"),
               f"min_memory_mib {b.min_memory_mib} is above max_memory_mib {b.max_memory_mib}",
               "swap or correct the bounds")
    for name, s in nb.sizes.items():
        at = ("notebooks", "sizes", name)
        if s.cpu_request > s.cpu_limit:
            yield ((*at, "cpu_request"), f"size '{name}': cpu_request {s.cpu_request} is above cpu_limit "
                   f"{s.cpu_limit}", "make the request at most the limit")
        if s.memory_request_mib > s.memory_limit_mib:
            yield ((*at, "memory_request_mib"), f"size '{name}': memory_request_mib {s.memory_request_mib} "
                   f"is above memory_limit_mib {s.memory_limit_mib}", "make the request at most the limit")
        if s.cpu_request < b.min_cpu - _EPS or s.cpu_limit > b.max_cpu + _EPS:
            yield ((*at,), f"size '{name}': CPU {s.cpu_request}–{s.cpu_limit} is outside the bounds "
                   f"{b.min_cpu}–{b.max_cpu} cores", f"keep cpu_request ≥ {b.min_cpu} and cpu_limit ≤ {b.max_cpu}")
        if s.memory_request_mib < b.min_memory_mib or s.memory_limit_mib > b.max_memory_mib:
            yield ((*at,), f"size '{name}': memory {s.memory_request_mib}–{s.memory_limit_mib} MiB is outside "
                   f"the bounds {b.min_memory_mib}–{b.max_memory_mib} MiB",
                   f"keep memory_request_mib ≥ {b.min_memory_mib} and memory_limit_mib ≤ {b.max_memory_mib}")
    if nb.default_size not in nb.sizes:
        yield (("notebooks", "default_size"), f"default size '{nb.default_size}' is not defined",
               f"use one of: {', '.join(nb.sizes)}")
    for i, image in enumerate(nb.images):
        m = IMAGE_RE.match(image)
        if m is None or not (m.group("tag") or m.group("digest")):
            yield (("notebooks", "images", i), f"image '{image}' is not registry/repository:tag or @sha256:digest",
                   "write it as host/repo/name:tag or host/repo/name@sha256:<64 hex>")
        elif spec.registry.vetting_required and m.group("registry") != spec.registry.host:
            yield (("notebooks", "images", i),
                   f"image '{image}' is not from the local registry {spec.registry.host}, and vetting is required",
                   f"mirror the image into {spec.registry.host} and have security vet it (seed §10)")


def _storage(spec: EnclaveSpec) -> Iterator[Finding]:
    st = spec.storage
    sub = st.workspace_subdir.strip()
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if sub.startswith("/") or not parts or ".." in parts:
        yield (("storage", "workspace_subdir"),
               f"workspace_subdir '{st.workspace_subdir}' is not a subdirectory of the home area",
               "name a relative subdirectory such as 'workspace': WebDAV must never expose $HOME itself (seed §6)")
    if not st.home_root.startswith("/"):
        yield (("storage", "home_root"), f"home_root '{st.home_root}' is not an absolute path",
               "give an absolute path such as /jhome")
    need = st.image_size_gib * st.cached_images_per_node
    if need > st.node_local_gib + _EPS:
        yield (("storage", "cached_images_per_node"),
               f"{st.cached_images_per_node} cached images × {st.image_size_gib:g} GiB = {need:g} GiB do not fit "
               f"in {st.node_local_gib:g} GiB of node-local storage",
               "cache fewer images, shrink them, or raise node_local_gib (seed §13.4)")
    for i, g in enumerate(spec.cluster.node_groups):
        if g.role == NodeRole.WORKER and g.local_disk_gib + _EPS < st.node_local_gib:
            yield (("cluster", "node_groups", i, "local_disk_gib"),
                   f"worker group '{g.name}' has {g.local_disk_gib:g} GiB local disk, less than the "
                   f"{st.node_local_gib:g} GiB node-local storage the spec requires",
                   "give the group larger disks or lower storage.node_local_gib")


def _broker(spec: EnclaveSpec) -> Iterator[Finding]:
    broker = spec.broker
    if broker.start_timeout_seconds <= broker.pod_start_seconds:
        # A pod given up before its startd could join would be made and given up again every cycle, lending nothing.
        yield (("broker", "start_timeout_seconds"), f"broker.start_timeout_seconds "
               f"({broker.start_timeout_seconds:g} s) is not past broker.pod_start_seconds "
               f"({broker.pod_start_seconds:g} s): every worker pod would be given up before its startd joins",
               "make start_timeout_seconds longer than pod_start_seconds (600 by default)")
    drain = spec.cluster.drain
    flags = (("force", drain.force), ("ignore_daemonsets", drain.ignore_daemonsets),
             ("delete_emptydir_data", drain.delete_emptydir_data))
    missing = [flag for flag, on in flags if not on]
    if spec.broker.lend_mode == LendMode.NODES and missing:
        # kubectl drain refuses a node with DaemonSet pods without --ignore-daemonsets, one with pods that declare no
        # controller (KubeSpawner's notebooks) without --force, and one with emptyDir pods without
        # --delete-emptydir-data (kubectl pkg/drain/filters.go, daemonSetFilter, unreplicatedFilter and
        # localStorageFilter): every worker runs DaemonSet pods, and a refused drain leaves the worker as it was, so
        # BCS 5 would ask for the same refused drain every cycle and no worker would ever be lent.
        yield (("cluster", "drain"), f"broker.lend_mode nodes drains whole workers, but cluster.drain leaves "
               f"{' and '.join(missing)} off: kubectl drain refuses a worker with DaemonSet, notebook or emptyDir "
               "pods then, and the broker would ask for the same refused drain every cycle",
               "set cluster.drain: {force: true, ignore_daemonsets: true, delete_emptydir_data: true}, or lend "
               "worker pods (broker.lend_mode: pods)")
