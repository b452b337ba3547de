"""Scenario files for the twin: which enclave, which load, how long, which layout of HTCondor.

A scenario names an enclave spec (path relative to the scenario file, or the embedded default) and
describes the load on it. Figures default to the LSST ones in ``docs/twin.md`` (sources cited there).
Every model forbids unknown keys, so a typo in a scenario is an error with file, line and a fix.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from enclave.errors import InputError, Problem, SpecError
from enclave.spec.checks import NO_CONTROL_PLANE, check
from enclave.spec.defaults import EXAMPLES, default_spec_path
from enclave.spec.document import load_model
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, NodeGroup, NodeRole, refuse_bool_as_number
from enclave.twin.config import pool_htcondor
from enclave.twin.knative import Knative
from enclave.twin.worklife import clock_worklife

SCENARIOS = EXAMPLES / "scenarios"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no infinite quantity

    _no_bool_as_number = field_validator("*", mode="before")(refuse_bool_as_number)  # `count: true` is no 1


class Runtime(Strict):
    """A job runtime distribution in seconds: triangular(low, mode, high) or lognormal(mean, sigma)."""

    dist: str = Field(default="triangular", pattern="^(triangular|lognormal|fixed)$")
    low: float = Field(default=20.0, ge=0)
    mode: float = Field(default=28.0, ge=0)
    high: float = Field(default=45.0, gt=0)
    mean: float = Field(default=600.0, gt=0)
    sigma: float = Field(default=0.5, ge=0, le=5)

    @model_validator(mode="after")
    def _ordered(self) -> Runtime:
        if self.dist == "triangular" and not (self.low <= self.mode <= self.high):
            raise ValueError("triangular runtime needs low <= mode <= high")
        return self


class MemoryUse(Strict):
    """A job's peak memory use in GiB: fixed(mean), uniform(low, high), triangular(low, mode, high) or
    lognormal(mean, sigma). Drawn per job from the workload's own seeded random stream."""

    dist: str = Field(pattern="^(fixed|uniform|triangular|lognormal)$")
    low: float = Field(default=0.0, ge=0)
    mode: float = Field(default=0.0, ge=0)
    high: float = Field(default=0.0, ge=0)
    mean: float = Field(default=0.0, ge=0)
    sigma: float = Field(default=0.0, ge=0, le=5)

    @model_validator(mode="after")
    def _complete(self) -> MemoryUse:
        if self.dist in ("fixed", "lognormal") and self.mean <= 0:
            raise ValueError(f"{self.dist} memory use needs mean > 0 (GiB)")
        if self.dist == "uniform" and not (self.low <= self.high and self.high > 0):
            raise ValueError("uniform memory use needs low <= high and high > 0 (GiB)")
        if self.dist == "triangular" and not (self.low <= self.mode <= self.high and self.high > 0):
            raise ValueError("triangular memory use needs low <= mode <= high and high > 0 (GiB)")
        return self


class Gap(Strict):
    """A stretch without observing (weather, a fault): no visit is read out in [at_h, at_h + minutes)."""

    at_h: float = Field(ge=0, description="Hours after t = 0.")
    minutes: float = Field(gt=0, le=24 * 60)


class Feed(Strict):
    """The schedule fed to the broker as next_visit messages (``Observed.schedule``; docs/broker.md, "Observing
    schedule"): each visit is announced ``lead_s`` before its first exposure, with ``startTime`` = readout −
    ``duration_s``."""

    lead_s: float | None = Field(
        default=20.0, ge=0, le=7 * 86_400,
        description="Announced this long before the visit's start: next_visit comes at least 20 s before the first "
        "exposure (LSE-72 OCS-DM-COM-ICD-0031, via DMTN-219; prompt processing's own tester sends it 2 x duration "
        "ahead, python/tester/upload.py). null: the whole schedule is known from t = 0, a night plan pushed "
        "ahead (and so clairvoyant about the weather gaps).")
    duration_s: float = Field(
        default=33.0, gt=0, le=3600,
        description="next_visit's duration: first exposure to readout (30 s + 1 s shutter + 2 s readout, DMTN-135).")


class Visits(Strict):
    """The observing schedule as a next_visit feed would give it: readout times, or the cadence with gaps."""

    times: list[float] | None = Field(
        default=None, description="Readout times, seconds after t = 0, ascending; replaces the drawn cadence.")
    file: str | None = Field(
        default=None, description="A file (relative to the scenario) with one readout time in seconds per line; "
        "'#' starts a comment. Read into `times`.")
    gaps: list[Gap] = Field(default_factory=list, description="No visit is read out inside a gap.")
    feed: Feed | None = Field(default=None, description="Feed the schedule to the broker as next_visit messages; "
                              "none: the broker sees only twilight (as before).")

    @model_validator(mode="after")
    def _one_source(self) -> Visits:
        if self.times is not None and self.file is not None:
            raise ValueError("give visit times either inline (times) or in a file (file), not both")
        times = self.times or []
        for i, t in enumerate(times):
            wrong = readout_problem(t, times[i - 1] if i else None)
            if wrong is not None:
                raise ValueError(f"times[{i}]: {wrong}")
        return self


def readout_problem(t: float, before: float | None) -> str | None:
    """What is wrong with readout time ``t`` after ``before`` (None for the first), the one rule of inline ``times``
    and of a visits file's lines (``_readout``); None when nothing is."""
    if not math.isfinite(t) or t < 0:
        return f"{t:g} is not a time >= 0 (seconds after t = 0)"
    if before is not None and t <= before:
        return f"{t:g} is not after the one before ({before:g}): list readout times in ascending order, each once"
    return None


class Prompt(Strict):
    """Prompt processing: one HTCondor job per detector per visit, submitted at readout (DMTN-092)."""

    nights: int = Field(default=1, ge=0, le=366)
    visits_per_night: int = Field(default=1000, ge=0, le=5000)
    night_start_h: float | Literal["twilight"] = Field(
        default=10.85, description="Hours after each day's start (0-24); default: -12° twilight at Cerro Pachon "
        "on the default start day. 'twilight': each night's -12° twilight at the scenario's site.")
    night_hours: float = Field(default=11.5, gt=0, le=16)
    visit_gap_s: tuple[float, float] = (33.0, 39.0)
    detectors: int = Field(default=189, ge=1, le=1000)
    cpus: int = Field(default=1, ge=1)
    memory_gib: float = Field(default=2.0, gt=0, description="RequestMemory (phalanx prompt-keda-lsstcam pod "
                              "requests 2 GiB).")
    memory_use: MemoryUse | None = Field(
        default=None, description="Peak use per job; none: every job stays within its request (no OOM kill).")
    runtime: Runtime = Runtime()
    deadline_s: float = Field(default=60.0, gt=0)
    visits: Visits | None = Field(default=None, description="The observing schedule; default: the drawn cadence.")

    @model_validator(mode="after")
    def _gap(self) -> Prompt:
        if isinstance(self.night_start_h, float) and not 0 <= self.night_start_h <= 24:
            raise ValueError("night_start_h must be between 0 and 24 hours, or 'twilight'")
        if not 0 < self.visit_gap_s[0] <= self.visit_gap_s[1]:
            raise ValueError("visit_gap_s must be [low, high] with 0 < low <= high")
        return self


class DrpTask(Strict):
    name: str
    weight: float = Field(gt=0, validation_alias=AliasChoices("weight", "share"),
                          description="Share of the DRP jobs (normalised over the mix); `share` is accepted too.")
    cpus: int = Field(default=1, ge=1, le=1024)
    memory_gib: float = Field(gt=0, le=1024)
    memory_use: MemoryUse | None = None
    runtime: Runtime


def _default_mix() -> list[DrpTask]:
    # Task shapes from RTN-109 (mean weighted CPU per quantum) and drp_pipe requestMemory (see docs/twin.md).
    return [
        DrpTask(name="isr", weight=0.25, memory_gib=4, runtime=Runtime(dist="lognormal", mean=92, sigma=0.4)),
        DrpTask(name="calibrate", weight=0.25, memory_gib=4,
                runtime=Runtime(dist="lognormal", mean=158, sigma=0.4)),
        DrpTask(name="warp", weight=0.25, memory_gib=8, runtime=Runtime(dist="lognormal", mean=600, sigma=0.5)),
        DrpTask(name="subtract", weight=0.12, memory_gib=16,
                runtime=Runtime(dist="lognormal", mean=900, sigma=0.5)),
        DrpTask(name="measure", weight=0.08, memory_gib=16,
                runtime=Runtime(dist="lognormal", mean=1215, sigma=0.6)),
        DrpTask(name="coadd", weight=0.05, memory_gib=32,
                runtime=Runtime(dist="lognormal", mean=3600, sigma=0.6)),
    ]


class Drp(Strict):
    """Data release production: a backlog at the start plus a steady stream, around the clock."""

    backlog_jobs: int = Field(default=20_000, ge=0, le=10_000_000)
    jobs_per_hour: float = Field(default=1500.0, ge=0)
    block_s: float = Field(default=600.0, gt=0, description="Arrivals are batched per block (a BPS submit).")
    mix: list[DrpTask] = Field(default_factory=_default_mix, min_length=1)


class UserBatch(Strict):
    """Bursty submissions from science users (notebook terminals and lsst-dev)."""

    bursts_per_day: float = Field(default=8.0, ge=0)
    jobs_per_burst: int = Field(default=400, ge=0)
    cpus: int = Field(default=1, ge=1)
    memory_gib: float = Field(default=4.0, gt=0)
    memory_use: MemoryUse | None = None
    runtime: Runtime = Runtime(dist="lognormal", mean=900, sigma=0.8)


class NotebookChoice(Strict):
    cpu: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    weight: float = Field(gt=0)


def _default_choices() -> list[NotebookChoice]:
    # rsp.lsst.io lab sizes: Small 1/4, Medium 2/8, Large 4/16 (docs/twin.md).
    return [NotebookChoice(cpu=1, memory_gib=4, weight=0.5), NotebookChoice(cpu=2, memory_gib=8, weight=0.35),
            NotebookChoice(cpu=4, memory_gib=16, weight=0.15)]


class Surge(Strict):
    """``count`` users spawn a lab of one size at once (a tutorial, a data release)."""

    at_h: float = Field(ge=0, description="Hours after t = 0.")
    count: int = Field(ge=1, le=100_000)
    cpu: float = Field(default=1.0, gt=0)
    memory_gib: float = Field(default=4.0, gt=0)
    session_h: float = Field(default=2.0, gt=0, description="Every session of the surge lasts this long.")


class NotebookLoad(Strict):
    """A daily cycle of sessions; each spawn is placed on a commons worker or refused after a timeout."""

    peak_concurrent: int = Field(default=300, ge=0, le=100_000)
    peak_hour: float = Field(default=15.0, ge=0, lt=24, description="Hours after each day's start.")
    trough_fraction: float = Field(default=0.15, ge=0, le=1)
    session_mean_s: float = Field(default=7200.0, gt=0)
    sizes: list[NotebookChoice] = Field(default_factory=_default_choices, min_length=1)
    spawn_s: float = Field(default=20.0, ge=0)
    spawn_timeout_s: float = Field(default=300.0, ge=0)
    surges: list[Surge] = Field(default_factory=list)


class Storm(Strict):
    """Nodes failing at once, repaired together ``repair_h`` later: a count or a fraction drawn at random from
    ``group`` (or every non-control-plane node), or the nodes named."""

    at_h: float = Field(ge=0)
    nodes: int | None = Field(default=None, ge=1)
    fraction: float | None = Field(default=None, gt=0, le=1, description="ceil(fraction x nodes of the group).")
    names: list[str] | None = Field(default=None, min_length=1)
    group: str | None = None
    repair_h: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _one_choice(self) -> Storm:
        given = [k for k in ("nodes", "fraction", "names") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of nodes, fraction, names (got {', '.join(given) or 'none'})")
        return self


class Failures(Strict):
    node_mtbf_days: float = Field(default=0.0, ge=0, description="0 switches random failures off.")
    repair_mean_h: float = Field(default=4.0, gt=0)
    storms: list[Storm] = Field(default_factory=list)


class BatchLayout(StrEnum):
    STANDALONE = "standalone"
    """HTCondor on the batch-only nodes; Kubernetes workers serve notebooks and services."""
    PODS = "pods"
    """HTCondor worker pods in the Kubernetes commons (batch-only nodes, if any, also run HTCondor)."""


class Layout(Strict):
    batch: BatchLayout = BatchLayout.STANDALONE
    pod_cores: int = Field(default=0, ge=0, le=1024, description="Cores per HTCondor pod; 0 = the whole node.")
    pod_batch_share: float = Field(
        default=0.6, ge=0, le=1, description="Share of commons cores the static pods layout gives to HTCondor pods."
    )
    pod_startup_s: float = Field(
        default=30.0, ge=0, description="Estimate: container start to the startd's first ad in the collector "
        "(condor_master starts the startd, which advertises at once; UPDATE_INTERVAL, default 300 s in "
        "param_info.in, paces only its later ads). Scheduling and any image pull come first (kubernetes:).")
    services_cpu_per_node: float = Field(default=2.0, ge=0)
    services_memory_gib_per_node: float = Field(default=8.0, ge=0)


class Timing(Strict):
    """BCS timings: seed BCS 5 'means some downtime' — these are its lengths."""

    drain_s: float = Field(
        default=0.0, ge=0, description="Estimate: from DrainNode (the broker taints the node) until the evictions are "
        "sent; kubectl drain sends them at once and the twin has no PodDisruptionBudget to refuse one. The node is "
        "free once its pods have terminated (kubernetes.termination_grace_s; HTCondor pods: their jobs' retirement).")
    htcondor_start_s: float = Field(default=60.0, ge=0, description="Estimate: start HTCondor on a drained node, "
                                    "or on a repaired batch-only node, until its startd's first ad.")
    return_s: float = Field(default=60.0, ge=0,
                            description="Stop HTCondor and take the broker's taint off (reverse of BCS 5).")
    reconcile_s: float = Field(default=300.0, gt=0, description="How often static layouts restore their pods.")
    sample_s: float = Field(default=300.0, gt=0, description="Time-series sampling for plots.")


class Kubernetes(Strict):
    """How a pod gets to run: the scheduler binds it, the kubelet pulls its image unless the node has it,
    then the container starts (``layout.pod_startup_s``). The image's size is the spec's
    ``storage.image_size_gib``; a pull of an image already being pulled to the node waits for that pull."""

    schedule_s: float = Field(default=1.0, ge=0, description="Estimate: from creation to binding to a node.")
    pull_gbit_s: float = Field(default=1.0, gt=0, description="Estimate: registry-to-node bandwidth, Gbit/s.")
    termination_grace_s: float = Field(
        default=30.0, ge=0, description="terminationGracePeriodSeconds of pods that set none, as notebook pods do: "
        "Kubernetes' default, 30 s (Pod API reference, 'Defaults to 30 seconds', "
        "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle). An evicted "
        "pod gets SIGTERM and holds its node until it exits or this has passed (pod-lifecycle#pod-termination); "
        "the twin takes the whole grace. HTCondor worker pods carry the rendered grace (the longest pool grace).")
    images_cached_at_start: bool = Field(
        default=True, description="Every worker holds the HTCondor worker image at t = 0 (a running enclave); "
        "false: the first pod on each node pulls it cold.")


class Matching(StrEnum):
    NEGOTIATOR = "negotiator"
    """HTCondor as it schedules: negotiation cycles, claim reuse, the schedd's start throttle."""
    INSTANT = "instant"
    """Frictionless: every idle job is matched the instant a slot has room (the twin before issue 14)."""


class Reschedule(StrEnum):
    """When a submit makes the negotiator start a cycle before its timer fires."""

    SCHEDD_IDLE = "schedd-idle"
    """A 26.x schedd: only when its last timeout counted no idle job of any submitter (schedd.cpp:
    endSubmitTransaction triggers a reschedule when ``LastSubmitterPressure`` is 0, the sum of JobsIdle in the
    submitter ads the last ``Scheduler::timeout`` sent; SCHEDD_INTERVAL paces the timeouts). A timeout that
    finds idle jobs where the last found none, and a periodic_release, ask for one too."""
    ALWAYS = "always"
    """Every submit: a schedd before 26.0 with ``SUBMIT_SEND_RESCHEDULE = True``, which forwarded condor_submit's
    RESCHEDULE. A 26.x schedd ignores RESCHEDULE (``external_reschedule_request``), condor_reschedule's too."""
    NEVER = "never"
    """Only the negotiator's timer: no schedd asks for a cycle."""


SHARED = "shared"
"""Label of startds that serve every pool (the ``quotas`` policy: one shared HTCondor pool in which the
negotiator's group quotas, not node labels, decide who runs where); no spec pool may have it
(``scenario_problems``)."""


FOREVER_S = 400 * 24 * 3600.0
"""CLAIM_WORKLIFE = -1 is "an infinite claim work life" (manual, admin-manual/configuration/startd.rst): the
twin uses a worklife longer than any scenario (at most 400 days)."""


def _worklife(seconds: float) -> float:
    """CLAIM_WORKLIFE as the startd reads it: -1 is "an infinite claim work life" (manual, startd configuration),
    which the twin runs as FOREVER_S; any other negative value is refused."""
    if seconds == -1:
        return FOREVER_S
    if seconds < 0:
        raise ValueError("a claim worklife is seconds >= 0, or -1 for forever")
    return seconds


Worklife = Annotated[float, AfterValidator(_worklife)]


class HTCondor(Strict):
    """How the pool's daemons pace matching and starts. Defaults are HTCondor's own; the source of each is
    cited beside it (htcondor/htcondor at 7491a14, ``src/condor_utils/param_info.in`` unless said otherwise).
    The cycle-duration terms are not HTCondor settings but this twin's estimate of the negotiator's work."""

    matching: Matching = Matching.NEGOTIATOR
    negotiator_interval_s: float = Field(
        default=60.0, gt=0, description="NEGOTIATOR_INTERVAL (param_info.in: default=60): the negotiator's timer; "
        "after a cycle of d seconds the next starts max(cycle delay, interval - d) later (matchmaker.cpp).")
    negotiator_cycle_delay_s: float = Field(
        default=20.0, ge=0, description="NEGOTIATOR_CYCLE_DELAY (matchmaker.cpp: param_integer(..., 20, 0)): no "
        "cycle starts sooner than this after the previous one finished, a reschedule included "
        "(condor_reschedule(1): 'cannot occur more frequently than every 20 seconds').")
    negotiator_min_interval_s: float = Field(
        default=5.0, ge=0, description="NEGOTIATOR_MIN_INTERVAL (param_info.in: default=5): nor sooner than this "
        "after the previous one started.")
    reschedule_on_submit: Reschedule = Field(
        default=Reschedule.SCHEDD_IDLE, description="Which submits send RESCHEDULE to the negotiator; the "
        "default is a 26.x schedd's rule (SUBMIT_SEND_RESCHEDULE, param_info.in: default=false, 'Obsolete, use "
        "when Schedd version is before 26.0'). A pool submits through its first submit host (its schedd).")
    schedd_interval_s: float = Field(
        default=300.0, ge=1, description="SCHEDD_INTERVAL (schedd.cpp Scheduler::Init: param_integer(..., 300), "
        "whole seconds, so at least 1: a smaller value would also flood the run with timeouts; "
        "param_info.in gives none): the schedd's periodic timeout, whose submitter ads alone refresh the idle "
        "count a submit's reschedule rule reads (schedd-idle). After a visit's jobs are matched, a prompt "
        "schedd asks for a cycle at the next visit only if a timeout has seen its queue with no idle job since.")
    schedd_min_interval_s: float = Field(
        default=5.0, ge=0, description="SCHEDD_MIN_INTERVAL (param_info.in: default=5): no timeout sooner than "
        "this after the last one started, one a submit asks for included.")
    dedicated_schedds: list[str] = Field(
        default_factory=list, description="Pools that submit through a schedd of their own instead of their first "
        "submit host (whose reschedule rule and start throttle they then share with no other pool).")
    cycle_base_s: float = Field(default=1.0, ge=0, description="Estimate: a cycle's fixed cost (collector query, "
                                "accounting).")
    cycle_per_submitter_s: float = Field(default=0.5, ge=0, description="Estimate: per submitter with idle jobs "
                                         "(one schedd conversation each).")
    cycle_per_autocluster_s: float = Field(default=0.05, ge=0, description="Estimate: per idle autocluster "
                                           "(one match pass over the slots each).")
    claim_worklife_s: Worklife = Field(
        default=1200.0, description="CLAIM_WORKLIFE (param_info.in: default=1200): the schedd starts the "
        "submitter's oldest idle job that fits the claimed dynamic slot on a claim it holds, without negotiation, "
        "until the claim is this old; 0 switches reuse off, -1 (run as 400 days) never ends it.")
    pool_claim_worklife_s: dict[str, Worklife] = Field(
        default_factory=dict, description="CLAIM_WORKLIFE of the startds serving a pool, where the spec sets the "
        "pool its own (pools.<name>.claim_worklife); other pools' startds, and the unlabelled ones of quotas, use "
        "claim_worklife_s. A scenario's entries replace the spec's pool by pool (-1: forever).")
    pool_claim_worklife_by_clock: dict[str, str] = Field(
        default_factory=dict, description="CLAIM_WORKLIFE of the startds serving a pool the spec gives a worklife "
        "by day (pools.<name>.day_claim_worklife): the expression of the startd's clock (time()) as HTCondor "
        "reads it, which the twin evaluates with classad2 at the minute (enclave.twin.worklife). A pool's entry "
        "in pool_claim_worklife_s replaces it.")
    consumption_policy: bool = Field(
        default=False, description="CONSUMPTION_POLICY on the startds (param_info.in: default=false). True: a "
        "match under group quotas costs the change in the slot's SLOT_WEIGHT and the slot stays offered for the "
        "rest of the cycle (``Sim._consume_slot``); false: it costs the partitionable slot's whole unclaimed weight "
        "and leaves the cycle (``Sim._claim_slot``).")
    job_start_count: int = Field(default=1, ge=1, description="JOB_START_COUNT (param_info.in: default=1).")
    job_start_delay_s: float = Field(
        default=0.0, ge=0, description="JOB_START_DELAY (param_info.in: default=0): the schedd starts at most "
        "JOB_START_COUNT jobs, then waits this long before the next ones.")
    job_startup_s: float = Field(default=1.0, ge=0, description="Estimate: shadow and starter start-up, from the "
                                 "claim's activation to the job's first instruction.")

    @field_validator("pool_claim_worklife_by_clock")
    @classmethod
    def _clock_worklives(cls, value: dict[str, str]) -> dict[str, str]:
        for expression in value.values():
            clock_worklife(expression, FOREVER_S)
        return value


class MemoryPolicy(StrEnum):
    HARD = "hard"
    NONE = "none"


class Memory(Strict):
    """What happens to a job that uses more memory than it requested: the execute point's cgroup limit, and
    the automatic retry with a larger request that Rubin's BPS configures (docs/twin.md, "Memory")."""

    policy: MemoryPolicy = Field(
        default=MemoryPolicy.HARD, description="CGROUP_MEMORY_LIMIT_POLICY (param_info.in: default=hard; "
        "HTCondor manual, starter configuration: 'when the job tries to use more memory than the slot size, it "
        "will be put on hold'); none: no limit, nobody is killed.")
    multiplier: float = Field(
        default=2.0, ge=1, le=16, description="memoryMultiplier (lsst/ctrl_bps etc/bps_defaults.yaml: 2): the "
        "k-th retry requests min(int(request x multiplier^k), limit) (ctrl_bps_htcondor prepare_utils.py, "
        "_create_request_memory_expr); 1: BPS writes no periodic_release (_create_periodic_release_expr), so a "
        "killed job stays held.")
    retries: int = Field(
        default=5, ge=0, le=100, description="numberOfRetries (lsst/ctrl_bps etc/bps_defaults.yaml: 5): "
        "released while NumJobStarts <= JobMaxRetries (_create_periodic_release_expr).")
    limit_gib: float | None = Field(
        default=None, gt=0, description="memoryLimit: no retry requests more; a job killed at it stays held "
        "(_create_periodic_remove_expr). Default: the largest slot's memory, as ctrl_bps_htcondor detects it "
        "from TotalSlotMemory when memoryLimit is unset (prepare_utils.py, _gather_site_values); its shipped "
        "etc/htcondor_defaults.yaml sets 491520 MiB (480 GiB) for SLAC's S3DF instead.")
    periodic_expr_interval_s: float = Field(
        default=60.0, gt=0, description="PERIODIC_EXPR_INTERVAL (param_info.in: default=60): the schedd "
        "evaluates periodic_release every this many seconds (from t = 0), so a held job is released at the "
        "first evaluation after its kill.")


class Site(Strict):
    """Where the enclave observes from: named in reports; its latitude and longitude give the twilight that
    starts the night when ``prompt.night_start_h`` is ``twilight``."""

    name: str = Field(default="Cerro Pachon", min_length=1)
    timezone: str = Field(default="America/Santiago", min_length=1)
    latitude: float = Field(default=-30.244639, ge=-90, le=90, description="Degrees, north positive. Default: "
                            "Rubin Observatory as the LSST software stack gives it (-30.244639, -70.749417, 2663 m).")
    longitude: float = Field(default=-70.749417, ge=-180, le=180, description="Degrees, east positive.")

    @model_validator(mode="after")
    def _zone(self) -> Site:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{self.timezone}': use an IANA name such as "
                             "America/Santiago") from None
        return self


class Scenario(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    spec: str | None = Field(default=None, description="Enclave spec, relative to this file; default: embedded.")
    node_groups: list[NodeGroup] | None = Field(
        default=None, description="Replace the spec's node groups (e.g. the standalone-vs-pods hardware)."
    )
    seed: int = Field(default=1, ge=0)
    duration_hours: float = Field(default=24.0, gt=0, le=24 * 400)
    start_epoch: float = Field(
        default=1_782_043_200.0, ge=0, description="Unix time of t = 0 (2026-06-21 12:00 UTC, a long winter night)."
    )
    prompt: Prompt | None = Prompt()
    drp: Drp | None = Drp()
    user_batch: UserBatch | None = UserBatch()
    notebooks: NotebookLoad | None = NotebookLoad()
    failures: Failures = Failures()
    layout: Layout = Layout()
    timing: Timing = Timing()
    htcondor: HTCondor = HTCondor()
    kubernetes: Kubernetes = Kubernetes()
    memory: Memory = Memory()
    site: Site = Site()
    knative: Knative = Knative()
    """Prompt processing as Knative service workers: used by the ``service`` policy (enclave.twin.service_prompt)."""

    @property
    def duration_s(self) -> float:
        return self.duration_hours * 3600.0


class Loaded(BaseModel):
    """A scenario together with the enclave spec it runs on (node groups already substituted)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    scenario: Scenario
    spec: EnclaveSpec
    source: str


def find(name_or_path: str) -> Path:
    """A scenario file by path, or by name among the shipped ones (package data ``enclave/examples/scenarios``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir():
        raise InputError([Problem(name_or_path, "is a directory, not a scenario file",
                                  "give a scenario's YAML file, or the name of a shipped scenario")])
    for candidate in (SCENARIOS / name_or_path, SCENARIOS / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(x.stem for x in SCENARIOS.glob("*.yaml"))) or "none"
    raise InputError([Problem(name_or_path, "no such scenario file",
                              f"give a path, or one of the shipped scenarios: {known}")])


def parse(text: str, source: str = "<scenario>", base: Path | None = None,
          spec: EnclaveSpec | None = None) -> Loaded:
    """Validate scenario text; raise InputError (file:line: path — what — fix) for every problem."""
    scenario, _ = load_model(text, source, Scenario, what="a scenario",
                             example="examples/scenarios/one-night.yaml")
    scenario = _read_visits(scenario, source, base or Path.cwd())
    if spec is None:
        spec_path = default_spec_path() if scenario.spec is None else (base or Path.cwd()) / scenario.spec
        spec = load(spec_path)
    if scenario.node_groups is not None:
        spec = _with_node_groups(spec, scenario.node_groups, source)
    scenario = _with_pool_config(scenario, spec, source)
    problems = scenario_problems(scenario, spec, source)
    if problems:
        raise InputError(problems)
    return Loaded(scenario=scenario, spec=spec, source=source)


def _with_node_groups(spec: EnclaveSpec, groups: list[NodeGroup], source: str) -> EnclaveSpec:
    """``spec`` with the scenario's node groups, held to the spec's own checks (``spec.checks``): a copy alone
    skipped them, and two groups of one name ended the run in a traceback (review, stop 48). All but one: a
    scenario may leave the control plane out, as the twin simulates no control-plane work (its enclave figures
    count the other cores) and its scenarios give only the nodes under study."""
    cluster = spec.cluster.model_copy(update={"node_groups": groups})
    changed = spec.model_copy(update={"cluster": cluster})
    problems = [Problem(f"{source}: node_groups ({'.'.join(str(x) for x in loc)} of the spec they replace)", what,
                        fix) for loc, what, fix in check(changed) if what != NO_CONTROL_PLANE]
    if problems:
        raise InputError(problems)
    return changed


def _read_visits(sc: Scenario, source: str, base: Path) -> Scenario:
    """Load ``prompt.visits.file`` (one readout time in seconds per line, '#' comments) into ``times``."""
    visits = sc.prompt.visits if sc.prompt is not None else None
    if sc.prompt is None or visits is None or visits.file is None:
        return sc
    path = base / visits.file
    where = f"{source}: prompt.visits.file"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(where, f"cannot read {path}: {exc}",
                                  "give a path relative to the scenario file")]) from None
    times: list[float] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            times.append(_readout(text, times[-1] if times else None, f"{path}:{number}"))
    try:
        checked = Visits(times=times, gaps=visits.gaps, feed=visits.feed)
    except ValidationError as exc:
        raise InputError([Problem(f"{path}", e["msg"], "list readout times >= 0 in ascending order")
                          for e in exc.errors()]) from None
    prompt = sc.prompt.model_copy(update={"visits": checked})
    return sc.model_copy(update={"prompt": prompt})


def _readout(text: str, before: float | None, where: str) -> float:
    """One line of a visits file, checked where it stands (``where``: file:line). Left to the model, a NaN or an
    out-of-order time was reported by pydantic's last line alone, its documentation URL, with no line (review)."""
    try:
        t = float(text)
    except ValueError:
        raise InputError([Problem(where, f"'{text}' is not a time in seconds",
                                  "write one number (seconds after t = 0) per line")]) from None
    wrong = readout_problem(t, before)
    if wrong is not None:
        raise InputError([Problem(where, wrong, "write readout times in seconds after t = 0, ascending")])
    return t


def _with_pool_config(sc: Scenario, spec: EnclaveSpec, source: str) -> Scenario:
    """The scenario with every ``htcondor:`` setting it does not give taken from the spec's rendered pool config
    (``enclave.twin.config``); with ``matching: instant`` no setting is used, so none is read."""
    if sc.htcondor.matching == Matching.INSTANT:
        return sc
    try:
        base = pool_htcondor(spec)
    except SpecError as err:
        raise InputError([Problem(f"{source}: spec: {p.where}", p.what, p.fix) for p in err.problems]) from None
    override = sc.htcondor.model_dump(exclude_unset=True)
    if "pool_claim_worklife_s" in override:  # pool by pool: one pool's entry leaves the spec's others
        override["pool_claim_worklife_s"] = {**base["pool_claim_worklife_s"], **override["pool_claim_worklife_s"]}
        # A scenario's fixed worklife for a pool replaces the spec's by the clock.
        fixed = override["pool_claim_worklife_s"]
        override.setdefault("pool_claim_worklife_by_clock", {
            p: e for p, e in base["pool_claim_worklife_by_clock"].items() if p not in fixed})
    htcondor = HTCondor.model_validate({**base, **override})
    return sc.model_copy(update={"htcondor": htcondor})


def scenario_problems(sc: Scenario, spec: EnclaveSpec, source: str) -> list[Problem]:
    """What is wrong with ``sc`` on ``spec`` beyond its own fields (parse, and a sweep's every point)."""
    problems: list[Problem] = []
    groups = {g.name for g in spec.cluster.node_groups}
    for i, storm in enumerate(sc.failures.storms):
        if storm.group is not None and storm.group not in groups:
            problems.append(Problem(f"{source}: failures.storms[{i}].group", f"no node group '{storm.group}'",
                                    f"use one of: {', '.join(sorted(groups))}"))
        unknown = sorted(set(storm.names or ()) - set(spec.node_names()) |
                         set(storm.names or ()) & set(spec.node_names(NodeRole.CONTROL_PLANE)))
        if unknown:
            problems.append(Problem(f"{source}: failures.storms[{i}].names",
                                    f"no such worker or batch node: {', '.join(unknown)}",
                                    "name nodes as <group>-<n> (enclave spec show), not control-plane nodes"))
    needed = {"prompt": sc.prompt, "drp": sc.drp, "user": sc.user_batch}
    for pool, load_ in needed.items():
        if load_ is not None and pool not in spec.pools:
            problems.append(Problem(f"{source}: {'user_batch' if pool == 'user' else pool}",
                                    f"the spec has no pool '{pool}' for this load",
                                    f"add pool '{pool}' to the spec, or set this load to null"))
    for i, pool in enumerate(sc.htcondor.dedicated_schedds):
        if pool not in spec.pools:
            problems.append(Problem(f"{source}: htcondor.dedicated_schedds[{i}]", f"no pool '{pool}' in the spec",
                                    f"use one of: {', '.join(spec.pools)}"))
    if SHARED in spec.pools:
        problems.append(Problem(f"{source}: spec: pools.{SHARED}", f"the twin labels the slots of one shared pool "
                                f"(quotas) '{SHARED}', so a pool of that name would be taken for them",
                                "rename the pool for the twin"))
    for pool in sc.htcondor.pool_claim_worklife_s:
        if pool not in spec.pools:
            problems.append(Problem(f"{source}: htcondor.pool_claim_worklife_s.{pool}", f"no pool '{pool}' in the "
                                    "spec", f"use one of: {', '.join(spec.pools)}"))
    if sc.layout.batch == BatchLayout.PODS and not spec.groups(NodeRole.WORKER):
        problems.append(Problem(f"{source}: layout.batch", "the pods layout needs Kubernetes worker nodes",
                                "add a worker node group, or use layout.batch: standalone"))
    if sc.layout.batch == BatchLayout.STANDALONE and not spec.groups(NodeRole.BATCH_ONLY):
        problems.append(Problem(f"{source}: layout.batch", "the standalone layout needs batch-only nodes",
                                "add a batch-only node group, or use layout.batch: pods"))
    return problems


def load_scenario(name_or_path: str, spec: EnclaveSpec | None = None) -> Loaded:
    """Load a scenario by name or path; ``spec`` overrides the one the scenario names."""
    path = find(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(path), f"cannot read the file: {exc}", "check the path")]) from None
    return parse(text, str(path), base=path.parent, spec=spec)
