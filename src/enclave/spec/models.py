"""Pydantic models of enclave.yaml.

Units live in field names (``memory_gib``, ``cpu_request``) rather than in strings like "4Gi", so a
spec is unambiguous to read and to diff. Every model forbids unknown keys: a typo is an error, never a
silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from enclave.spec.reference import is_registry_host

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
"""A DNS-1123 label: what Kubernetes accepts as a namespace or label value, and what HTCondor accepts
unquoted in a ClassAd string without escaping trouble."""

KubeVersion = Annotated[str, StringConstraints(pattern=r"^v?\d+\.\d+\.\d+$")]
Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:\d{1,5})?$")]


# Upper bounds of the spec's quantities: far above any real enclave, low enough that every derived number
# (cores × count, MiB, seconds in HTCondor expressions) stays an exact, finite integer or float.
MAX_SECONDS = 31_536_000  # one year: longer than any grace, cull age, cycle or latency objective is meaningful
MAX_CORES = 1024  # per node or pod; the largest servers today have a few hundred cores
MAX_MIB = 64 * 1024 * 1024  # 64 TiB in MiB, the node memory bound (memory_gib le 65536) in MiB
MAX_GIB = 1_000_000  # 1 PB in GiB for any one disk, quota or cache


def _arms(tp: Any) -> list[Any]:
    """The types a value of annotation ``tp`` may have: the arms of a Union or Optional, each without Annotated."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _arms(get_args(tp)[0])
    if origin is Union or origin is UnionType:
        return [arm for arg in get_args(tp) for arm in _arms(arg)]
    return [tp]


Misplaced = tuple[tuple[int | str, ...], bool]


def _misplaced_bool(tp: Any, value: Any, at: tuple[int | str, ...] = ()) -> Misplaced | None:
    """The first boolean in ``value`` that stands for a number of annotation ``tp``: where it is (() for ``value``
    itself) and what it is; None when there is none. Follows list, tuple, set and dict values; nested models check
    their own fields."""
    arms = _arms(tp)
    if isinstance(value, bool):
        if any(a is bool or a is Any or a is object or (get_origin(a) is Literal and any(
                isinstance(v, bool) for v in get_args(a))) for a in arms):
            return None
        numbers = any(isinstance(a, type) and issubclass(a, int | float | Decimal) for a in arms)
        return (at, value) if numbers else None  # other types (str, enums, models) refuse a bool by themselves
    containers = [(get_origin(a), get_args(a)) for a in arms]
    if isinstance(value, list | tuple | set | frozenset):
        for origin, args in containers:
            if origin in (list, set, frozenset, tuple) and args:
                variadic = origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)
                for i, item in enumerate(value):
                    if not variadic and i >= len(args):
                        break
                    found = _misplaced_bool(args[0] if variadic else args[i], item, (*at, i))
                    if found is not None:
                        return found
                break
    elif isinstance(value, Mapping):
        for origin, args in containers:
            if origin is dict and len(args) == 2:
                for key, item in value.items():
                    found = _misplaced_bool(args[1], item, (*at, key))
                    if found is not None:
                        return found
                break
    return None


def refuse_bool_as_number(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """A field validator ("*", before) of both Strict bases (spec and twin): refuse a YAML boolean where the field
    wants a number. Pydantic's lax mode reads ``count: true`` as 1 and ``memory_gib: false`` as 0.0, so a typo
    would give a node count of 1 without a word. A field whose type admits a bool (or Any) keeps taking one."""
    if info.field_name is None:
        return value
    misplaced = _misplaced_bool(cls.model_fields[info.field_name].annotation, value)
    if misplaced is None:
        return value
    at, wrong = misplaced
    item = "".join(f"[{p}]" for p in at)
    raise PydanticCustomError(
        "bool_as_number",
        "a boolean where a number is wanted{item}: write the number ({word} would be read as {number})",
        {"item": f" at {item}" if item else "", "word": "true" if wrong else "false", "number": int(wrong)})


class Strict(BaseModel):
    # allow_inf_nan=False: pydantic otherwise accepts inf, nan and the strings "inf"/"nan" for a float field;
    # no quantity of the spec is infinite, and an infinite one crashed `render condor`.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _no_bool_as_number = field_validator("*", mode="before")(refuse_bool_as_number)


class Role(StrEnum):
    """The seed's actors (DMTN-084 §2). One person may hold several of them."""

    DEVELOPER = "developer"
    SCIENCE_USER = "science-user"
    SECURITY = "security"
    SYSADMIN = "sysadmin"
    K8S_CLUSTER_ADMIN = "k8s-cluster-admin"
    K8S_SERVICE_ADMIN = "k8s-service-admin"
    HTCONDOR_ADMIN = "htcondor-admin"


ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.DEVELOPER: "LSST-funded developer: development resources and the science platform; reads logs "
    "of the namespaces they belong to (AA2/AA3).",
    Role.SCIENCE_USER: "LSST affiliate partner: the science platform only (notebooks, user batch, workspace).",
    Role.SECURITY: "Security staff: vets every container image in the local registry (§10).",
    Role.SYSADMIN: "System administrator: adds and removes people and accounts (§4).",
    Role.K8S_CLUSTER_ADMIN: "Kubernetes system software: install, upgrades, disaster recovery, overlay "
    "network, nodes, local registry; the only actor allowed system-level changes (§8).",
    Role.K8S_SERVICE_ADMIN: "Deploys, monitors and maintains services; manages HTCondor worker pods and "
    "drains nodes (BCS 3–5).",
    Role.HTCONDOR_ADMIN: "HTCondor administrator: changes which processing a node serves by its ClassAd "
    "(BCS 1, 2, 4, 5).",
}


class NodeRole(StrEnum):
    CONTROL_PLANE = "control-plane"
    """Kubernetes control plane (API server, etcd); runs no user work."""
    WORKER = "worker"
    """Kubernetes commons worker: notebooks and services; may lend capacity to batch (BCS 4, 5)."""
    BATCH_ONLY = "batch-only"
    """Standalone HTCondor execute node outside Kubernetes."""


class NodeGroup(Strict):
    name: Name
    role: NodeRole
    count: int = Field(ge=0, le=100_000)
    cores: int = Field(gt=0, le=1024)
    memory_gib: float = Field(gt=0, le=65536)
    local_disk_gib: float = Field(gt=0, le=1_000_000)
    labels: dict[str, str] = Field(default_factory=dict)


class Site(Strict):
    """Where the telescope is: the observing night (twilight) is computed from it."""

    name: str = "Cerro Pachon"
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    elevation_m: float = Field(default=0.0, ge=-500, le=9000)


class DrainFlags(Strict):
    """How draining a worker for batch (BCS 5 step 1) treats the pods it finds, as ``kubectl drain`` does with
    the flags of the same names; each defaults as kubectl's does (kubectl pkg/drain/filters.go,
    https://github.com/kubernetes/kubectl/blob/master/pkg/drain/filters.go)."""

    force: bool = Field(False, description="kubectl drain --force: evict pods that declare no controller "
                        "(KubeSpawner's notebook pods are such pods).")
    ignore_daemonsets: bool = Field(False, description="kubectl drain --ignore-daemonsets: leave DaemonSet pods "
                                    "in place instead of refusing to drain.")
    delete_emptydir_data: bool = Field(False, description="kubectl drain --delete-emptydir-data: evict pods "
                                       "with emptyDir volumes (their data is lost).")


class Cluster(Strict):
    name: Name
    kubernetes_version: KubeVersion
    network_overlay: str = Field(min_length=1)
    node_groups: list[NodeGroup] = Field(min_length=1)
    namespaces: list[Name] = Field(
        default_factory=list, description="Application namespaces (seed §11), e.g. jupyter-lsst."
    )
    site: Site | None = None
    drain: DrainFlags = Field(default_factory=DrainFlags)

    def serves(self, major: int, minor: int) -> bool:
        """Whether the cluster's Kubernetes is ``major.minor`` or later: which API versions its server has (the
        Eviction, PodDisruptionBudget and Lease APIs came to v1 in 1.22, 1.21 and 1.14; the seed's is 1.9)."""
        got = tuple(int(x) for x in self.kubernetes_version.lstrip("v").split(".")[:2])
        return got >= (major, minor)


class LatencyObjective(Strict):
    seconds: float = Field(gt=0, le=MAX_SECONDS)
    fraction: float = Field(gt=0, le=1)


class Drain(StrEnum):
    DRAIN = "drain"
    """Let running jobs finish before the node leaves the pool."""
    VACATE = "vacate"
    """Wait at most the grace period, then evict what still runs."""


class Reclaim(StrEnum):
    VACATE = "vacate"
    """Take a node from another pool under that pool's ``take_away`` rule (drain, or vacate after its grace)."""
    WAIT = "wait"
    """Never evict another pool's jobs to take capacity: a node this pool takes runs them to their end and
    serves this pool as they finish (Kueue ``ClusterQueue.spec.preemption.reclaimWithinCohort: Never``,
    https://kueue.sigs.k8s.io/docs/concepts/preemption/; HTCondor group quotas without preemption: a group
    below its quota waits for claims to end, manual "Group Accounting" / ``PREEMPTION_REQUIREMENTS``)."""


class Pool(Strict):
    """One kind of HTCondor processing (seed §7.1), as shares of batch capacity."""

    guaranteed_share: float = Field(ge=0, le=1)
    max_share: float = Field(gt=0, le=1)
    priority: int = Field(ge=0, le=1000)
    latency_objective: LatencyObjective | None = None
    take_away: Drain = Drain.DRAIN
    grace_seconds: float = Field(default=600.0, ge=0, le=MAX_SECONDS)
    reclaim: Reclaim = Field(
        default=Reclaim.VACATE,
        description="What this pool's moves do to the jobs of the pool it takes from: `vacate` applies that "
        "pool's take_away (evicting after its grace when it vacates); `wait` never evicts them (for pools "
        "whose objective is throughput: waiting costs their jobs queue time, evicting costs the other pool work).")
    accounting_group: str | None = Field(
        default=None, description="HTCondor accounting group the schedd forces on this pool's jobs."
    )
    claim_worklife: int | None = Field(
        default=None, ge=-1, le=MAX_SECONDS, description="CLAIM_WORKLIFE on the startds while they serve this "
        "pool (default: batch.htcondor.claim_worklife, else HTCondor's 1200; -1 forever). A finite worklife hands "
        "a claimed slot back to the negotiator so that it can rebalance among submitters; a pool fed by one "
        "production submitter, whose slots the broker moves by relabel and drain, has nobody to rebalance for, "
        "and each job end on a claim older than that waits for a negotiation cycle. It costs a latency pool "
        "that overflows onto this one the slots those ending claims free (docs/batch.md, \"Claims\").")
    day_claim_worklife: int | None = Field(
        default=None, ge=-1, le=MAX_SECONDS, description="CLAIM_WORKLIFE on the startds serving this pool by "
        "day (-1 forever): in the hours of local mean time that are day on every day of the season at cluster.site "
        "(the sun above broker.twilight_altitude_deg; 24 seasons a year, enclave.domain.night.day_bands), when no "
        "visit comes and nothing overflows onto this pool's slots; claim_worklife holds the rest of the day. Needs "
        "cluster.site (docs/batch.md, \"Claims by day\").")
    calm_claim_worklife: int | None = Field(
        default=None, ge=-1, le=MAX_SECONDS, description="CLAIM_WORKLIFE on the startds serving this pool while "
        "the broker reports the latency pools calm (-1 forever): observing, none short of its own capacity now, and "
        "short in under broker.calm_short_share of the last broker.calm_window_seconds, so that few of their jobs "
        "overflow onto this pool's slots (enclave.broker.calm). Each startd asks the collector for the broker's "
        "ad once a minute (a startd cron job); without a fresh ad, claim_worklife holds. day_claim_worklife, when "
        "set, holds by day (docs/batch.md, \"Claims while calm\").")

    @property
    def vacate_grace(self) -> float | None:
        """How long a move waits before it evicts this pool's jobs: ``grace_seconds`` when the pool vacates,
        None when it drains (its jobs finish)."""
        return self.grace_seconds if self.take_away == Drain.VACATE else None
    submit_hosts: list[Host] | None = Field(
        default=None,
        description="Submit hosts whose jobs this pool's nodes accept (seed §7.1); default: all of batch.submit_hosts.",
    )


class HTCondorSettings(Strict):
    """HTCondor settings an operator sets for the pool, rendered into its config by ``enclave render condor``
    (enclave.batch.render) and read back from there by the twin (enclave.twin.config). A setting left out is
    not rendered, so HTCondor's own default holds (htcondor/htcondor ``src/condor_utils/param_info.in``)."""

    negotiator_interval: int | None = Field(
        default=None, ge=1, le=MAX_SECONDS, description="NEGOTIATOR_INTERVAL, seconds between negotiation "
        "cycles (HTCondor default 60).")
    negotiator_cycle_delay: int | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="NEGOTIATOR_CYCLE_DELAY, the least time from one "
        "cycle's end to the next one's start, a reschedule included (default 20, matchmaker.cpp).")
    negotiator_min_interval: int | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="NEGOTIATOR_MIN_INTERVAL (default 5).")
    claim_worklife: int | None = Field(
        default=None, ge=-1, le=MAX_SECONDS, description="CLAIM_WORKLIFE on every startd whose pool sets none "
        "(pools.<name>.claim_worklife): seconds a schedd may keep starting jobs on a claim (default 1200; -1 "
        "forever, 0 one job per claim).")
    job_start_count: int | None = Field(default=None, ge=1, le=100_000, description="JOB_START_COUNT on every "
                                        "schedd (default 1).")
    job_start_delay: int | None = Field(
        default=None, ge=0, le=MAX_SECONDS, description="JOB_START_DELAY on every schedd: seconds between "
        "batches of JOB_START_COUNT starts (default 0).")
    schedd_interval: int | None = Field(
        default=None, ge=1, le=MAX_SECONDS, description="SCHEDD_INTERVAL on every schedd: seconds between its "
        "periodic timeouts (default 300, schedd.cpp), whose submitter ads alone refresh the idle count a 26.x "
        "schedd reads to decide whether a submit asks the negotiator for a cycle (only if that count was 0). "
        "For prompt's schedd: at most the shortest gap between visits less SCHEDD_MIN_INTERVAL (5 s), and at "
        "least half the longest, so that every visit finds its schedd's count cleared (docs/answers.md).")
    submit_send_reschedule: bool | None = Field(
        default=None, description="SUBMIT_SEND_RESCHEDULE on every submit host (default false; obsolete from "
        "26.0, whose schedd reschedules only when it had no idle job).")
    consumption_policy: bool = Field(
        default=True, description="CONSUMPTION_POLICY on every startd, rendered either way (HTCondor's default is "
        "false): the negotiator charges a match to a partitionable slot the slot weight the job takes, and may "
        "match more jobs to the slot in the same cycle; without it a match is charged the slot's whole unclaimed "
        "weight against its group's quota and the slot leaves the cycle (HTCondor manual, startd configuration: "
        "SLOT_WEIGHT, NUM_CLAIMS; matchmaker.cpp); with it the schedds' CLAIM_PARTITIONABLE_LEFTOVERS is off. "
        "HTCondor calls consumption policies experimental; the startds read it only when they start.")
    dedicated_schedds: dict[Name, Host] = Field(
        default_factory=dict, description="Pool -> a submit host whose schedd serves that pool alone (its "
        "submit requirement refuses other pools' jobs); e.g. {prompt: prompt-schedd.example.org}.")


class Batch(Strict):
    """Where the HTCondor pool lives and who may submit to it (seed §7)."""

    central_manager: Host
    submit_hosts: list[Host] = Field(
        min_length=1, description="Development login hosts and Kubernetes-commons schedds."
    )
    pool_attribute: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "EnclavePool"
    default_pool: str = "general"
    htcondor: HTCondorSettings = HTCondorSettings()


class NotebookSize(Strict):
    cpu_request: float = Field(gt=0, le=MAX_CORES)
    cpu_limit: float = Field(gt=0, le=MAX_CORES)
    memory_request_mib: int = Field(gt=0, le=MAX_MIB)
    memory_limit_mib: int = Field(gt=0, le=MAX_MIB)
    description: str = ""


class NotebookBounds(Strict):
    """What one user's notebook may use (seed §13.2–13.3: 0.5–4 cores, 512 MB–8 GB)."""

    min_cpu: float = Field(default=0.5, gt=0, le=MAX_CORES)
    max_cpu: float = Field(default=4.0, gt=0, le=MAX_CORES)
    min_memory_mib: int = Field(default=512, gt=0, le=MAX_MIB)
    max_memory_mib: int = Field(default=8192, gt=0, le=MAX_MIB)


KeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=255)]
"""An HTCondor signing key's name: its file's in SEC_PASSWORD_DIRECTORY (enclave.batch.idtoken)."""


class BatchTokens(Strict):
    """HTCondor IDTOKENs the hub mints for each notebook pod, so it can submit to the commons schedds
    (docs/batch.md, "Notebook pods' tokens"; enclave.batch.idtoken)."""

    enabled: bool = Field(False, description="Give every notebook pod a token for its account.")
    key: KeyName = Field("NOTEBOOKS", description="The signing key's name: the file the commons schedds hold in "
                         "SEC_PASSWORD_DIRECTORY and the hub has mounted (never POOL, which every daemon takes).")
    lifetime_seconds: int | None = Field(None, gt=0, le=MAX_SECONDS, description="How long a token is valid; "
                                         "default notebooks.max_age_seconds, the longest a server lives.")

    def model_post_init(self, _context: object) -> None:
        if self.key == "POOL":
            raise ValueError("notebooks.batch_tokens.key may not be POOL: every daemon of the pool takes it, so "
                             "the hub could mint itself any daemon's identity; name a key only the commons "
                             "schedds hold, e.g. NOTEBOOKS")


class Notebooks(Strict):
    namespace: Name = "jupyter-lsst"
    images: list[str] = Field(min_length=1)
    sizes: dict[Name, NotebookSize] = Field(min_length=1)
    default_size: str
    bounds: NotebookBounds = NotebookBounds()
    idle_cull_seconds: int = Field(default=432_000, gt=0, le=MAX_SECONDS)
    max_age_seconds: int = Field(default=864_000, gt=0, le=MAX_SECONDS)
    batch_tokens: BatchTokens = BatchTokens()


class QuotaTool(StrEnum):
    """The command that sets a user's block quota on the home file system (``enclave.accounts.homes``)."""

    NONE = "none"
    """No quota tool: the quota is recorded by enclave and advisory (nothing enforces it)."""
    SETQUOTA = "setquota"
    """Linux disk quotas (ext4 and other VFS quota file systems): quota-tools' setquota(8)."""
    XFS_QUOTA = "xfs_quota"
    """XFS user quotas: xfs_quota(8) ``limit``."""
    MMSETQUOTA = "mmsetquota"
    """IBM Storage Scale (GPFS, the seed's jhome fileset): mmsetquota per fileset."""


class HomeQuota(Strict):
    tool: QuotaTool = Field(QuotaTool.NONE, description="How each account's home quota is set on the file "
                            "system; none: recorded only (advisory).")
    filesystem: str | None = Field(None, min_length=1, description="setquota and xfs_quota: the mount point of "
                                   "the home file system; mmsetquota: Device:Fileset (e.g. lsstfs:jhome).")
    image: str | None = Field(None, min_length=1, description="Image of the provisioning Job when homes are "
                              "not mounted where enclave runs; it must carry the quota tool. Default: enclave's "
                              "own image.")

    def model_post_init(self, _context: object) -> None:
        if self.tool != QuotaTool.NONE and not self.filesystem:
            raise ValueError(f"storage.quota.tool {self.tool.value} needs storage.quota.filesystem (the mount "
                             "point, or Device:Fileset for mmsetquota)")


class Storage(Strict):
    home_root: str = "/jhome"
    home_quota_gib: float = Field(default=100, gt=0, le=MAX_GIB)
    quota: HomeQuota = Field(default_factory=HomeQuota)
    workspace_subdir: str = "workspace"
    shared_tib: float = Field(default=10, ge=0, le=MAX_GIB)
    node_local_gib: float = Field(default=100, gt=0, le=MAX_GIB)
    container_cache_gib: float = Field(default=250, ge=0, le=MAX_GIB)
    image_size_gib: float = Field(default=10, gt=0, le=MAX_GIB)
    cached_images_per_node: int = Field(default=5, ge=1, le=100_000)


KyvernoVersion = Annotated[str, StringConstraints(pattern=r"^1\.1[0-6]$")]
PinnedImage = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@sha256:[0-9a-f]{64}$")]


def _registry_host(host: str) -> str:
    if not is_registry_host(host):
        raise ValueError(f"{host!r} is not read as a registry by image references: a registry host contains a dot "
                         "or a port, or is localhost (distribution/reference normalize.go splitDockerDomain), "
                         f"otherwise {host}/<repository> is pulled from docker.io; write e.g. {host}.local or "
                         f"{host}:5000")
    return host


class Registry(Strict):
    host: Annotated[Host, AfterValidator(_registry_host)]
    vetting_required: bool = True
    kyverno_version: KyvernoVersion = Field(
        default="1.13", description="Kyverno minor the admission policy is rendered for (1.10–1.16).")
    system_images: dict[Name, PinnedImage] = Field(
        default_factory=dict,
        description="enclave's own images by role (enclave, webdav, hub, htcondor-worker) and the JupyterHub "
                    "chart's, mirrored into the registry (proxy, user-scheduler, pause, image-awaiter), as "
                    "repository[:tag]@sha256:<digest> (the hub and the chart's keep their tag: the "
                    "Zero-to-JupyterHub chart writes its images as name:tag); the admission policy admits them "
                    "without an approval row.")


class RoleSpec(Strict):
    description: str = ""


class Surplus(StrEnum):
    PRIORITY = "priority"
    """After the guarantees, spare capacity goes to needs in priority order."""
    WEIGHTED = "weighted"
    """After the guarantees and the latency pools' needs, spare capacity is shared among the other pools with
    demand in proportion to their guarantees (HTCondor group quotas with surplus; Kueue fair sharing)."""


class LendMode(StrEnum):
    PODS = "pods"
    """BCS 4: run HTCondor worker pods beside the commons' other pods."""
    NODES = "nodes"
    """BCS 5: drain whole Kubernetes nodes and run HTCondor on them."""


class BrokerPolicy(Strict):
    """How the capacity broker moves capacity (issue 6). Every field has a default so specs may omit it."""

    cycle_seconds: float = Field(default=60, gt=0, le=MAX_SECONDS,
        description="Time between two observe-decide-act cycles.")
    cooldown_seconds: float = Field(default=900, ge=0, le=MAX_SECONDS,
        description="A startd or node that just moved stays put.")
    drain_timeout_seconds: float = Field(default=900, gt=0, le=MAX_SECONDS,
        description="BCS 5: a worker whose drain has not finished after this long (a PodDisruptionBudget that never "
                    "allows an eviction, a pod that does not stop) is given back to the commons, as kubectl drain "
                    "--timeout gives up.")
    drain_retry_seconds: float = Field(default=14400, ge=0, le=MAX_SECONDS,
        description="BCS 5: a worker whose drain was given up (drain_timeout_seconds) is not drained again for this "
                    "long: what held it, a disruption budget that allows no eviction, likely holds it still, and each "
                    "new drain evicts the notebooks that landed there meanwhile.")
    start_timeout_seconds: float = Field(default=600, gt=0, le=MAX_SECONDS,
        description="A borrowed worker pod (or whole worker's HTCondor pod) whose startd has not joined its pool this "
                    "long after the pod was made (an image that does not pull, a container that crashes, a pod its "
                    "kubelet refused) is given up and may be borrowed again, as a Deployment is marked failed "
                    "after progressDeadlineSeconds (600 s by default).")
    hysteresis: float = Field(
        default=0.5, ge=0, le=1,
        description="A pool gets another startd only when it lacks at least this fraction of the startd's cores.",
    )
    max_moves_per_cycle: int = Field(default=20, ge=1, le=100_000)
    lend_mode: LendMode = LendMode.PODS
    lend_to: list[Name] | None = Field(
        default=None, description="Pools that may borrow Kubernetes capacity; default: pools with a latency objective."
    )
    max_lend_share: float = Field(default=1.0, ge=0, le=1, description="Most of the worker cores batch may borrow.")
    notebook_headroom_cores: float = Field(
        default=0.0, ge=0, le=MAX_CORES * 100_000,
        description="Worker cores kept free for notebook spawns when lending to batch."
    )
    pod_cores: int = Field(default=8, gt=0, le=1024)
    pod_memory_mib: int = Field(default=32768, gt=0, le=MAX_MIB)
    prewarm_pool: Name | None = Field(
        default=None, description="Pool that gets capacity before the night; default: the highest-priority pool "
        "with a latency objective. Needs cluster.site."
    )
    prewarm_cores: int | None = Field(
        default=None, ge=0, le=MAX_CORES * 100_000,
        description="Cores the pre-warmed pool holds through the night; default: its "
        "guarantee on the whole batch capacity (what it gives away in the day; failed nodes do not shrink the "
        "night's visits), more only as its queue asks."
    )
    prewarm_lead_seconds: float = Field(
        default=3600, ge=0, le=MAX_SECONDS,
        description="How long before evening twilight the pre-warm starts: time for the "
        "nodes to drain or reach their grace period."
    )
    prewarm_quiet_seconds: float = Field(
        default=900, gt=0, le=MAX_SECONDS,
        description="The pre-warm ends once the pre-warmed pool has had visits this night and "
        "then nothing new for this long (the last visit is done); a later submission pre-warms it again."
    )
    prewarm_instrument: str = Field(
        default="LSSTCam", min_length=1, max_length=64,
        description="The instrument (next_visit's short name) whose announced visits pre-warm the pool: a prompt "
        "processing deployment serves one instrument; visits of another or of none are dropped at the push."
    )
    twilight_altitude_deg: float = Field(default=-12.0, ge=-18, le=0)
    pod_start_seconds: float = Field(
        default=120, ge=0, le=MAX_SECONDS,
        description="From DeployPods until the pod's startd has joined: scheduling, an image pull when the worker "
        "lacks the image, container start, first ad (the twin's estimates: 1 + 80 + 30 s). With an observing "
        "schedule the pre-warm starts this (or a vacating donor's grace, if longer) plus a cycle before a visit."
    )
    need_percentile: float = Field(
        default=0.6, gt=0, le=1,
        description="The share of a latency pool's needs over the window (those seen while it had work) that its "
        "learned need covers: 1 holds the peak, 0.5 the median. What its own capacity does not hold at a peak "
        "overflows onto the slots other pools free, its group first (docs/broker.md, \"Overflow\"); a pool that "
        "keeps its claims (claim_worklife -1) frees a slot only when it has no job for it. Default 0.6: prompt "
        "runtimes 35-58 s over 15 seeds, within 1 point of the bound under HTCondor timing on 14 of them (0.5: 9), "
        "at 0.2 points less batch utilization and the other issue-15 cases unchanged (docs/broker.md, \"Across "
        "seeds\")."
    )
    need_window_seconds: float = Field(
        default=1800, ge=0, le=MAX_SECONDS,
        description="A latency pool's need is learned over this window (0: its need now; the share of its needs "
        "covered is need_percentile), so the capacity an overlap of visits pulled in is not given back between "
        "visits (docs/broker.md)."
    )
    calm_window_seconds: float = Field(
        default=3600, gt=0, le=MAX_SECONDS,
        description="The latency pools count as calm only if each was short of its own capacity in under "
        "calm_short_share of the broker's cycles over this window (pools.<name>.calm_claim_worklife)."
    )
    calm_short_share: float = Field(
        default=0.3, gt=0, le=1,
        description="The share of the cycles of calm_window_seconds in which a latency pool may have been short "
        "(its jobs needing more than it held ready) and still count as calm. Default 0.3: one-week's prompt is "
        "short in about 20 % of its night's cycles (each overlap of two visits), prompt runtimes 35-58 s in 35 % "
        "(docs/broker.md, \"Claims while calm\")."
    )
    need_nights: int = Field(
        default=3, ge=0, le=30,
        description="How many past nights the pre-warmed pool learns from: until tonight's visits have filled a "
        "need window (or while the window holds no visit), its pre-warm holds the median of those nights' learned "
        "needs (each the need_percentile of that night's needs), plus latency_headroom, instead of its guarantee, "
        "and so meets tonight's first overlap of visits before the window has seen one. 0: the guarantee until "
        "tonight's first visit, the window's figure from then on; with need_window_seconds 0 no night is learned "
        "(the guarantee all night). prewarm_cores, when set, replaces both."
    )
    surplus: Surplus = Field(
        default=Surplus.WEIGHTED,
        description="How capacity beyond the guarantees is shared: weighted by guarantee after the latency "
        "pools' needs (default: users' median wait 674-1,018 s against 1,715 s under priority, docs/broker.md), "
        "or in priority order."
    )
    latency_headroom: float = Field(
        default=0.0, ge=0, le=10,
        description="Margin on a latency pool's need: 0.1 holds 10 % more than its windowed need. The default holds "
        "the window's figure (need_percentile) as it is: what it does not hold at a peak overflows onto the slots "
        "other pools free (measured before overflow, at the 0.9 percentile, one-week: 99.99 % of visits within "
        "60 s either way, 0.7 points more batch utilization without the margin; docs/broker.md)."
    )


def node_name(group: str, index: int) -> str:
    """The one naming rule for the spec's machines: ``<group>-<index>``, the index from 001."""
    return f"{group}-{index:03d}"


WORKER_POD_PREFIX = "htcondor-"
"""What the name of every HTCondor worker pod starts with (``enclave.broker.naming``, ``cluster.objects``): here, so
the spec's checks can tell how long the names its workers give will be."""


class EnclaveSpec(Strict):
    """A whole enclave. Everything else enclave does is derived from this."""

    cluster: Cluster
    pools: dict[Name, Pool] = Field(min_length=1)
    batch: Batch
    notebooks: Notebooks
    storage: Storage = Storage()
    registry: Registry
    roles: dict[Role, RoleSpec] = Field(default_factory=lambda: {r: RoleSpec() for r in Role})
    broker: BrokerPolicy = BrokerPolicy()

    def groups(self, role: NodeRole) -> list[NodeGroup]:
        return [g for g in self.cluster.node_groups if g.role == role]

    def cores(self, role: NodeRole) -> int:
        return sum(g.count * g.cores for g in self.groups(role))

    def memory_gib(self, role: NodeRole) -> float:
        return sum(g.count * g.memory_gib for g in self.groups(role))

    def prewarmed_pool(self) -> str | None:
        """The pool the broker pre-warms for the night: ``broker.prewarm_pool``, else the highest-priority pool
        with a latency objective (prompt processing), else none."""
        if self.broker.prewarm_pool is not None:
            return self.broker.prewarm_pool
        with_objective = [(p.priority, n) for n, p in self.pools.items() if p.latency_objective is not None]
        return max(with_objective)[1] if with_objective else None

    def accounting_group(self, pool: str) -> str:
        """The accounting group the schedd forces on jobs of ``pool``: its ``accounting_group``, else
        ``group_<pool>`` ('-' becomes '_', which HTCondor group names do not allow)."""
        return self.pools[pool].accounting_group or "group_" + pool.replace("-", "_")

    def node_names(self, role: NodeRole | None = None) -> list[str]:
        """Stable node names derived from the groups: <group>-<index>, starting at 001."""
        return [
            node_name(g.name, i)
            for g in self.cluster.node_groups
            if role is None or g.role == role
            for i in range(1, g.count + 1)
        ]
