"""Operations (seed §8–10, §12, §14): everything enclave renders, the security benchmark, the upgrade plan and
control-plane backups.

``RenderService`` names every renderer explicitly: ``render all`` (seed §12 option 1), the security report
and the upgrade planner's removed-API scan all read the same rendered objects, from the database this service
was built on — never from a process-wide environment variable.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from enclave import journal
from enclave.access.permissions import Permission
from enclave.access.render import Narrowed, narrowed, render_access, write_yaml
from enclave.accounts import storage as account_storage
from enclave.accounts.authorize import require
from enclave.batch import render as condor
from enclave.cluster import credentials, deploy
from enclave.db import Database
from enclave.errors import EnclaveError, InputError, NotFound, Problem
from enclave.notebooks import profiles
from enclave.notebooks.options import spec_vetter
from enclave.ops import backup as backups
from enclave.ops import backup_catalog as catalog
from enclave.ops import security
from enclave.ops.admission import render_admission, validate_policy
from enclave.ops.etcd import (
    PLAIN_LOCAL_ETCD_BEFORE,
    Etcdctl,
    Member,
    MemberRestore,
    kubeadm_plain_member,
    plain_local_restore_plan,
    restore_plan,
    restored_token,
)
from enclave.ops.images import pinner
from enclave.ops.manifests import Located, load_manifests
from enclave.ops.notebook_pods import pods_in
from enclave.ops.removed_apis import ApiFinding, scan
from enclave.ops.upgrade import Components, Plan, components_from_spec, plan_upgrade
from enclave.ops.versions import Version
from enclave.outdir import output_dir
from enclave.services.images import ImageService
from enclave.spec.document import read_text
from enclave.spec.load import dump
from enclave.spec.models import EnclaveSpec, NodeRole


@dataclass(frozen=True)
class Rendered:
    name: str
    directory: Path
    ok: bool
    detail: str = ""
    files: tuple[Path, ...] = ()


@dataclass
class RenderService:
    db: Database
    spec: EnclaveSpec
    images: ImageService

    def access(self, out: Path, *, for_apply: bool = False) -> tuple[list[Path], int, list[Narrowed]]:
        """Namespaces, RoleBindings, NetworkPolicies, ResourceQuota, LimitRange: one YAML file per namespace.
        Returns the files, the number of objects and the bindings narrowed below what the subjects' roles give
        elsewhere (``access.render.cluster_role``: a developer in the notebook namespace while batch tokens are on),
        for the operator to see. ``for_apply`` (`enclave render access`, whose files are applied
        with ``kubectl apply --prune``, docs/accounts.md): refuse a database without accounts, whose files bind
        nobody, so that applying them would delete every binding enclave manages (audit, finding 5)."""
        room = profiles.service_room(self.spec, self._notebook_images()[0])  # its own session, before this one
        with self.db.session() as session:
            subjects = account_storage.subjects(session)
        if for_apply and not subjects:
            raise NotFound(f"the enclave database {self.db.safe_url} has no accounts: its RoleBindings would bind "
                           "nobody, and `kubectl apply --prune` of them would delete every binding enclave manages",
                           where="database ($ENCLAVE_DB, else $ENCLAVE_HOME/enclave.db)",
                           fix="render on the server host, from the enclave's own database (set $ENCLAVE_DB or "
                               "$ENCLAVE_HOME to it); a new enclave starts with `enclave accounts bootstrap`")
        objects = render_access(self.spec, subjects, room)
        return write_yaml(objects, out), sum(len(v) for v in objects.values()), narrowed(objects)

    def condor(self, out: Path, *, members: Mapping[str, Sequence[str]] | None = None,
               config_dir: str = condor.DEFAULT_CONFIG_DIR) -> list[tuple[condor.Rendered, Path]]:
        files = condor.render_all(self.spec, members=members, config_dir=config_dir)
        return list(zip(files, condor.write(files, out), strict=True))

    def notebooks(self, out: Path) -> list[Path]:
        return profiles.render(self.spec, out, *self._notebook_images())

    def _notebook_images(self) -> tuple[Callable[[str], bool] | None, Callable[[str], str | None] | None]:
        """(vetted, pin) for the values under vetting: the approved images alone, written with their digests, so
        what the chart runs without the hook (the default image, the pre-pullers) passes admission; the same
        choice of images sizes the notebook quota's room for the pullers (``access``)."""
        if not self.spec.registry.vetting_required:
            return None, None
        approved = self.images.approved(self.spec.registry.host)
        pin = pinner(approved)
        listed = spec_vetter(self.spec)
        return (lambda image: listed(image) and pin(image) is not None), pin

    def admission(self, out: Path) -> tuple[Path, int]:
        """Kyverno ClusterPolicy admitting only approved image digests (validated against its schema)."""
        objects = render_admission(self.spec, self.images.approved(self.spec.registry.host))
        for obj in objects:
            validate_policy(obj)
        output_dir(out)
        path = out / "kyverno-vetted-images.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        return path, int(objects[0]["metadata"]["annotations"]["enclave.lsst.io/approved-digests"])

    def deploy(self, out: Path) -> list[Path]:
        """What runs enclave itself in the commons: image definition, namespaces, service accounts, least-
        privilege RBAC, Deployments, Services, PodDisruptionBudget, ConfigMaps, kustomization (docs/deploy.md)."""
        pinned = pinner(self.images.approved(self.spec.registry.host))(deploy.image(self.spec))
        return deploy.write(self.spec, dump(self.spec), out, pinned, hub_ref=profiles.hub_build_ref(self.spec))

    def everything(self, out: Path) -> list[Rendered]:
        """Every renderer into its own sub-directory of ``out`` (seed §12 option 1: rebuild from the spec)."""
        renderers: dict[str, Callable[[Path], object]] = {
            "access": self.access, "admission": self.admission, "condor": self.condor, "notebooks": self.notebooks,
            "deploy": self.deploy,
        }
        results = []
        for name, fn in renderers.items():
            target = out / name
            try:
                fn(target)
            except EnclaveError as exc:
                results.append(Rendered(name, target, False, str(exc)))
                continue
            results.append(Rendered(name, target, True, self._caveat(name)))
        return results

    def _caveat(self, name: str) -> str:
        """What a successful rendering still leaves open, said where the operator sees it."""
        if name == "admission" and self.spec.registry.vetting_required:
            missing = sorted(set(deploy.SYSTEM_IMAGES) - set(self.spec.registry.system_images))
            if missing:
                return (f"registry.system_images lacks {', '.join(missing)}: those pods of enclave's own are "
                        "refused until pinned by digest")
        if name == "notebooks" and self.spec.registry.vetting_required:
            missing = profiles.unpinned_chart_images(self.spec)
            if missing:
                return (f"registry.system_images lacks {', '.join(missing)}: the JupyterHub chart's own pods of "
                        "those images are refused until mirrored into the registry and pinned by digest")
        return ""

    @contextmanager
    def objects(self, skipped: list[str] | None = None) -> Iterator[tuple[list[Located], list[Rendered]]]:
        """Everything rendered, as Kubernetes objects, plus the notebook pods KubeSpawner would start from the
        rendered JupyterHub values (images pinned as the pre-spawn hook pins them)."""
        pin = pinner(self.images.approved(self.spec.registry.host)) if self.spec.registry.vetting_required else None
        with tempfile.TemporaryDirectory(prefix="enclave-render-") as tmp:
            results = self.everything(Path(tmp))
            dirs = [r.directory for r in results if r.ok and r.directory.exists()]
            pods = pods_in(dirs, self.spec.notebooks.namespace, pin, skipped)
            yield load_manifests(dirs, strict=False) + pods, results


def security_params(spec: EnclaveSpec) -> dict[str, str]:
    """Values the check definitions may refer to as {name}."""
    return {"registry": spec.registry.host, "home_root": spec.storage.home_root.rstrip("/")}


@dataclass
class SecurityService:
    spec: EnclaveSpec
    renders: RenderService
    ttl_seconds: float = 300.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[tuple[str, ...], tuple[float, security.Report, list[str]]] = field(default_factory=dict)

    def check(self, *, checks: Path | None = None, only: Sequence[str] = (), node: Path | None = None,
              kubelet_config: Path | None = None, kubelet_flags: Sequence[Path] = (),
              manifests: Sequence[Path] = (), rendered: bool = False,
              notes: list[str] | None = None, benchmark: str | None = None) -> security.Report:
        """The benchmark on a node's files, manifests and (``rendered`` or when nothing else is given)
        enclave's own rendered objects, under the CIS benchmark kube-bench would choose for the cluster's release
        (or ``benchmark``). Files skipped in a manifest directory are named in ``notes``."""
        version, defs, _ = (security.parse_benchmark(read_text(checks), str(checks)) if checks
                                else security.shipped_benchmark())
        if only:
            unknown = sorted(set(only) - {c.id for c in defs})
            if unknown:
                raise InputError([Problem("--only", f"unknown check id {unknown[0]}", "see `enclave security list`")])
            defs = tuple(c for c in defs if c.id in only)
        node_cfg = security.load_node_dir(node, kubelet_config, kubelet_flags, notes) if node else None
        objects: list[Located] = load_manifests(manifests, notes=notes) if manifests else []
        if rendered or (node is None and not manifests):
            objects += self._own(notes)
        # The node's own version (its API server image tag) decides version-bound items; else the spec's.
        kube = (node_cfg.version if node_cfg and node_cfg.version
                else Version.parse(self.spec.cluster.kubernetes_version, where="cluster.kubernetes_version"))
        return security.run(defs, node=node_cfg, objects=objects, params=security_params(self.spec),
                            data_version=version, benchmark=benchmark, version=kube)

    def credentials(self, directory: Path) -> list[credentials.Finding]:
        """The HTCondor tokens and the broker's key in a deploy bundle (docs/deploy.md, step 6), as HTCondor would
        take them: presented to which daemon, and why not."""
        if not directory.is_dir():
            raise InputError([Problem(str(directory), "is not a directory",
                                      "give the directory `enclave render deploy --out` wrote, with the credentials "
                                      "docs/deploy.md step 6 puts there")])
        return credentials.check(self.spec, directory, time.time())

    def report(self) -> tuple[security.Report, list[str]]:
        """The benchmark on enclave's own rendered objects. Rendering takes seconds and the objects depend only
        on the spec and on which images are approved, so a report is kept ``ttl_seconds`` per approval set and
        computed by one caller at a time."""
        key = tuple(a.pinned for a in self.renders.images.approved())
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
                return cached[1], cached[2]
            notes: list[str] = []
            report = self.check(rendered=True, notes=notes)
            self._cache[key] = (time.monotonic(), report, notes)
            return report, notes

    def _own(self, notes: list[str] | None) -> list[Located]:
        skipped: list[str] = []
        with self.renders.objects(skipped) as (objects, results):
            if notes is not None:
                notes += [f"render {r.name} did not run: {r.detail}" for r in results if not r.ok]
                notes += [f"notebook image {image} (no pod checked)"
                          for image in sorted({line.split(": ", 1)[1] for line in skipped if ": " in line})]
            return objects


@dataclass
class UpgradeService:
    spec: EnclaveSpec
    renders: RenderService

    def plan(self, *, observed: Components | None = None, to: Version | None = None,
             steps: list[Version] | None = None, manifests: Sequence[Path] = (), today: date | None = None,
             patch_first: bool = False) -> tuple[Plan, list[ApiFinding]]:
        """Steps from the observed (default: the spec's) versions to ``to``, and the removed APIs the objects
        (``manifests``, default enclave's own rendered ones) still use."""
        current = observed or components_from_spec(self.spec)
        kwargs: dict[str, Any] = {"steps": steps, "patch_first": patch_first}
        if today is not None:
            kwargs["today"] = today
        plan = plan_upgrade(current, to, **kwargs)
        if manifests:
            objects = load_manifests(manifests)
        else:
            with self.renders.objects() as (own, _):
                objects = own
        return plan, scan(objects, min(current.apiservers), plan.target)


@dataclass
class BackupService:
    """Control-plane backups (seed §12 option 2). With an actor, creating and restoring need cluster.system and
    are journaled; without one (a cluster administrator on the node, no enclave database) they are not."""

    db: Database
    spec: EnclaveSpec

    @contextmanager
    def _audited(self, actor: str | None, action: str, target: str, reason: str
                 ) -> Iterator[Callable[[Any], None]]:
        if actor is None:
            yield lambda after: None
            return
        with self.db.session() as session:
            require(session, actor, Permission.CLUSTER_SYSTEM)
            record: dict[str, Any] = {}
            yield lambda after: record.update(after=after)
            journal.record(session, actor=actor, action=action, target=target, reason=reason, before=None,
                           after=record.get("after"))

    def target(self, out: Path, now: dt.datetime | None = None, *, directory: bool = False) -> Path:
        """``out`` itself, or inside a directory (an existing one, or ``directory``: the operator wrote DIR/,
        which a Path cannot say — pathlib collapses the trailing slash) the next named archive:
        `<cluster>-<UTC time>.tar.gz`; `create` makes the directory."""
        if directory or out.is_dir():
            return out / catalog.backup_name(self.spec.cluster.name, now or dt.datetime.now(dt.UTC))
        return out

    def listing(self, directory: Path) -> list[catalog.Listed]:
        return catalog.list_backups(directory)

    def prune(self, directory: Path, *, keep_last: int, keep_days: int | None, actor: str | None, reason: str,
              dry_run: bool = False, now: dt.datetime | None = None) -> tuple[list[catalog.Listed], list[Path]]:
        """Delete the backups retention lets go (audited like create and restore); returns what stays and what
        was (or, with ``dry_run``, would be) removed."""
        keep, remove = catalog.retention(catalog.list_backups(directory), keep_last=keep_last, keep_days=keep_days,
                                         now=now or dt.datetime.now(dt.UTC))
        if dry_run:
            return keep, [b.path for b in remove]
        with self._audited(actor, "backup.prune", str(directory), reason) as note:
            for b in remove:
                b.path.unlink()
            note({"removed": [b.path.name for b in remove], "kept": [b.path.name for b in keep]})
        return keep, [b.path for b in remove]

    def schedule(self, *, schedule: str, keep_last: int, keep_days: int | None = None) -> list[dict[str, Any]]:
        """The spec's ConfigMap and the CronJob, in the order `kubectl apply` should create them."""
        return catalog.schedule_objects(self.spec, schedule=schedule, keep_last=keep_last, keep_days=keep_days)

    def create(self, etcd: Etcdctl, out: Path, *, key: Path, actor: str | None, reason: str,
               kubernetes_dir: Path | None = None, kubeadm_config: Path | None = None,
               create_key: bool = True) -> backups.BackupManifest:
        out = self.target(out)
        with self._audited(actor, "backup.create", str(out), reason) as note:
            m = backups.create(etcd, out, key=key, kubernetes_dir=kubernetes_dir, kubeadm_config=kubeadm_config,
                               cluster=self.spec.cluster.name, create_key=create_key)
            note(backups.summary(m))
        return m

    def verify(self, archive: Path, *, key: Path) -> backups.BackupManifest:
        return backups.verify(archive, key=key)

    def restore(self, archive: Path, data_dir: Path, member: Member, *, key: Path, actor: str | None, reason: str,
                kubernetes_dir: Path | None = None, cluster: Sequence[Member] = ()) -> backups.BackupManifest:
        with self._audited(actor, "backup.restore", str(data_dir), reason) as note:
            m = backups.restore(archive, data_dir, member, key=key, kubernetes_dir=kubernetes_dir, cluster=cluster)
            note({"archive": str(archive), "members": [c.name for c in cluster] or [member.name],
                  **backups.summary(m)})
        return m

    def members(self, given: Sequence[Member] = ()) -> tuple[Member, ...]:
        """The etcd members to restore: those given, else one per control-plane node of the spec (kubeadm's
        stacked etcd: a member on every control-plane node, peer port 2380, client port 2379)."""
        if given:
            return tuple(given)
        names = self.spec.node_names(NodeRole.CONTROL_PLANE)
        return tuple(Member(n, f"https://{n}:2380", f"https://{n}:2379") for n in names)

    def restore_plan(self, archive: str, given: Sequence[Member] = (), *, token: str | None = None,
                     now: dt.datetime | None = None) -> tuple[MemberRestore, ...]:
        """Every member's steps, all with one cluster token: ``token``, else one stamped now (restored_token).
        A spec before Kubernetes 1.10 with one control-plane node has kubeadm's plain local etcd there
        (``kubeadm_plain_member``), unless the members are given."""
        shared = token or restored_token(now or dt.datetime.now(dt.UTC))
        plain = None if given else self._plain_local_node()
        if plain is not None:
            return plain_local_restore_plan(archive, plain, kubeadm_plain_member(shared))
        members = tuple(Member(m.name, m.peer_url, m.client_url, shared) for m in self.members(given))
        return restore_plan(archive, members)

    def _plain_local_node(self) -> str | None:
        """The control-plane node whose local etcd kubeadm set up without TLS or a member name (before 1.10), when
        the spec has one; with several, the etcd cluster is one the operator built beside kubeadm (kubeadm 1.9's
        is one member on the node it initialized), assumed to run a TLS member on each of them as later kubeadm's
        stacked etcd does."""
        names = self.spec.node_names(NodeRole.CONTROL_PLANE)
        version = Version.parse(self.spec.cluster.kubernetes_version, where="cluster.kubernetes_version")
        return names[0] if len(names) == 1 and version.minor_key < PLAIN_LOCAL_ETCD_BEFORE else None
