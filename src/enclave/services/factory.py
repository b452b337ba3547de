"""The composition root: one place that builds enclave's services and backends, for the CLI, the API and the
broker loop alike (as lsst-sqre/gafaelfawr's ``Factory`` does). Front ends never open a database, a Kubernetes
client or an HTCondor collector themselves; they ask the factory for a service.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from enclave.accounts.homes import Provisioned
from enclave.accounts.types import AccountView
from enclave.broker.decide import BROKER_ACTOR
from enclave.db import Database
from enclave.domain.capacity import Backend
from enclave.logs import event, logger
from enclave.services.accounts import AccountService, ServiceAccount
from enclave.services.batch import BatchService
from enclave.services.broker import BrokerService
from enclave.services.images import ImageService
from enclave.services.journal import JournalService
from enclave.services.logs import LogService
from enclave.services.notebooks import NotebookService
from enclave.services.ops import BackupService, RenderService, SecurityService, UpgradeService
from enclave.services.reach import ReachService, Systems
from enclave.services.schedule import ScheduleService
from enclave.services.tokens import TokenService
from enclave.services.twin import TwinRunService
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, Role
from enclave.twin.backend import TwinBackend

if TYPE_CHECKING:  # the Kubernetes client is imported only when a live backend is made
    from enclave.batch.live import HTCondorBatch
    from enclave.cluster.kube import KubeCluster
    from enclave.domain.logs import LogSource

_migrated: set[str] = set()

BOOTSTRAP_ADMIN = "admin"

_log = logger("services")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


Missing = Literal["create", "refuse", "empty"]
"""What opening a database that is not there does: ``create`` it (and migrate it; the commands whose job that is:
``accounts bootstrap``, ``db migrate``, ``serve``), ``refuse`` (``Database(create=False)``: NotFound at its first
use, and an existing one behind this enclave's schema is not migrated either), or answer as an ``empty`` new
enclave's would, from a throw-away in-memory one (commands on nobody's state, e.g. ``render deploy`` before the
enclave's database exists, docs/deploy.md step 1). Neither of the last two leaves a file behind: a client host never
grows an empty database by accident (docs/accounts.md; audit of identity and trust, finding 5)."""


def open_database(url: str | None = None, *, missing: Missing = "create") -> Database:
    """The database named by ``url``, $ENCLAVE_DB or the default SQLite file; ``missing`` says what happens when it
    is not there. A created one is migrated to the newest schema (once per process). $ENCLAVE_JOURNAL_KEY and
    $ENCLAVE_JOURNAL_ANCHOR place the journal's key and anchor files (default: beside a SQLite file), e.g. on a
    volume the database's writers cannot reach."""
    db = Database(url, journal_key=_env_path("ENCLAVE_JOURNAL_KEY"),
                  journal_anchor=_env_path("ENCLAVE_JOURNAL_ANCHOR"), create=missing == "create")
    if missing == "empty" and db.missing_file():
        db.dispose()
        db = Database("sqlite://")
        db.migrate()
    elif missing == "create" and db.url not in _migrated:
        db.migrate()
        _migrated.add(db.url)
    return db


LEASE_SECONDS = 90
"""The shortest Lease the broker takes (``lease_seconds``)."""


def lease_seconds(cycle_seconds: float) -> int:
    """The Lease duration for a loop that renews once per cycle of ``cycle_seconds`` (the spec's
    ``broker.cycle_seconds``, the period of `serve --live` and `broker run`): three cycles, at least
    ``LEASE_SECONDS``, so a leader renews well within its lease — client-go's rule that the renew deadline and
    retry period stay well under ``leaseDurationSeconds`` (tools/leaderelection/leaderelection.go,
    ``NewLeaderElector``: "leaseDuration must be greater than renewDeadline"); with the default 60 s cycle 180 s,
    and a leader also renews before each action of a cycle (``cluster.lease``)."""
    return max(LEASE_SECONDS, math.ceil(3 * cycle_seconds))


@dataclass
class Factory:
    spec: EnclaveSpec
    db: Database
    spec_path: Path | None = None
    """Where the spec came from; None: the embedded default."""
    _brokers: dict[str, BrokerService] = field(default_factory=dict)
    _lease: Callable[[], bool] | None = None
    """Set by ``live_backend`` when running as a pod of the commons: leadership by a Kubernetes Lease."""
    systems: Systems = field(default_factory=Systems)
    """The running systems account transitions reach from here (``enclave.services.reach``): none unless
    ``live_backend`` or ``use_live_systems`` configured them (or a caller set the twin's)."""
    _log_source: tuple[LogSource, bool] | None = None
    """Where pod logs are read (and whether reads are journaled): set by ``live_backend``, ``use_live_logs``,
    ``use_twin_logs``."""
    _kube: KubeCluster | None = None
    """The live cluster adapter (``KubeCluster``) once ``live_backend`` made it, for home provisioning."""
    _closing: ExitStack = field(default_factory=ExitStack)
    """What ``close`` releases: the scratch stores of twin brokers."""

    @classmethod
    @contextmanager
    def standalone(cls, spec_path: Path | None = None, db_url: str | None = None, *,
                   missing: Missing = "refuse") -> Iterator[Factory]:
        """A factory for one CLI command: the spec (default the embedded LDF spec) and the database (``missing``:
        what to do where there is none, ``open_database``), closed when the command ends."""
        spec = load(spec_path or default_spec_path())
        db = open_database(db_url, missing=missing)
        factory = cls(spec, db, spec_path)
        try:
            yield factory
        finally:
            factory.close()
            db.dispose()

    def close(self) -> None:
        """Remove the scratch stores this factory made (``twin_broker``)."""
        self._closing.close()

    @classmethod
    @contextmanager
    def scratch(cls, spec: EnclaveSpec, mirror: dict[str, list[Role]] | None = None) -> Iterator[Factory]:
        """A throw-away database for a simulated enclave: its own admin and broker account and journal, so
        nothing simulated ever enters the real journal. ``mirror``: accounts to create in it with these roles
        (the real roles of whoever acts on the twin, so the twin refuses what the enclave would refuse)."""
        with tempfile.TemporaryDirectory(prefix="enclave-twin-") as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'twin.db'}")
            db.migrate()
            factory = cls(spec, db)
            factory.ensure_accounts()
            for username, roles in (mirror or {}).items():
                factory.accounts.ensure_service_account(
                    BOOTSTRAP_ADMIN, username, name=f"{username} (mirrored into the twin)", roles=roles,
                    reason="mirrors the roles this account holds in the enclave")
            try:
                yield factory
            finally:
                db.dispose()

    # --- services ------------------------------------------------------------------------------------------

    @cached_property
    def accounts(self) -> AccountService:
        return AccountService(self.db, self.spec, ReachService(self.db, self.systems), remote_homes=self._remote_home)

    def _remote_home(self, account: AccountView) -> Provisioned | None:
        """Provision through the live cluster when this process drives one (``live_backend``): the API pods in
        the commons, which do not mount the homes. None elsewhere."""
        return self._kube.provision_home(account) if self._kube is not None else None

    @property
    def logs(self) -> LogService:
        source, journaled = self._log_source or (None, True)
        return LogService(self.db, self.spec, source, journaled)

    @cached_property
    def tokens(self) -> TokenService:
        return TokenService(self.db)

    @cached_property
    def journal(self) -> JournalService:
        return JournalService(self.db)

    @cached_property
    def images(self) -> ImageService:
        return ImageService(self.db, self.spec)

    @cached_property
    def schedules(self) -> ScheduleService:
        return ScheduleService(self.db, instrument=self.spec.broker.prewarm_instrument)

    @cached_property
    def notebooks(self) -> NotebookService:
        return NotebookService(self.db, self.spec, self.images)

    @cached_property
    def renders(self) -> RenderService:
        return RenderService(self.db, self.spec, self.images)

    @cached_property
    def security(self) -> SecurityService:
        return SecurityService(self.spec, self.renders)

    @cached_property
    def upgrades(self) -> UpgradeService:
        return UpgradeService(self.spec, self.renders)

    @cached_property
    def backups(self) -> BackupService:
        return BackupService(self.db, self.spec)

    @cached_property
    def batch(self) -> BatchService:
        return BatchService(self.spec)

    @cached_property
    def twin_runs(self) -> TwinRunService:
        return TwinRunService(self.spec)

    @cached_property
    def broker_leadership(self) -> Callable[[], bool]:
        """Whether this process may run the broker loop now: on a live enclave the Kubernetes Lease every process
        driving it takes (``_broker_lease``); else a PostgreSQL advisory lock shared by every replica on this
        database (enclave.db.leader), always True on SQLite."""
        from enclave.db.leader import LeaderLock

        advisory = LeaderLock(self.db.engine, "broker-loop").held
        # A live backend's Lease decides; a twin's replicas share the advisory lock.
        return lambda: self._lease() if self._lease is not None else advisory()

    def broker(self, backend: Backend, where: str, *, drives: bool = False) -> BrokerService:
        """The broker service over ``backend`` (one per backend, so its lock serialises every caller). ``drives``:
        nothing else moves the backend's clock (a command's own twin), so the broker's waits advance it
        (``BrokerService.sleep``) instead of waiting real time for a clock that would not move."""
        key = f"{where}:{id(backend)}"
        if key not in self._brokers:
            broker = BrokerService(self.spec, self.db, backend, where, schedule=self.schedules.current)
            if drives:
                broker.sleep = backend.advance
            self._brokers[key] = broker
        return self._brokers[key]

    def twin_broker(self, twin: Backend, where: str) -> BrokerService:
        """The broker service over a twin of this enclave run by a serving process: it journals in a scratch
        store of its own (``scratch``), removed by ``close``, so nothing simulated enters this database's
        journal (issue 16); each actor's permission is still checked here, so a person acts on the twin with
        the roles they hold in the enclave and the broker with its service account's."""
        key = f"{where}:{id(twin)}"
        if key not in self._brokers:
            store = self._closing.enter_context(Factory.scratch(self.spec))
            self._brokers[key] = BrokerService(self.spec, store.db, twin, where, roles=self.db,
                                               schedule=self.schedules.current)
        return self._brokers[key]

    # --- backends ------------------------------------------------------------------------------------------

    def twin_backend(self, scenario: str, at_hours: float = 0.0) -> TwinBackend:
        """A fresh twin of the spec loaded with ``scenario``, run ``at_hours`` forward. "static" lays capacity
        out as the rendered configs do and makes no moves of its own: whoever holds the backend drives it."""
        twin = TwinBackend.from_scenario(scenario, spec=self.spec, policy="static")
        if at_hours:
            twin.advance(at_hours * 3600)
        return twin

    @staticmethod
    def live_configured() -> bool:
        """Is a live enclave configured here? The credentials ``live_backend`` would use: in-cluster (the
        KUBERNETES_SERVICE_HOST the kubelet sets, kubernetes client ``config/incluster_config.py``), $KUBECONFIG,
        or ~/.kube/config (``KUBE_CONFIG_DEFAULT_LOCATION``, ``config/kube_config.py``)."""
        return bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG")
                    or (Path.home() / ".kube" / "config").exists())

    def live_backend(self, *, kubeconfig: Path | None = None, collector: str | None = None) -> Backend:
        """Kubernetes through the official client (``kubeconfig``, else in-cluster or $KUBECONFIG) and HTCondor
        through the bindings (``collector``, else the spec's central manager)."""
        import htcondor2

        from enclave.batch.live import HTCondorBatch
        from enclave.cluster.kube import KubeCluster
        from enclave.cluster.live import LiveBackend

        kube = KubeCluster.connect(self.spec, kubeconfig)
        self._kube = kube
        _say_what_htcondor_refuses(self.spec)
        batch = HTCondorBatch(self.spec, collector=htcondor2.Collector(collector) if collector else None)
        self.use_live_systems(batch, kube)
        self._log_source = (kube, True)
        self._lease = _broker_lease(kube)

        return LiveBackend(self.spec, kube, batch)

    def use_live_systems(self, batch: HTCondorBatch | None = None, kube: KubeCluster | None = None) -> None:
        """Account transitions reach the live cluster's RBAC (the person's RoleBindings), the live schedds (through
        the bindings, every schedd the spec names) and JupyterHub when $ENCLAVE_HUB_URL and $ENCLAVE_HUB_TOKEN name
        it; ``batch``, ``kube``: the adapters to use, else one on the spec's central manager and one on this host's
        Kubernetes credentials — none where there are none (``live_configured``): the step is then not configured,
        as the hub's is without its variables."""
        from enclave.batch.live import HTCondorBatch, HTCondorJobs
        from enclave.cluster.kube import KubeCluster
        from enclave.notebooks.hubapi import HubAdmin

        self.systems.jobs = HTCondorJobs(batch or HTCondorBatch(self.spec))
        self.systems.hub = HubAdmin.from_env()
        self.systems.cluster = kube or (KubeCluster.connect(self.spec) if self.live_configured() else None)

    def use_live_logs(self) -> None:
        """Pod logs from the cluster through the official client (in-cluster or kubeconfig credentials)."""
        from enclave.cluster.kube import KubeCluster

        self._log_source = (KubeCluster.connect(self.spec), True)

    def use_twin_logs(self, twin: TwinBackend) -> None:
        """Pod logs from ``twin``'s simulated pods; reads are checked but not journaled (nothing simulated enters
        the enclave's journal)."""
        from enclave.twin.logs import TwinLogs

        self._log_source = (TwinLogs(twin.sim), False)

    # --- a fresh database ----------------------------------------------------------------------------------

    def ensure_accounts(self, admin: str = BOOTSTRAP_ADMIN, *, ttl_seconds: int = 7 * 86400) -> str | None:
        """Make a fresh database usable: bootstrap ``admin`` on an empty one, make sure the broker's own
        account exists (staff; htcondor-admin + k8s-service-admin: BCS 1–5 need both), and return a token for
        ``admin`` only when it was bootstrapped now. The bootstrap token is made once, with the database, in the
        same transaction as the admin (``AccountService.ensure_enclave``): the process that creates the admin is
        the one that returns its token, and none creates it without one. A restart mints nothing (the operator
        issues further tokens with ``enclave tokens issue``)."""
        _, token = self.accounts.ensure_enclave(
            admin, ServiceAccount(BROKER_ACTOR, "Capacity broker (service account)",
                                  (Role.HTCONDOR_ADMIN, Role.K8S_SERVICE_ADMIN),
                                  "the broker acts as this account: BCS 1–5 need htcondor-admin and "
                                  "k8s-service-admin"),
            token_ttl_seconds=ttl_seconds, token_reason="enclave serve: bootstrap token")
        return token


def _say_what_htcondor_refuses(spec: EnclaveSpec) -> None:
    """Log, as the live broker starts in its pod, each of its HTCondor tokens HTCondor would not present or not
    honour (``credentials.presented``): a drain or a hold then fails with nothing on this side but "permission
    denied". Only in the deployed pods (``deploy.HTCONDOR_TOKENS``): elsewhere the tokens have the names their
    owner gave them. A check that fails is a warning, never the end of the broker."""
    from enclave.cluster import credentials
    from enclave.cluster.deploy import HTCONDOR_TOKENS

    if os.environ.get("_CONDOR_SEC_TOKEN_DIRECTORY") != HTCONDOR_TOKENS or not Path(HTCONDOR_TOKENS).is_dir():
        return
    try:
        findings = credentials.presented(spec, Path(HTCONDOR_TOKENS), time.time())
    except Exception as exc:  # noqa: BLE001 - a check, not a precondition
        event(_log, logging.WARNING, "HTCondor tokens not checked", error=str(exc))
        return
    for finding in findings:
        for problem in finding.problems:
            event(_log, logging.ERROR, "HTCondor token refused", file=finding.file, to=finding.presented_to,
                  problem=problem, fix="mint it again as docs/deploy.md step 6 says; check with "
                                       "`enclave security credentials`")


def _broker_lease(kube: KubeCluster) -> Callable[[], bool]:
    """Who may run the broker loop on a live enclave: the Kubernetes Lease every process driving it takes — the
    serving replicas (their namespace from the downward API of the Deployment `enclave render deploy` writes) and
    `enclave broker run` from a workstation alike (review: the command took a database lock the replicas never
    ask for, and led beside them). Each process is its own candidate, named as kube-controller-manager names
    its own (its host name, "_", a new UUID: cmd/kube-controller-manager/app/controllermanager.go): a command
    run inside a replica's pod shares its POD_NAME and would otherwise renew the replica's Lease as its own."""
    import socket
    import uuid

    from enclave.cluster.deploy import LEASE_NAME, NAMESPACE
    from enclave.cluster.lease import LeaseLock
    from enclave.cluster.objects import LEASE_API_SINCE

    who = os.environ.get("POD_NAME") or socket.gethostname()
    return LeaseLock(kube.api, namespace=os.environ.get("POD_NAMESPACE") or NAMESPACE, name=LEASE_NAME,
                     identity=f"{who}_{uuid.uuid4()}", duration_s=lease_seconds(kube.spec.broker.cycle_seconds),
                     lease_api=kube.spec.cluster.serves(*LEASE_API_SINCE)).held
