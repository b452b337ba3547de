"""Prometheus metrics of the control plane.

Each service instance owns its own CollectorRegistry rather than the process-global default, so several
apps (tests, the benchmark) can live in one process without "duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from enclave.api.snapshot import Snapshot
from enclave.broker.decide import PoolState
from enclave.broker.execute import KINDS

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Buckets around the 60 s alert objective (OTT1): resolution where the objective is decided.
_LATENCY_BUCKETS = (1, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600)
CYCLE_OUTCOMES = ("ok", "failed")
_API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pool_capacity = Gauge("enclave_pool_capacity_cores", "Cores currently labelled for a batch pool.",
                                   ["pool"], registry=r)
        self.pool_busy = Gauge("enclave_pool_busy_cores", "Cores of a pool's startds claimed by running jobs.",
                               ["pool"], registry=r)
        self.pool_idle_jobs = Gauge("enclave_pool_idle_jobs", "Jobs waiting for a slot, per pool.", ["pool"],
                                    registry=r)
        self.pool_idle_cores = Gauge("enclave_pool_idle_cores", "Cores requested by waiting jobs, per pool.",
                                     ["pool"], registry=r)
        self.pool_running_jobs = Gauge("enclave_pool_running_jobs", "Running jobs per pool.", ["pool"], registry=r)
        self.pool_oldest_idle = Gauge("enclave_pool_oldest_idle_seconds", "Age of the oldest waiting job.",
                                      ["pool"], registry=r)
        self.pool_memory = Gauge("enclave_pool_memory_bytes", "Memory of a pool's startds.", ["pool"], registry=r)
        self.pool_busy_memory = Gauge("enclave_pool_busy_memory_bytes", "Memory claimed by a pool's running jobs.",
                                      ["pool"], registry=r)
        self.pool_cores_by_source = Gauge("enclave_pool_capacity_cores_by_source",
                                          "A pool's cores by where they come from: standalone batch nodes, whole "
                                          "Kubernetes nodes (BCS 5) or worker pods (BCS 4).", ["pool", "source"],
                                          registry=r)
        self.pool_utilization = Gauge("enclave_pool_utilization_ratio",
                                      "Share of a pool's startds in use by resource: cores, memory, or dominant "
                                      "(per slot the larger of the two, as HTCondor matches).",
                                      ["pool", "resource"], registry=r)
        self.nodes = Gauge("enclave_nodes", "Nodes by state.", ["state"], registry=r)
        self.broker_actions = Counter("enclave_broker_actions", "Actions the broker applied, by kind.", ["kind"],
                                      registry=r)
        self.broker_action_failures = Counter("enclave_broker_action_failures",
                                              "Actions of the broker loop the backend failed (the Kubernetes API or "
                                              "HTCondor answered with an error), by kind; refusals by the broker's "
                                              "own checks are not counted.", ["kind"], registry=r)
        # One counter by outcome rather than "cycles" beside "errors": rate(...{outcome="failed"}) / rate(...) is the
        # failure ratio, and a failed cycle is not also counted as run (prometheus.io/docs/practices/
        # instrumentation, "Counter vs. gauge, summary vs. histogram" and "Failures": count failures and total
        # attempts, here as the two values of one label).
        self.broker_cycles = Counter("enclave_broker_cycles", "Broker observe-decide-act cycles by outcome: ok, or "
                                     "failed (the backend could not be observed or moved on, or the cycle stopped "
                                     "on an error).", ["outcome"], registry=r)
        self.broker_calm = Gauge("enclave_broker_calm", "The broker's last word on the latency pools: 1 calm "
                                 "(the pools with calm_claim_worklife keep their claims), else 0.", registry=r)
        # prometheus.io/docs/practices/instrumentation, "Offline processing" / "Batch jobs": export the time of
        # the last success, so `time() - enclave_broker_last_success_timestamp_seconds > N` alerts on a broker
        # that stopped succeeding however it fails (Unix seconds, the wall clock PromQL's time() reads).
        self.broker_last_success = Gauge("enclave_broker_last_success_timestamp_seconds",
                                         "When this replica's broker last completed a cycle (Unix time, wall "
                                         "clock).", registry=r)
        # Churn (issue 15): the work the broker's applied actions evicted, as the journal records it. Per night it
        # is increase() over this and enclave_broker_actions_total, not a gauge of this process's own: a gauge
        # restarted at 0 with each process and leader (prometheus.io/docs/practices/instrumentation, "Counter vs.
        # gauge": a count that only goes up is a counter; base unit seconds, prometheus.io/docs/practices/naming,
        # "Base units").
        self.broker_evicted = Counter("enclave_broker_evicted_core_seconds",
                                      "Running work the broker's applied actions were expected to evict "
                                      "(core-seconds; each journal entry's evicts.lost_core_s).", registry=r)
        self.prompt_latency = Histogram("enclave_prompt_latency_seconds",
                                        "Prompt processing visit latency (readout to last detector job done).",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.sim_time = Gauge("enclave_backend_clock_seconds", "Backend clock (simulated in the twin).", registry=r)
        self.api_latency = Histogram("enclave_api_request_seconds", "API request latency.",
                                     ["method", "route", "status"], buckets=_API_BUCKETS, registry=r)
        # The loop's period, so `time() - enclave_broker_last_success_timestamp_seconds > 3 *
        # enclave_broker_cycle_seconds` alerts whatever the spec's broker.cycle_seconds (prometheus.io/docs/
        # practices/instrumentation, "Offline processing"; base unit seconds, prometheus.io/docs/practices/naming,
        # "Base units").
        self.broker_cycle_seconds = Gauge("enclave_broker_cycle_seconds", "Wall-clock seconds between this "
                                          "replica's broker cycles (live: the spec's broker.cycle_seconds).",
                                          registry=r)
        # "Is prompt getting its capacity?" from the plan the broker just made, per pool (labels bounded by the
        # spec's pools; prometheus.io/docs/practices/naming, "Labels": no unbounded values; base unit cores as the
        # pool gauges above): compare need with target, target with enclave_pool_capacity_cores.
        self.pool_guaranteed = Gauge("enclave_pool_guaranteed_cores", "Cores the spec guarantees a pool, as the "
                                     "broker's last plan applied it (0 while it has no work).", ["pool"], registry=r)
        self.pool_target = Gauge("enclave_pool_target_cores", "Cores the broker's last plan gives a pool: "
                                 "standalone target plus Kubernetes cores to borrow.", ["pool"], registry=r)
        self.pool_need = Gauge("enclave_pool_need_cores", "Cores the broker's last plan counted a pool as needing "
                               "(windowed need, headroom and pre-warm included).", ["pool"], registry=r)
        self.broker_leader = Gauge("enclave_broker_leader", "1 while this replica runs the broker loop, 0 while it "
                                   "stands by (another holds the lock or Lease); a standby exports no pool, node "
                                   "or backend-clock series.", registry=r)
        self._snapshot_gauges = (self.pool_capacity, self.pool_busy, self.pool_idle_jobs, self.pool_idle_cores,
                                 self.pool_running_jobs, self.pool_oldest_idle, self.pool_memory, self.pool_busy_memory,
                                 self.pool_cores_by_source, self.pool_utilization, self.nodes, self.pool_guaranteed,
                                 self.pool_target, self.pool_need)
        """What ``observe_snapshot`` sets: the figures of the backend as this replica last observed it."""
        self._clock_registered = True
        self._zero_known_labels()

    def _zero_known_labels(self) -> None:
        """Every series whose label values are known in advance, at 0 from the start: a counter absent until its
        first increment makes rate() and alerts on it see nothing rather than 0 (prometheus.io/docs/practices/
        instrumentation, "Avoid missing metrics")."""
        for kind in KINDS:
            self.broker_actions.labels(kind)
            self.broker_action_failures.labels(kind)
        for outcome in CYCLE_OUTCOMES:
            self.broker_cycles.labels(outcome)

    def lead(self, leading: bool) -> None:
        """Whether this replica runs the broker. A standby takes no snapshot, so the backend's figures it last saw
        would stay exported, frozen at the hand-over, beside the leader's live ones (audit): they are removed
        instead, and come back with its next snapshot. Queries take the leader's with ``enclave_broker_leader``."""
        self.broker_leader.set(1 if leading else 0)
        if leading:
            return
        for gauge in self._snapshot_gauges:
            gauge.clear()
        if self._clock_registered:  # a series without labels cannot be cleared, only taken out of the registry
            self.registry.unregister(self.sim_time)
            self._clock_registered = False

    def observe_snapshot(self, snap: Snapshot) -> None:
        if not self._clock_registered:
            self.registry.register(self.sim_time)
            self._clock_registered = True
        self.sim_time.set(snap.now)
        for pool, p in snap.pools.items():
            self.pool_capacity.labels(pool).set(p.capacity_cores)
            self.pool_busy.labels(pool).set(p.busy_cores)
            self.pool_idle_jobs.labels(pool).set(p.idle_jobs)
            self.pool_idle_cores.labels(pool).set(p.idle_cores)
            self.pool_running_jobs.labels(pool).set(p.running_jobs)
            self.pool_oldest_idle.labels(pool).set(p.oldest_idle_seconds)
            # Prometheus base units are bytes (https://prometheus.io/docs/practices/naming/#base-units).
            self.pool_memory.labels(pool).set(p.memory_mib * 2**20)
            self.pool_busy_memory.labels(pool).set(p.busy_memory_mib * 2**20)
            for source, cores in (("standalone", p.standalone_cores), ("node", p.borrowed_node_cores),
                                  ("pod", p.borrowed_pod_cores)):
                self.pool_cores_by_source.labels(pool, source).set(cores)
            for resource, share in (("cores", p.core_utilization), ("memory", p.memory_utilization),
                                    ("dominant", p.dominant_utilization)):
                self.pool_utilization.labels(pool, resource).set(share if share is not None else float("nan"))
        for state, count in snap.node_states.items():
            self.nodes.labels(state).set(count)

    def observe_plan(self, pools: Mapping[str, PoolState]) -> None:
        """Each pool's guarantee, target and need as the broker's plan of this cycle has them."""
        for name, p in pools.items():
            self.pool_guaranteed.labels(name).set(p.guaranteed)
            self.pool_target.labels(name).set(p.target + p.lend)
            self.pool_need.labels(name).set(p.need)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
