"""Matchmaking for the twin: real ClassAd evaluation (classad2), cached per autocluster.

HTCondor groups alike jobs into autoclusters and negotiates once per autocluster, not per job; the
twin does the same. Whether an autocluster may ever run on a partitionable slot depends only on the
job's request and on the slot's static attributes (pool label, kind, total cores and memory), so the
symmetric ClassAd match is evaluated once per (autocluster, slot signature) and cached. Whether the slot
has room *now* is plain arithmetic on its free cores and memory, done by the engine, exactly as a
partitionable slot carves a dynamic slot out of what is left.

The ads come from ``enclave.batch.policy`` (the batch concept's START policy) when it is installed,
so the twin runs the production policy; otherwise from the minimal equivalent here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import classad2

from enclave.spec.models import EnclaveSpec
from enclave.twin.workloads import AutoCluster

SHARED = "shared"
"""Pool label of startds that serve every pool (HTCondor group quotas: the negotiator shares them)."""

Signature = tuple[str, str, int, int]
"""(pool label, startd kind, total cores, total memory MiB): everything a START policy can see of a slot."""


def _fallback_machine_ad(spec: EnclaveSpec, sig: Signature) -> classad2.ClassAd:
    pool, kind, cores, memory = sig
    attr = spec.batch.pool_attribute
    ad = classad2.ClassAd({"Cpus": cores, "Memory": memory, "EnclaveStartdKind": kind})
    if pool != SHARED:
        ad[attr] = pool
        ad["START"] = classad2.ExprTree(f"TARGET.{attr} =?= MY.{attr}")
    else:
        # A shared slot accepts any pool's job; group quotas in the negotiator decide who gets it.
        ad["START"] = classad2.ExprTree(f"TARGET.{attr} =!= undefined")
    ad["Requirements"] = classad2.ExprTree("START")
    return ad


def _fallback_job_ad(spec: EnclaveSpec, ac: AutoCluster) -> classad2.ClassAd:
    ad = classad2.ClassAd({"RequestCpus": ac.cpus, "RequestMemory": ac.memory_mib,
                           spec.batch.pool_attribute: ac.pool})
    ad["Requirements"] = classad2.ExprTree("TARGET.Cpus >= MY.RequestCpus && TARGET.Memory >= MY.RequestMemory")
    return ad


def _batch_policy() -> Any | None:
    try:
        return importlib.import_module("enclave.batch.policy")
    except ModuleNotFoundError:
        return None


class Matcher:
    """Answers 'may autocluster A ever run on a slot with signature S?' with one cached classad2 match."""

    def __init__(self, spec: EnclaveSpec, acs: list[AutoCluster], use_batch_policy: bool = True) -> None:
        self.spec = spec
        self.acs = acs
        self.evaluations = 0
        self._cache: dict[tuple[int, Signature], bool] = {}
        policy = _batch_policy() if use_batch_policy else None
        self.source = "fallback"
        self._machine: Callable[[Signature], classad2.ClassAd] = lambda sig: _fallback_machine_ad(spec, sig)
        self._job: Callable[[AutoCluster], classad2.ClassAd] = lambda ac: _fallback_job_ad(spec, ac)
        if policy is not None:
            adapted = _adapt(policy, spec)
            if adapted is not None:
                self._machine, self._job = adapted
                self.source = "enclave.batch.policy"
        self._job_ads = [self._job(ac) for ac in acs]
        self._machine_ads: dict[Signature, classad2.ClassAd] = {}

    def matches(self, ac: int, sig: Signature) -> bool:
        key = (ac, sig)
        hit = self._cache.get(key)
        if hit is None:
            machine = self._machine_ads.get(sig)
            if machine is None:
                machine = self._machine_ads[sig] = self._machine(sig)
            hit = self._cache[key] = bool(machine.symmetricMatch(self._job_ads[ac]))
            self.evaluations += 1
        return hit


def _adapt(policy: Any, spec: EnclaveSpec) -> tuple[Callable[[Signature], classad2.ClassAd],
                                                     Callable[[AutoCluster], classad2.ClassAd]] | None:
    """Bind the batch concept's ``machine_ad``/``job_ad`` if their signatures are the ones the twin knows."""
    machine_ad = getattr(policy, "machine_ad", None)
    job_ad = getattr(policy, "job_ad", None)
    if machine_ad is None or job_ad is None:
        return None

    def machine(sig: Signature) -> classad2.ClassAd:
        pool, kind, cores, memory = sig
        return machine_ad(spec, pool=None if pool == SHARED else pool, cpus=cores, memory_mib=memory, kind=kind)

    def job(ac: AutoCluster) -> classad2.ClassAd:
        return job_ad(spec, pool=ac.pool, cpus=ac.cpus, memory_mib=ac.memory_mib)

    try:
        # Probe once: if the batch API differs from what the twin expects, keep the fallback ads.
        probe_sig: Signature = (next(iter(spec.pools)), "standalone", 8, 32768)
        m = machine(probe_sig)
        j = job(AutoCluster(0, probe_sig[0], 1, 2048, "probe"))
        if not bool(m.symmetricMatch(j)):
            return None
    except TypeError:
        return None
    return machine, job
