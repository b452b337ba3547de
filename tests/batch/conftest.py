"""Shared fixtures for the batch tests: the two example specs and ad builders."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import policy, render
from enclave.broker.model import Startd, StartdKind
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

DEV = "lsst-dev01.ncsa.illinois.edu"
NOTEBOOK_SCHEDD = "schedd.jupyter-lsst.svc"


@pytest.fixture(scope="session")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture(scope="session")
def mini() -> EnclaveSpec:
    return load(EXAMPLES / "minimal.yaml")


def startd(pool: str, *, name: str = "condor-001", cores: int = 24, memory_mib: int = 131072,
           kind: StartdKind = StartdKind.STANDALONE, busy: int = 0) -> Startd:
    return Startd(name=name, node=name, kind=kind, pool=pool, cores=cores, memory_mib=memory_mib, busy_cores=busy)


# --- The HTCondor daemons, replaced at the bindings' C boundary ------------------------------------
# The htcondor2 Python classes (Collector, Schedd, Startd, RemoteParam, send_command) run for real;
# only the functions of htcondor2_impl that would open a socket to a daemon are swapped for these,
# which answer from ClassAds built by the policy module and evaluate constraints with classad2.


@dataclass
class FakeStartd:
    startd: Startd
    address: str
    runtime: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    since: int = 0


@dataclass
class Daemons:
    spec: EnclaveSpec
    startds: dict[str, FakeStartd] = field(default_factory=dict)
    jobs: dict[str, list[ClassAd]] = field(default_factory=dict)
    """schedd name → job ads"""
    finished: dict[str, list[ClassAd]] = field(default_factory=dict)
    """schedd name → its history: ads of jobs that left the queue, most recently finished first"""
    scanned: list[int] = field(default_factory=list)
    """How many history records each history query read before it stopped, in call order."""
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    handles: dict[int, str] = field(default_factory=dict)
    fail: str | None = None

    def slot_ad(self, fs: FakeStartd) -> ClassAd:
        ad = policy.machine_ad(self.spec, fs.startd)
        ad["MyAddress"] = fs.address
        ad["CondorVersion"] = "$CondorVersion: 25.14.1 $"
        ad["Draining"] = fs.draining
        ad["EnclavePoolSince"] = fs.since
        return ad

    def schedd_ad(self, name: str) -> ClassAd:
        return ClassAd({"MyType": "Scheduler", "Name": name, "MyAddress": f"<10.0.0.{len(name)}:9618?name={name}>",
                        "CondorVersion": "$CondorVersion: 25.14.1 $"})

    @staticmethod
    def master_address(fs: FakeStartd) -> str:
        return fs.address.replace(":9618>", ":9619>")

    def by_address(self, address: str) -> FakeStartd:
        return next(fs for fs in self.startds.values() if address in (fs.address, self.master_address(fs)))

    # htcondor2_impl replacements ----------------------------------------------------------------

    def collector_query(self, handle: object, ad_type: int, constraint: str, projection: list[str],
                        statistics: object, name: object) -> list[ClassAd]:
        self.calls.append(("collector_query", ad_type, constraint))
        if self.fail == "collector":
            raise htcondor2.HTCondorException("Failed communication with collector")
        if ad_type == int(htcondor2.AdType.Startd):
            ads = [self.slot_ad(fs) for fs in self.startds.values()]
        elif ad_type == int(htcondor2.AdType.Schedd):
            ads = [self.schedd_ad(n) for n in self.jobs]
        elif ad_type == int(htcondor2.AdType.Master):
            ads = [ClassAd({"MyType": "DaemonMaster", "Name": n, "MyAddress": self.master_address(fs),
                            "CondorVersion": "$CondorVersion: 25.14.1 $"}) for n, fs in self.startds.items()]
        else:
            ads = []
        where = ExprTree(constraint or "true")
        out = [ad for ad in ads if where.eval(ad) is True]
        for ad in out:
            self.handles[id(ad._handle)] = ad["MyAddress"]
        return out

    def schedd_query(self, addr: str, constraint: str, projection: list[str], limit: int, opts: int) -> list[ClassAd]:
        self.calls.append(("schedd_query", addr, constraint))
        name = addr.split("name=")[1].rstrip(">")
        where = ExprTree(constraint)
        return [ad for ad in self.jobs[name] if where.eval(ad) is True]

    def history_query(self, addr: str, constraint: str, projection: str, match: int, since: str, ad_type: str,
                      src: int, command: int) -> list[ClassAd]:
        self.calls.append(("history_query", addr, constraint, projection, match, since))
        if self.fail == "history":
            raise htcondor2.HTCondorException("Failed to connect to schedd")
        name = addr.split("name=")[1].rstrip(">")
        where = ExprTree(constraint or "true")
        stop = ExprTree(since) if since else None
        found: list[ClassAd] = []
        read = 0
        # As the schedd does: newest first, stop at the first record ``since`` is true of (not returned),
        # or once ``match`` ads matched.
        for ad in self.finished.get(name, []):
            if stop is not None and stop.eval(ad) is True or 0 <= match <= len(found):
                break
            read += 1
            if where.eval(ad) is True:
                found.append(ad)
        self.scanned.append(read)
        return found

    def remote_param_keys(self, handle: object) -> str:
        return ",".join([render.POOL_KNOB, render.SINCE_KNOB, render.RETIREMENT_KNOB])

    def remote_param_get(self, handle: object, key: str) -> str:
        return self.by_address(self.handles[id(handle)]).runtime.get(key, "")

    def remote_param_set(self, handle: object, key: str, value: str) -> None:
        address = self.handles[id(handle)]
        self.calls.append(("set", address, key, value))
        if self.fail == "config":
            raise htcondor2.HTCondorException("SECMAN:2010:Received \"DENIED\" from server for user condor")
        self.by_address(address).pending[key] = value

    def send_command(self, handle: object, daemon_type: object, command: object, target: object) -> None:
        address = self.handles[id(handle)]
        self.calls.append(("command", address, daemon_type, command))
        if command == htcondor2.DaemonCommand.Reconfig and daemon_type == htcondor2.DaemonType.Master:
            fs = self.by_address(address)
            fs.runtime.update(fs.pending)
            fs.pending.clear()
            if render.POOL_KNOB in fs.runtime:
                fs.startd = Startd(**{**fs.startd.__dict__, "pool": fs.runtime[render.POOL_KNOB]})
            fs.since = int(fs.runtime.get(render.SINCE_KNOB, fs.since))

    def drain_jobs(self, addr: str, drain_type: int, on_completion: int, check_expr: object, start_expr: object,
                   reason: object) -> str:
        self.calls.append(("drain", addr, drain_type, reason))
        self.by_address(addr).draining = True
        return "drain-request-1"


@pytest.fixture
def daemons(ldf: EnclaveSpec, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemons]:
    d = Daemons(spec=ldf)
    counter = itertools.count(1)
    for pool, names in (("prompt", ["condor-001", "condor-002"]), ("drp", ["condor-011"]), ("user", ["kub-003"])):
        for name in names:
            kind = StartdKind.POD if name.startswith("kub") else StartdKind.STANDALONE
            sd = Startd(name=name, node=name, kind=kind, pool=pool, cores=24, memory_mib=131072, busy_cores=4)
            d.startds[name] = FakeStartd(startd=sd, address=f"<10.0.1.{next(counter)}:9618>")
    for host in ldf.batch.submit_hosts:
        d.jobs[host] = []
    monkeypatch.setattr(htcondor2._collector, "_collector_query", d.collector_query)
    monkeypatch.setattr(htcondor2._schedd, "_schedd_query", d.schedd_query)
    monkeypatch.setattr(htcondor2._schedd, "_history_query", d.history_query)
    monkeypatch.setattr(htcondor2._remote_param, "_remote_param_keys", d.remote_param_keys)
    monkeypatch.setattr(htcondor2._remote_param, "_remote_param_get", d.remote_param_get)
    monkeypatch.setattr(htcondor2._remote_param, "_remote_param_set", d.remote_param_set)
    monkeypatch.setattr(htcondor2._loose_functions, "_send_command", d.send_command)
    monkeypatch.setattr(htcondor2._startd, "_startd_drain_jobs", d.drain_jobs)
    yield d
