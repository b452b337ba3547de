"""Shared fixtures for the batch tests: the two example specs and ad builders."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree

from enclave.batch import live, policy, render
from enclave.batch.live import Bindings
from enclave.domain.capacity import Startd, StartdKind
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


def negotiator_order(expr: str, groups: dict[str, tuple[float, float]]) -> list[str]:
    """The groups (name -> (GroupResourcesInUse, GroupQuota)) in the order the negotiator takes them: the
    GROUP_SORT_EXPR ``expr`` put in each group's sort ad with the attributes GroupEntry.cpp assigns (as reals:
    AccountingGroup, GroupQuota, GroupResourcesAllocated, GroupResourcesInUse), evaluated with classad2, and the
    groups sorted by the value, ascending (GroupEntry.h ``group_order``; GroupEntry.cpp
    ``hgq_negotiate_with_all_groups``). Each value must be a real: a failed evaluation is a broken expression
    here, not HTCondor's FLT_MAX fallback."""
    keys: dict[str, float] = {}
    for name, (in_use, quota) in groups.items():
        ad = ClassAd({"AccountingGroup": name, "GroupQuota": float(quota), "GroupResourcesAllocated": float(quota),
                      "GroupResourcesInUse": float(in_use)})
        ad["SortExpr"] = ExprTree(expr)
        value = ad.eval("SortExpr")
        assert isinstance(value, float), f"{name}: GROUP_SORT_EXPR gave {value!r}"
        keys[name] = value
    assert len(set(keys.values())) == len(keys), f"ties leave the order to std::sort: {keys}"
    return sorted(groups, key=keys.__getitem__)


# --- The HTCondor daemons, behind stand-ins for the public htcondor2 API -----------------------------------
# The adapter (enclave.batch.live.HTCondorBatch) takes the bindings it calls as a ``Bindings``; these stand-ins
# replace htcondor2.Collector, Schedd, Startd, RemoteParam and send_command with the same signatures
# (test_live.test_the_stand_ins_have_the_bindings_signatures checks them against the installed htcondor2), answer
# from ClassAds built by the policy module, evaluate constraints with classad2, and fail loudly on any method
# they do not implement. Nothing of htcondor2 is patched.

VERSION = "$CondorVersion: 25.14.1 $"


@dataclass
class FakeStartd:
    startd: Startd
    address: str
    runtime: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    since: int = 0
    late: int = 0
    """Requests sent to the startd itself that reach it before the reconfig its master forwards (master.cpp,
    ``main_config``: the master re-reads its own config, then ``ReconfigAllDaemons``)."""
    forwarded: bool = True
    """Whether the last reconfig has reached the startd."""
    slots: int = 1
    """Its partitionable slots (NUM_SLOTS_TYPE_<n>): the rendered configs have one, a host set up by hand may have
    more; its cores and memory are split evenly among them, its busy cores go to the first."""

    def request(self) -> None:
        """A request reaches the startd: a forwarded reconfig that is due arrives first."""
        if self.late > 0:
            self.late -= 1
        elif not self.forwarded:
            self.apply()

    def apply(self) -> None:
        """The startd reconfigs: runtime settings take effect (ENABLE_RUNTIME_CONFIG)."""
        self.forwarded = True
        self.runtime.update(self.pending)
        self.pending.clear()
        if render.POOL_KNOB in self.runtime:
            self.startd = replace(self.startd, pool=self.runtime[render.POOL_KNOB])
        self.since = int(self.runtime.get(render.SINCE_KNOB, self.since))

    def published(self, knob: str, attr: str) -> ClassAd:
        """The attribute the startd publishes for a knob (STARTD_ATTRS), from its applied configuration."""
        return ClassAd({attr: ExprTree(self.runtime.get(knob, render.NO_DEADLINE))})


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
    fail: str | None = None
    masters: bool = True
    """Whether each startd host's condor_master advertises itself."""
    lost_replies: int = 0
    """How many answers to accepted drains are lost on the way back (a timeout, a dropped connection): the startd
    drains, the caller gets the bindings' error."""
    reconfig_late: int = 0
    """How many requests to a startd reach it before the reconfig its master forwards (``FakeStartd.late``)."""
    dynamic: list[ClassAd] = field(default_factory=list)
    """Dynamic slots' ads (one per running job, ``run_job``), listed by the collector beside the partitionable
    slots."""
    generic: dict[tuple[str, str], ClassAd] = field(default_factory=dict)
    """Ads sent with UPDATE_AD_GENERIC, filed by MyType and keyed by Name (``FakeCollector.advertise``)."""
    heard_at: int = 1_700_000_600
    """The collector's clock, which stamps each ad it takes as LastHeardFrom."""
    collector_started: int = 1_700_000_000
    collector_age: int | None = 600
    """How long the collector had run when it last sampled itself; None: not sampled yet."""
    collector_forwarded: bool = False
    """The ad came through another collector (HA, a view collector), with DaemonStartTime."""
    """The collector's own ad's DaemonStartTime (HTCondor manual, "Collector ClassAd Attributes"): 2023, before any
    test's clock."""

    def slot_ad(self, fs: FakeStartd) -> ClassAd:
        return self.slot_ads(fs)[0]

    def slot_ads(self, fs: FakeStartd) -> list[ClassAd]:
        """The partitionable slots' ads the startd advertises: ``slot<n>@<host>``, each with its share (HTCondor
        manual, "Machine ClassAd Attributes": TotalSlotCpus and TotalSlotMemory are the slot's; every slot
        carries the startd's STARTD_ATTRS and its Draining)."""
        s, n = fs.startd, fs.slots
        ads = []
        for i in range(n):
            cores, memory = s.cores // n, s.memory_mib // n
            first = i == 0
            share = replace(s, cores=cores, memory_mib=memory, busy_cores=min(s.busy_cores, cores) if first else 0,
                            busy_memory_mib=min(s.busy_memory_mib, memory) if first else 0)
            ad = policy.machine_ad(self.spec, share)
            ad["Name"] = f"slot{i + 1}@{s.name}"
            ad["MyAddress"] = fs.address
            ad["CondorVersion"] = VERSION
            ad["Draining"] = fs.draining
            ad["EnclavePoolSince"] = fs.since
            ads.append(ad)
        return ads

    def schedd_ad(self, name: str) -> ClassAd:
        # The rendered SCHEDD_NAME has no @: HTCondor appends its host's fully qualified name (manual, MASTER_NAME;
        # get_daemon_name.cpp, build_valid_daemon_name), here the schedd pod's or the submit host's own.
        return ClassAd({"MyType": "Scheduler", "Name": f"{name}@{name.split('.')[0]}-0.local",
                        "MyAddress": f"<10.0.0.{len(name)}:9618?name={name}>", "CondorVersion": VERSION})

    def master_ad(self, name: str, fs: FakeStartd) -> ClassAd:
        # Every daemon's ad names its host (Machine); a master's Name is the host's, or user@host when it does not
        # run as root (manual, MASTER_NAME), as in a rootless container.
        return ClassAd({"MyType": "DaemonMaster", "Name": f"condor@{name}", "Machine": name,
                        "MyAddress": self.master_address(fs), "CondorVersion": VERSION})

    @staticmethod
    def master_address(fs: FakeStartd) -> str:
        return fs.address.replace(":9618>", ":9619>")

    def by_address(self, address: str) -> FakeStartd:
        return next(fs for fs in self.startds.values() if address in (fs.address, self.master_address(fs)))

    def schedd_named(self, address: str) -> str:
        return next(n for n in self.jobs if self.schedd_ad(n)["MyAddress"] == address)

    def run_job(self, startd: str, cores: int, start: int, group: str | None, *, limit: int | None = None,
                running: bool = True) -> None:
        """A job claims a dynamic slot of ``startd``'s partitionable slot: the slot ad the startd advertises for it
        (HTCondor manual, "Machine ClassAd Attributes": DynamicSlot, Cpus, JobStart — undefined while the claim
        runs no job —, RemoteGroup; the startd's STARTD_ATTRS, the pool label among them, and the job's
        STARTD_JOB_ATTRS, AllowedExecuteDuration among them)."""
        fs = self.startds[startd]
        ad = ClassAd({"MyType": "Machine", "Name": f"slot1_{len(self.dynamic) + 1}@{startd}", "Machine": startd,
                      "DynamicSlot": True, "PartitionableSlot": False, "SlotType": "Dynamic", "Cpus": cores,
                      self.spec.batch.pool_attribute: fs.startd.pool})
        if running:
            ad["JobStart"] = start
        if group is not None:
            ad["RemoteGroup"] = group
        if limit is not None:
            ad["AllowedExecuteDuration"] = limit
        self.dynamic.append(ad)

    def ads(self, ad_type: htcondor2.AdType) -> list[ClassAd]:
        if ad_type == htcondor2.AdType.Startd:
            return [ad for fs in self.startds.values() for ad in self.slot_ads(fs)] + self.dynamic
        if ad_type == htcondor2.AdType.Schedd:
            return [self.schedd_ad(n) for n in self.jobs]
        if ad_type == htcondor2.AdType.Master and self.masters:
            return [self.master_ad(n, fs) for n, fs in self.startds.items()]
        if ad_type == htcondor2.AdType.Collector:
            return [self.collector_ad()]
        if ad_type in (htcondor2.AdType.Generic, htcondor2.AdType.Any):
            return list(self.generic.values())
        return []

    def collector_ad(self) -> ClassAd:
        """The collector's own ad as it builds it (collector.cpp: its self-monitoring, ``ExportData``, and no
        DaemonStartTime, which only ``DCCollector::sendUpdate`` adds to the ads daemons send): MonitorSelfTime and
        MonitorSelfAge are -1 until its first sample (self_monitor.cpp, ``SelfMonitorData``)."""
        ad = ClassAd({"MyType": "Collector", "Name": f"My Pool - {self.spec.batch.central_manager}",
                      "MyAddress": "<10.0.0.1:9618>", "CondorVersion": VERSION})
        sampled = self.collector_age is not None
        ad["MonitorSelfTime"] = self.collector_started + self.collector_age if sampled else -1
        ad["MonitorSelfAge"] = self.collector_age if sampled else -1
        if self.collector_forwarded:
            ad["DaemonStartTime"] = self.collector_started
        return ad

    def add(self, s: Startd, address: str) -> None:
        """A startd starts and advertises itself to the collector."""
        self.startds[s.name] = FakeStartd(startd=s, address=address)

    @property
    def bindings(self) -> Bindings:
        bound = {"daemons": self}
        return Bindings(collector=type("Collector", (FakeCollector,), bound),
                        schedd=type("Schedd", (FakeSchedd,), bound),
                        startd=type("Startd", (FakeStartdClient,), bound),
                        remote_param=type("RemoteParam", (FakeRemoteParam,), bound),
                        send_command=self.send_command)

    def send_command(self, ad: ClassAd, dc: htcondor2.DaemonCommand, target: str | None = None) -> None:
        # htcondor2.send_command takes the daemon type from the ad's MyType, and refuses an ad without it or without
        # MyAddress before it sends anything (_loose_functions.py): a location from Collector.locate has no MyType.
        if ad.get("MyAddress") is None:
            raise ValueError("Address not available in location ClassAd.")
        if ad.get("MyType") is None:
            raise ValueError("Daemon type not available in location ClassAd.")
        daemon = daemon_type(ad["MyType"])
        self.calls.append(("command", ad["MyAddress"], daemon, dc))
        if dc == htcondor2.DaemonCommand.Reconfig and daemon == htcondor2.DaemonType.Master:
            fs = self.by_address(ad["MyAddress"])
            fs.forwarded, fs.late = False, self.reconfig_late
            if not fs.late:
                fs.apply()


try:  # the real mapping, a private helper: another htcondor2 may name it otherwise
    from htcondor2._loose_functions import _daemon_type_from_ad_type
except ImportError:
    def _daemon_type_from_ad_type(ad_type: htcondor2.AdType) -> htcondor2.DaemonType | None:
        A, D = htcondor2.AdType, htcondor2.DaemonType  # noqa: N806 (the enums' names, shortened)
        return {A.Master: D.Master, A.Startd: D.Startd, A.Schedd: D.Schedd, A.Negotiator: D.Negotiator,
                A.Generic: D.Generic, A.HAD: D.HAD, A.Credd: D.Credd, A.Placementd: D.Credd,
                A.Collector: D.Collector}.get(ad_type)


def daemon_type(my_type: str) -> htcondor2.DaemonType:
    """The daemon ``htcondor2.send_command`` sends to for an ad's MyType, refused as it refuses one
    (.venv/lib/python3.11/site-packages/htcondor2/_loose_functions.py:84-92): a MyType that is no ad type, or an ad
    type that is no daemon's. A slot's "Machine" is the latter: ``AdType.from_MyType`` maps it to AdType.Slot
    (htcondor2/_ad_type.py:88-110, the later of two entries for "Machine"), which names no daemon."""
    ad_type = htcondor2.AdType.from_MyType(my_type)
    if ad_type is None:
        raise ValueError("Unknown daemon type.")
    daemon = _daemon_type_from_ad_type(ad_type)
    if daemon is None:
        raise ValueError("Failed to convert ad type to daemon type.")
    return daemon


class Unfaked:
    """Any attribute a stand-in does not define is a test that reaches past what the fake knows: fail."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"htcondor2.{type(self).__name__}.{name} is not implemented by the fake")


def _location(location: ClassAd | None) -> str:
    # As htcondor2's daemon clients do: a location is a ClassAd carrying the daemon's MyAddress.
    if not isinstance(location, ClassAd):
        raise TypeError("location must be a ClassAd")
    address: str = location["MyAddress"]
    return address


class FakeCollector(Unfaked):
    daemons: Daemons

    def __init__(self, pool: str | ClassAd | list[str] | tuple[str, ...] | None = None,
                 security: object | None = None) -> None:
        self.pool = pool

    def query(self, ad_type: htcondor2.AdType = htcondor2.AdType.Any, constraint: str | None = None,
              projection: list[str] | None = None, statistics: str | None = None) -> list[ClassAd]:
        d = self.daemons
        d.calls.append(("collector_query", int(ad_type), constraint))
        if d.fail == "collector":
            raise htcondor2.HTCondorException("Failed communication with collector")
        where = ExprTree(constraint or "true")
        out = [ad for ad in d.ads(ad_type) if where.eval(ad) is True]
        # The collector returns only the projected attributes.
        return [ClassAd({k: ad[k] for k in projection if k in ad}) for ad in out] if projection else out

    def advertise(self, ad_list: list[ClassAd], command: str = "UPDATE_AD_GENERIC", use_tcp: bool = True) -> None:
        """As the collector takes an UPDATE_AD_GENERIC (collector_engine.cpp ``collect``): an ad without MyType or
        Name is ignored (logged only: "ad has no type", "Could not make hashkey"; hashkey.cpp
        ``makeGenericAdHashKey`` keys it by Name), another replaces the ad of the same MyType and Name, stamped
        LastHeardFrom as it arrives (``CollectorEngine::updateClassAd``). Only the generic command is faked."""
        d = self.daemons
        assert command == "UPDATE_AD_GENERIC", f"Collector.advertise {command} is not implemented by the fake"
        d.calls.append(("collector_advertise", command, len(ad_list)))
        if d.fail == "advertise":
            raise htcondor2.HTCondorException("Failed to send UPDATE_AD_GENERIC to collector")
        for ad in ad_list:
            if isinstance(ad.get("MyType"), str) and isinstance(ad.get("Name"), str):
                stamped = ClassAd(dict(ad.items()))
                stamped["LastHeardFrom"] = d.heard_at
                d.generic[(ad["MyType"], ad["Name"])] = stamped

    def locate(self, daemon_type: htcondor2.DaemonType, name: str | None = None) -> ClassAd | None:
        # htcondor2.Collector.locate: the first ad of that daemon type whose Name matches, else None.
        ad_type = {htcondor2.DaemonType.Schedd: htcondor2.AdType.Schedd,
                   htcondor2.DaemonType.Master: htcondor2.AdType.Master}[daemon_type]
        found = [ad for ad in self.daemons.ads(ad_type) if ad.get("Name") == name]
        # Only the location's attributes come back, MyType not among them (htcondor2 _collector.py, _for_location;
        # the collector sends only what was asked for).
        return ClassAd({k: found[0][k] for k in htcondor2.Collector._for_location if k in found[0]}) if found else None


class FakeSchedd(Unfaked):
    daemons: Daemons

    def __init__(self, location: ClassAd | None = None) -> None:
        self.address = _location(location)

    def query(self, constraint: str | ExprTree = "True", projection: list[str] = [],  # noqa: B006 (the real default)
              callback: Any = None, limit: int = -1,
              opts: htcondor2.QueryOpt = htcondor2.QueryOpt.Default) -> list[ClassAd]:
        d = self.daemons
        d.calls.append(("schedd_query", self.address, str(constraint)))
        where = ExprTree(str(constraint))
        return [ad for ad in d.jobs[d.schedd_named(self.address)] if where.eval(ad) is True]

    def history(self, constraint: str | ExprTree | None = None, projection: list[str] = [],  # noqa: B006
                match: int = -1, since: int | str | ExprTree | None = None) -> list[ClassAd]:
        d = self.daemons
        d.calls.append(("history_query", self.address, constraint, tuple(projection), match, since))
        if d.fail == "history":
            raise htcondor2.HTCondorException("Failed to connect to schedd")
        where = ExprTree(str(constraint or "true"))
        stop = ExprTree(str(since)) if since else None
        found: list[ClassAd] = []
        read = 0
        # As the schedd does: newest first, stop at the first record ``since`` is true of (not returned),
        # or once ``match`` ads matched.
        for ad in d.finished.get(d.schedd_named(self.address), []):
            if stop is not None and stop.eval(ad) is True or 0 <= match <= len(found):
                break
            read += 1
            if where.eval(ad) is True:
                found.append(ad)
        d.scanned.append(read)
        return found


    def act(self, action: htcondor2.JobAction, job_spec: list[str] | str | ExprTree | int,
            reason: str | tuple[str, int] | None = None) -> ClassAd:
        """As the schedd does for condor_rm / condor_hold by constraint: a removed job leaves the queue (JobStatus
        3, then gone), a held one stays with JobStatus 5 and HoldReasonCode 1, "the user put the job on hold"
        (HTCondor manual, "Job ClassAd Attributes"), its HoldReason and HoldReasonSubCode what the schedd was sent.
        The answer carries htcondor2's Total* counts (_schedd.py).

        What reaches the schedd is what htcondor2 25.x sends (_schedd.py ``act``): no reason, "Python-initiated
        action"; a (text, code) tuple, both; a plain str, neither: no reason, and the code as the text "None", which
        the schedd assigns as an expression (dc_schedd.cpp ``actOnJobs``: ``AssignExpr``), an undefined reference."""
        if not isinstance(action, htcondor2.JobAction):
            raise TypeError("action must be a JobAction")  # as htcondor2.Schedd.act
        if not isinstance(job_spec, str | ExprTree) or str(job_spec).replace(".", "").isdigit():
            raise AssertionError("Schedd.act by job id is not implemented by the fake: give a constraint")
        text, code = (("Python-initiated action", None) if reason is None else reason if isinstance(reason, tuple)
                      else (None, None))
        d = self.daemons
        d.calls.append(("act", d.schedd_named(self.address), action, str(job_spec), text))
        if d.fail == "act":
            raise htcondor2.HTCondorException("Failed to connect to schedd")
        where = ExprTree(str(job_spec))
        queue = d.jobs[d.schedd_named(self.address)]
        hit = [ad for ad in queue if where.eval(ad) is True]
        if d.fail == "act-denied":
            return ClassAd({"TotalSuccess": 0, "TotalPermissionDenied": len(hit), "TotalError": 0,
                            "TotalJobAds": len(hit)})
        assert action in (htcondor2.JobAction.Remove, htcondor2.JobAction.Hold), f"{action!r} is not faked"
        for ad in hit:
            if action == htcondor2.JobAction.Remove:
                queue.remove(ad)
            else:
                ad["JobStatus"], ad["HoldReasonCode"] = 5, 1
                if text is not None:
                    ad["HoldReason"] = text
                ad["HoldReasonSubCode"] = ExprTree(str(code))
        return ClassAd({"TotalSuccess": len(hit), "TotalPermissionDenied": 0, "TotalError": 0, "TotalNotFound": 0,
                        "TotalBadStatus": 0, "TotalAlreadyDone": 0, "TotalJobAds": len(hit)})


class FakeStartdClient(Unfaked):
    daemons: Daemons

    def __init__(self, location: ClassAd | None = None) -> None:
        self.address = _location(location)

    def drainJobs(self, drain_type: htcondor2.DrainType = htcondor2.DrainType.Graceful,  # noqa: N802 (real name)
                  on_completion: htcondor2.CompletionType = htcondor2.CompletionType.Nothing,
                  check_expr: str | None = None, start_expr: str | None = None, reason: str | None = None) -> str:
        """``ResMgr::startDraining`` (htcondor/htcondor 7491a14): refused while a drain is in progress
        (DRAINING_ALREADY_IN_PROGRESS), or when the check expression, evaluated against the slot's ad, is not
        true (DRAINING_CHECK_EXPR_FAILED). The bindings raise the same text for any refusal
        (src/python-bindings/htcondor2/startd.cpp)."""
        self.daemons.calls.append(("drain", self.address, int(drain_type), reason, check_expr))
        fs = self.daemons.by_address(self.address)
        fs.request()
        slot = fs.published(render.DRAIN_DUE_KNOB, render.DRAIN_DUE_ATTR)
        if fs.draining or (check_expr is not None and ExprTree(check_expr).eval(slot) is not True):
            raise htcondor2.HTCondorException("Startd failed to start draining jobs.")
        fs.draining = True
        if self.daemons.lost_replies > 0:
            self.daemons.lost_replies -= 1
            raise htcondor2.HTCondorException("Startd failed to start draining jobs.")
        return "drain-request-1"

    def cancelDrainJobs(self, request_id: str | None = None) -> None:  # noqa: N802 (real name)
        self.daemons.calls.append(("cancel", self.address, request_id))
        self.daemons.by_address(self.address).draining = False


class FakeRemoteParam(Unfaked, MutableMapping[str, str]):
    """A startd's runtime configuration: assignments take effect at the next reconfig (ENABLE_RUNTIME_CONFIG)."""

    daemons: Daemons

    def __init__(self, location: ClassAd) -> None:
        self.address = _location(location)
        self.fs = self.daemons.by_address(self.address)

    def __getitem__(self, key: str) -> str:
        return {**self.fs.runtime, **self.fs.pending}[key]

    def __setitem__(self, key: str, value: str) -> None:
        # Checked before anything is sent (htcondor2/_remote_param.py:56-60): the daemon never sees the assignment.
        if not isinstance(key, str):
            raise TypeError("key must be a string")
        if not isinstance(value, str):
            raise TypeError("value must be a string")
        self.daemons.calls.append(("set", self.address, key, value))
        if self.daemons.fail == "config":
            raise htcondor2.HTCondorException('SECMAN:2010:Received "DENIED" from server for user condor')
        self.fs.pending[key] = value

    def __delitem__(self, key: str) -> None:
        raise AssertionError("RemoteParam.__delitem__ is not implemented by the fake")

    def __iter__(self) -> Iterator[str]:
        return iter({**self.fs.runtime, **self.fs.pending})

    def __len__(self) -> int:
        return len({**self.fs.runtime, **self.fs.pending})


@pytest.fixture
def daemons(ldf: EnclaveSpec, monkeypatch: pytest.MonkeyPatch) -> Daemons:
    """The daemons of the LDF pool; adapters built without bindings (the CLI's ``--live``) talk to them too."""
    d = Daemons(spec=ldf)
    counter = itertools.count(1)
    for pool, names in (("prompt", ["condor-001", "condor-002"]), ("drp", ["condor-011"]), ("user", ["kub-003"])):
        for name in names:
            kind = StartdKind.POD if name.startswith("kub") else StartdKind.STANDALONE
            sd = Startd(name=name, node=name, kind=kind, pool=pool, cores=24, memory_mib=131072, busy_cores=4)
            d.add(sd, f"<10.0.1.{next(counter)}:9618>")
    for host in ldf.batch.submit_hosts:
        d.jobs[host] = []
    monkeypatch.setattr(live, "DEFAULT_BINDINGS", d.bindings)
    return d
