"""Matchmaking for the twin: the batch concept's ClassAd policy, evaluated with classad2, autoclustered.

The twin does not write its own START: it asks ``enclave.batch.policy.Matcher`` — the same START and
job Requirements that are rendered into the live pool's configuration — whether a job shape may run on
a slot shape. HTCondor negotiates once per autocluster, not per job, and so does the twin: the verdict
for an (autocluster, slot signature) pair is computed once with real classad2 evaluation and cached.
A slot signature is everything START can see of a partitionable slot that does not change while jobs
come and go (pool label, kind, total cores and memory); whether the slot has room *now* is arithmetic
on its free cores and memory, done by the engine, as a partitionable slot carves out a dynamic slot.
"""

from __future__ import annotations

from enclave.batch.policy import JobShape, SlotShape, pool_submit_hosts
from enclave.batch.policy import Matcher as PolicyMatcher
from enclave.domain.capacity import StartdKind
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import SHARED
from enclave.twin.workloads import AutoCluster

Signature = tuple[str, str, int, int]
"""(pool label, startd kind, total cores, total memory MiB)."""


def job_shape(spec: EnclaveSpec, ac: AutoCluster) -> JobShape:
    """The jobs of an autocluster as the schedd holds them: a service owner submitting from the first
    submit host the pool trusts, the accounting group the schedd's transform forces."""
    schedd = pool_submit_hosts(spec, ac.pool)[0]
    return JobShape(owner=f"svc_{ac.pool.replace('-', '_')}", pool=ac.pool, schedd=schedd,
                    request_cpus=ac.cpus, request_memory_mib=ac.memory_mib)


class Matcher:
    """May autocluster ``ac`` ever run on a slot with signature ``sig``? One cached classad2 match each."""

    def __init__(self, spec: EnclaveSpec, acs: list[AutoCluster]) -> None:
        self.spec = spec
        self.acs = acs
        self.policy = PolicyMatcher(spec)
        self.source = "enclave.batch.policy"
        self._jobs = [job_shape(spec, ac) for ac in acs]
        self._cache: dict[tuple[int, Signature], bool] = {}

    def extend(self, ac: AutoCluster) -> None:
        """A new autocluster (a retry with a larger request) appended to the shared ``acs`` list."""
        self._jobs.append(job_shape(self.spec, ac))

    @property
    def evaluations(self) -> int:
        """ClassAd evaluations actually performed (the rest were autocluster cache hits)."""
        return self.policy.evaluations

    def matches(self, ac: int, sig: Signature) -> bool:
        key = (ac, sig)
        hit = self._cache.get(key)
        if hit is None:
            pool, kind, cores, memory = sig
            # A shared slot publishes whichever pool label the negotiator is matching it for; START then
            # judges the job exactly as on a slot of that pool (credentials, schedd, resources).
            label = self.acs[ac].pool if pool == SHARED else pool
            slot = SlotShape(pool=label, cpus=cores, memory_mib=memory, kind=StartdKind(kind))
            hit = self._cache[key] = self.policy.can_run(self._jobs[ac], slot)
        return hit
