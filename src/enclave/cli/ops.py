"""`enclave upgrade …`, `enclave backup …`, `enclave security …`, `enclave images …`,
`enclave render admission` and `enclave render all`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from enclave.cli.options import (
    SELF,
    As,
    Output,
    OutputFormat,
    Reason,
    SpecOption,
    emit,
    enclave,
    host,
    resolve_optional_actor,
    services,
)
from enclave.errors import InputError, Problem
from enclave.ops import backup as backups
from enclave.ops import cis, security
from enclave.ops.etcd import Etcdctl, Member, restored_token
from enclave.ops.images import ImageStatus
from enclave.ops.report import plan_to_dict, plan_to_text
from enclave.ops.upgrade import components_from_mapping
from enclave.ops.versions import Version, release_data, target_version
from enclave.outdir import output_dir
from enclave.spec.document import parse, read_text

upgrade_app = typer.Typer(help="Plan Kubernetes upgrades one minor at a time (seed §9).", no_args_is_help=True)
backup_app = typer.Typer(help="Control-plane backup and restore: etcd snapshot + PKI, kubeconfigs, manifests "
                              "(seed §12 option 2).", no_args_is_help=True)
security_app = typer.Typer(help="Hardening benchmark of node configuration and manifests (seed §14).",
                           no_args_is_help=True)
images_app = typer.Typer(help="Security vetting of registry images (seed §10).", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=140)
err_console = Console(stderr=True, highlight=False, markup=False, width=140)
T = TypeVar("T")

ActorOption = Annotated[str | None, typer.Option("--as", envvar="ENCLAVE_AS", callback=resolve_optional_actor,
                                                 help="Acting account (local mode: one mapped to your OS user); "
                                                      "checked for the cluster-admin role and journaled (or "
                                                      "$ENCLAVE_AS).")]


def _date(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError([Problem("--today", f"{text!r} is not a date", "write YYYY-MM-DD")]) from None


# ------------------------------------------------------------------------------------------------ upgrade

@upgrade_app.command("plan")
def plan_command(
    spec: SpecOption = None,
    observed: Annotated[Path | None, typer.Option("--observed", help="YAML of observed component versions "
                                                  "(apiserver, kubelets, …) instead of the spec's version.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Target version, e.g. 1.31.4, or 1.31 for its latest "
                                           "patch (default: newest maintained).")] = None,
    step: Annotated[list[str] | None, typer.Option("--step", help="Pass through this version (repeat); the "
                                                   "plan is refused if the steps skip a minor.")] = None,
    manifests: Annotated[list[Path] | None, typer.Option("--manifests", help="Scan these files/dirs for "
                                                         "removed APIs (default: enclave's rendered objects).")] = None,
    today: Annotated[str | None, typer.Option("--today", help="Date to judge maintained releases by.")] = None,
    output: Output = OutputFormat.TABLE,
    commands: Annotated[bool, typer.Option("--commands", help="Print each step's phases and commands.")] = False,
    patch_first: Annotated[bool, typer.Option("--patch-first", help="First move to the newest patch of the "
                                              "current minor.")] = False,
) -> None:
    """Steps from the cluster's version to the target, skew-checked at every phase, with package pinning."""
    current = None
    if observed is not None:
        if not observed.is_file():
            raise InputError([Problem(str(observed), "file not found", "give a YAML file of observed versions")])
        current = components_from_mapping(parse(read_text(observed), str(observed))[0], where=str(observed))
    target = target_version(to) if to else None
    steps = [Version.parse(v, where="--step") for v in step] if step else None
    with services(spec) as factory:
        plan, findings = factory.upgrades.plan(observed=current, to=target, steps=steps, manifests=manifests or (),
                                               today=_date(today), patch_first=patch_first)
    if output != OutputFormat.TABLE:
        emit(plan_to_dict(plan, findings), output)
    else:
        typer.echo(plan_to_text(plan, findings, commands=commands))


@upgrade_app.command("releases")
def releases_command(today: Annotated[str | None, typer.Option("--today")] = None,
                     output: Output = OutputFormat.TABLE) -> None:
    """The release data: every minor from 1.9, its dates, latest patch and whether it is maintained."""
    day = _date(today)
    data = release_data()
    if output != OutputFormat.TABLE:
        emit({"data_version": data.data_version, "maintained_on": day,
              "releases": [{"minor": r.minor.minor_name, "released": r.released, "eol": r.eol,
                            "latest_patch": str(r.latest_patch), "maintained": r.maintained_on(day),
                            "source": r.source} for r in data.releases]}, output)
        return
    t = Table(title=f"Kubernetes releases (data {data.data_version}; maintained on {day})")
    for col in ("minor", "released", "end of life", "latest patch", "maintained", "source"):
        t.add_column(col)
    for r in data.releases:
        t.add_row(r.minor.minor_name, str(r.released), str(r.eol), str(r.latest_patch),
                  "yes" if r.maintained_on(day) else "", r.source)
    console.print(t)


# ------------------------------------------------------------------------------------------------ backup

SigningKey = Annotated[Path | None, typer.Option(
    "--signing-key", help="HMAC key that signs and authenticates backups; default $ENCLAVE_BACKUP_KEY, else "
    "$ENCLAVE_HOME/backup.key. Keep it apart from the archives (docs/hardening.md).")]


def _etcdctl(endpoints: str, cacert: Path | None, cert: Path | None, key: Path | None) -> Etcdctl:
    return Etcdctl(tuple(e.strip() for e in endpoints.split(",") if e.strip()), cacert, cert, key)


@backup_app.command("create")
def backup_create(
    out: Annotated[str, typer.Option("--out", help="Archive to write (.tar.gz; never overwritten), or a "
                                     "directory to write the next named archive into (an existing one, or DIR/, "
                                     "created).")],
    endpoints: Annotated[str, typer.Option("--endpoints", help="etcd client URLs, comma-separated.")]
    = "https://127.0.0.1:2379",
    cacert: Annotated[Path | None, typer.Option("--cacert", help="e.g. /etc/kubernetes/pki/etcd/ca.crt")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="e.g. …/etcd/healthcheck-client.crt")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="e.g. …/etcd/healthcheck-client.key")] = None,
    kubernetes_dir: Annotated[Path | None, typer.Option("--kubernetes-dir", help="PKI, kubeconfigs and static "
                                                        "manifests, usually /etc/kubernetes.")] = None,
    kubeadm_config: Annotated[Path | None, typer.Option("--kubeadm-config", help="kubeadm ClusterConfiguration "
                                                        "file.")] = None,
    signing_key: SigningKey = None,
    no_create_key: Annotated[bool, typer.Option("--no-create-key", help="Fail when the signing key does not "
                                                "exist instead of creating one (the scheduled job: a key made in "
                                                "its container would be lost with it).")] = False,
    actor: ActorOption = None,
    reason: Reason = "control-plane backup",
    spec: SpecOption = None,
) -> None:
    """Snapshot etcd and pack it with the control-plane files and a signed checksum manifest. Given a directory
    (existing, or ending in /), the archive is named `<cluster>-<UTC time>.tar.gz` inside it."""
    signing = signing_key or backups.default_key_path()
    new_key = not signing.exists() and not no_create_key
    with (host(spec) if actor else services(spec)) as factory:
        # Taken as text: a Path would drop the trailing slash that says "a directory" (pathlib collapses it).
        path = factory.backups.target(Path(out), directory=out.endswith("/"))
        m = factory.backups.create(_etcdctl(endpoints, cacert, cert, key), path, key=signing, actor=actor,
                                   reason=reason, kubernetes_dir=kubernetes_dir, kubeadm_config=kubeadm_config,
                                   create_key=not no_create_key)
    if new_key:
        console.print(f"created signing key {signing} (mode 0600): keep a copy apart from the archives; "
                      "verify and restore need it")
    console.print(f"wrote {path}: etcd revision {m.etcd.revision}, {m.etcd.total_keys} keys, "
                  f"{len(m.files)} files (mode 0600: it holds private keys)")


@backup_app.command("list")
def backup_list(directory: Annotated[Path, typer.Argument(help="Directory of named backups.")],
                spec: SpecOption = None, output: Output = OutputFormat.TABLE) -> None:
    """The named backups in a directory, oldest first, with what each manifest says."""
    with services(spec) as factory:
        rows = factory.backups.listing(directory)
    data = [{"name": b.path.name, "created": b.created.isoformat(), "bytes": b.size,
             "revision": b.manifest.etcd.revision if b.manifest else None,
             "keys": b.manifest.etcd.total_keys if b.manifest else None, "problem": b.problem or None}
            for b in rows]
    if output != OutputFormat.TABLE:
        emit(data, output)
        return
    t = Table(title=f"Backups in {directory} ({len(rows)})")
    for col in ("name", "created", "size", "etcd revision", "keys", "problem"):
        t.add_column(col)
    for d in data:
        t.add_row(str(d["name"]), str(d["created"]), f"{int(d['bytes'] or 0) / 1e6:.1f} MB",
                  str(d["revision"] or ""), str(d["keys"] or ""), str(d["problem"] or ""))
    console.print(t)


@backup_app.command("prune")
def backup_prune(
    directory: Annotated[Path, typer.Argument(help="Directory of named backups.")],
    keep_last: Annotated[int, typer.Option("--keep-last", help="Always keep this many newest good backups.")] = 7,
    keep_days: Annotated[int | None, typer.Option("--keep-days", help="Also keep every good backup younger "
                                                  "than this.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    actor: ActorOption = None,
    reason: Reason = "backup retention",
    spec: SpecOption = None,
) -> None:
    """Delete backups retention lets go; unreadable archives are kept for someone to look at."""
    with (host(spec) if actor else services(spec)) as factory:
        keep, removed = factory.backups.prune(directory, keep_last=keep_last, keep_days=keep_days, actor=actor,
                                              reason=reason, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(removed)} backup(s), kept {len(keep)}"
                  + "".join(f"\n  {verb}: {p.name}" for p in removed))


@backup_app.command("schedule")
def backup_schedule(
    out: Annotated[Path | None, typer.Option("--out", help="Directory to write enclave-etcd-backup.yaml into "
                                             "(default: print the objects, for kubectl apply -f -).")] = None,
    schedule: Annotated[str, typer.Option("--schedule", help="Cron schedule (UTC on most clusters).")]
    = "30 2 * * *",
    keep_last: Annotated[int, typer.Option("--keep-last")] = 7,
    keep_days: Annotated[int | None, typer.Option("--keep-days")] = None,
    spec: SpecOption = None,
) -> None:
    """A CronJob taking a named backup on a control-plane node and pruning old ones (live clusters), and the
    ConfigMap of the spec it runs with. It signs with the Secret kube-system/enclave-backup-key (docs/ops.md)."""
    with services(spec) as factory:
        objects = factory.backups.schedule(schedule=schedule, keep_last=keep_last, keep_days=keep_days)
    text = yaml.safe_dump_all(objects, sort_keys=False)
    job = objects[-1]
    what = (f"{job['apiVersion']} CronJob and the spec's ConfigMap, schedule {schedule!r}, keep last {keep_last}; "
            "it needs the Secret kube-system/enclave-backup-key")
    if out is None:
        typer.echo(text, nl=False)  # stdout is the objects alone: `enclave backup schedule | kubectl apply -f -`
        err_console.print(f"printed {what}")
        return
    path = output_dir(out) / "enclave-etcd-backup.yaml"
    path.write_text(text)
    console.print(f"wrote {path}: {what}")


@backup_app.command("verify")
def backup_verify(archive: Annotated[Path, typer.Argument(help="Backup archive.")],
                  output: Output = OutputFormat.TABLE, signing_key: SigningKey = None) -> None:
    """Check the signature, every checksum, and open the etcd snapshot (exit 6 if damaged or forged)."""
    m = backups.verify(archive, key=signing_key or backups.default_key_path())
    if output != OutputFormat.TABLE:
        emit(backups.summary(m), output)
    else:
        console.print(f"{archive}: OK — cluster {m.cluster or '?'}, created {m.created}, etcd revision "
                      f"{m.etcd.revision}, {m.etcd.total_keys} keys, {len(m.files)} files verified")


@backup_app.command("restore")
def backup_restore(
    archive: Annotated[Path, typer.Argument(help="Backup archive.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="New etcd data directory (must be empty).")],
    name: Annotated[str, typer.Option("--name", help="etcd member name (the control-plane node).")],
    peer_url: Annotated[str, typer.Option("--peer-url", help="Member peer URL, e.g. https://10.0.0.1:2380")],
    client_url: Annotated[str, typer.Option("--client-url")] = "https://127.0.0.1:2379",
    kubernetes_dir: Annotated[Path | None, typer.Option("--kubernetes-dir", help="Empty directory to put "
                                                        "PKI, kubeconfigs and manifests into.")] = None,
    token: Annotated[str | None, typer.Option("--cluster-token", help="The restore's etcd cluster token, the "
                                              "same on every member (restore-plan prints it); default for a "
                                              "one-member restore: enclave-restored-<UTC minute>.")] = None,
    signing_key: SigningKey = None,
    member: Annotated[list[str] | None, typer.Option("--member", help="Every member of the restored cluster as "
                                                     "NAME=PEER_URL (repeat; this node included). Without it "
                                                     "the restore builds a one-member cluster.")] = None,
    actor: ActorOption = None,
    reason: Reason = "control-plane restore",
) -> None:
    """Verify the archive, then build this member's fresh etcd data directory (and control-plane files)."""
    token = _restore_token(token, bool(member))
    cluster = tuple(Member(n, u, "", token) for n, u in _members(member))
    with (host() if actor else services()) as factory:
        m = factory.backups.restore(archive, data_dir, Member(name, peer_url, client_url, token),
                                    key=signing_key or backups.default_key_path(), actor=actor, reason=reason,
                                    kubernetes_dir=kubernetes_dir, cluster=cluster)
    console.print(f"restored etcd revision {m.etcd.revision} ({m.etcd.total_keys} keys) into {data_dir}, cluster "
                  f"token {token}" + (f"; control-plane files into {kubernetes_dir}" if kubernetes_dir else ""))
    if cluster:
        console.print(f"next: restore the other {len(cluster) - 1} member(s) the same way, point each etcd static "
                      "pod at its data directory, and start them together (quorum needs a majority)")
    else:
        console.print("next: point the etcd static pod at the data directory, then add further members one by one")


def _restore_token(token: str | None, several: bool) -> str:
    """A fresh token per restore (restored_token: a fixed one gives every restore the same member and cluster
    IDs); the members of one cluster must share it, so a multi-member restore takes the plan's."""
    if token:
        return token
    if several:
        raise InputError([Problem("--cluster-token", "every member of one restore needs the same cluster token",
                                  "give the --cluster-token `enclave backup restore-plan` printed")])
    return restored_token(dt.datetime.now(dt.UTC))


def _members(raw: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in raw or []:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise InputError([Problem("--member", f"{item!r} is not NAME=PEER_URL",
                                      "e.g. --member kub-master-001=https://10.0.0.1:2380")])
        out.append((name, url))
    return out


@backup_app.command("restore-plan")
def backup_restore_plan(
    archive: Annotated[str, typer.Argument(help="The backup archive every member restores from.")],
    member: Annotated[list[str] | None, typer.Option("--member", help="NAME=PEER_URL per member (default: every "
                                                     "control-plane node of the spec, https://NAME:2380).")] = None,
    token: Annotated[str | None, typer.Option("--cluster-token", help="The restore's etcd cluster token "
                                              "(default: enclave-restored-<UTC minute>, one for all members).")]
    = None,
    spec: SpecOption = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """What to run on each control-plane node to restore the whole etcd cluster from one backup."""
    given = tuple(Member(n, u, u.replace(":2380", ":2379")) for n, u in _members(member))
    with services(spec) as factory:
        plan = factory.backups.restore_plan(archive, given, token=token)
    if output != OutputFormat.TABLE:
        emit([{"node": step.host, "member": step.member.name, "peer_url": step.member.peer_url,
               "cluster_token": step.member.cluster_token, "steps": list(step.steps)} for step in plan], output)
        return
    for i, step in enumerate(plan, 1):
        named = "" if step.host == step.member.name else f"member {step.member.name}, "
        console.print(f"{i}. on {step.host} ({named}{step.member.peer_url}):", soft_wrap=True)
        for line in step.steps:
            console.print(f"   {line}", soft_wrap=True)
    if len(plan) == 1:
        console.print("then the kubelet restarts the etcd static pod on the new data directory", soft_wrap=True)
    else:
        console.print(f"then start all {len(plan)} etcd members together (kubelet restarts the static pods); "
                      "etcd answers once a majority is up", soft_wrap=True)


# ------------------------------------------------------------------------------------------------ security

@security_app.command("check")
def security_check(
    spec: SpecOption = None,
    node: Annotated[Path | None, typer.Option("--node", help="kubeadm directory of a node (/etc/kubernetes: "
                                              "manifests/, optional kubelet/config.yaml).")] = None,
    kubelet_config: Annotated[Path | None, typer.Option("--kubelet-config",
                                                        help="/var/lib/kubelet/config.yaml")] = None,
    kubelet_flags: Annotated[list[Path] | None, typer.Option(
        "--kubelet-flags", help="The kubelet's command line (repeat): its systemd unit and drop-in 10-kubeadm.conf "
        "and the environment files they read (/var/lib/kubelet/kubeadm-flags.env, /etc/default/kubelet); flags win "
        "over the config file.")] = None,
    manifests: Annotated[list[Path] | None, typer.Option("--manifests", help="Manifest files or dirs (repeat).")]
    = None,
    rendered: Annotated[bool, typer.Option("--rendered", help="Check enclave's own rendered objects (default "
                                           "when nothing else is given).")] = False,
    checks: Annotated[Path | None, typer.Option("--checks", help="Another check definition file.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these check ids (repeat).")] = None,
    output: Output = OutputFormat.TABLE,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report here (for CI).")]
    = None,
    kube_bench: Annotated[Path | None, typer.Option("--kube-bench", help="Also write the report in kube-bench's "
                                                    "--json shape here.")] = None,
    exit_code: Annotated[int, typer.Option("--exit-code", help="Exit code when a scored check fails.")] = 8,
    benchmark: Annotated[str | None, typer.Option("--benchmark", help="CIS benchmark to report against (e.g. "
                                                  "cis-1.8), as kube-bench's --benchmark; default: the one kube-bench "
                                                  "maps the cluster's release to.")] = None,
) -> None:
    """Run the benchmark; exit --exit-code (8) when any scored check fails. --kube-bench FILE also writes
    kube-bench's --json shape."""
    notes: list[str] = []
    with services(spec) as factory:
        report = factory.security.check(checks=checks, only=only or (), node=node, kubelet_config=kubelet_config,
                                        kubelet_flags=kubelet_flags or (), manifests=manifests or (), rendered=rendered,
                                        notes=notes, benchmark=benchmark)
    for note in notes:
        err_console.print(f"note: {note}")
    if junit is not None:
        junit.write_text(security.to_junit(report) + "\n")
    if kube_bench is not None:
        kube_bench.write_text(security.to_kube_bench(report) + "\n")
    if output == OutputFormat.TABLE:
        typer.echo(security.to_text(report))
    else:
        emit(json.loads(security.to_json(report)), output)
    if report.failed:
        raise typer.Exit(exit_code)


@security_app.command("credentials")
def security_credentials(
    directory: Annotated[Path, typer.Argument(help="The deploy bundle (`enclave render deploy --out`) with the "
                                              "HTCondor credentials of docs/deploy.md step 6.")] = Path("deploy"),
    spec: SpecOption = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Check the bundle's HTCondor tokens before applying it: each one's signing key, trust domain, identity,
    authorizations and expiry against what the rendered configs need. Exit 1 when any would not be presented or
    not be granted what it is for."""
    with services(spec) as factory:
        findings = factory.security.credentials(directory)
    if output != OutputFormat.TABLE:
        emit([{"file": f.file, "presented_to": f.presented_to, "problems": list(f.problems),
               "token": None if f.token is None else {
                   "key": f.token.key, "issuer": f.token.issuer, "subject": f.token.subject,
                   "scopes": None if f.token.scopes is None else list(f.token.scopes), "expires": f.token.expires}}
              for f in findings], output)
    else:
        table = Table(title=f"HTCondor credentials in {directory}")
        for col in ("file", "presented to", "identity", "trust domain", "key", "scope", "expires", "verdict"):
            table.add_column(col)
        for f in findings:
            t = f.token
            expires = "never" if t is None or t.expires is None else dt.datetime.fromtimestamp(
                t.expires, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            row = ([t.subject or "-", t.issuer or "-", t.key or "-",
                    "unlimited" if t.scopes is None else " ".join(t.scopes), expires] if t else ["-"] * 5)
            table.add_row(f.file, f.presented_to, *row, "ok" if not f.problems else "\n".join(f.problems))
        console.print(table)
    if any(f.problems for f in findings):
        raise typer.Exit(1)


@security_app.command("list")
def security_list(output: Output = OutputFormat.TABLE,
                  benchmark: Annotated[str, typer.Option("--benchmark", help="Number the items as this CIS "
                                                         "benchmark does (kube-bench cfg/).")] = "cis-1.12") -> None:
    """The checks: id, the CIS item each encodes in a benchmark (or why none), what is read, whether it is
    scored."""
    version, defs, _ = security.shipped_benchmark()
    bench = cis.catalogue().choose(None, benchmark)
    defs = security.for_benchmark(defs, bench.version)
    if output != OutputFormat.TABLE:
        emit({"data_version": version, "benchmark": f"{bench.name} {bench.version}",
              "checks": [{"id": c.id, "cis": c.cis.id, "section": c.section, "check": c.text,
                          "target": c.target, "scored": c.scored} for c in defs]}, output)
        return
    t = Table(title=f"Security checks ({bench.name} {bench.version}; data {version}, {len(defs)} checks)")
    for col in ("id", "CIS", "check", "reads", "scored"):
        t.add_column(col)
    for c in defs:
        reads = f"{c.target}: " + ", ".join(f"{v}" for k, v in c.read.items() if k not in ("default", "flag_default"))
        label = f"{c.cis.id} ({c.cis.type})" if c.cis.id else f"— {c.cis.note}"
        t.add_row(c.id, label, c.text, reads, "yes" if c.scored else "no")
    console.print(t)


# ------------------------------------------------------------------------------------------------ images

@images_app.command("submit")
def images_submit(image: Annotated[str, typer.Argument(help="registry/repo[:tag]@sha256:<digest>")],
                  reason: Reason = "", spec: SpecOption = None, actor: As = SELF) -> None:
    """Ask security staff to vet an image digest from the local registry."""
    with enclave(spec) as factory:
        row = factory.images.submit(actor, image, reason=reason)
    console.print(f"{row.pinned}: {row.status}")


@images_app.command("approve")
def images_approve(image: Annotated[str, typer.Argument(help="registry/repo@sha256:<digest>")],
                   reason: Annotated[str, typer.Option("--reason", help="What was checked.")],
                   actor: As = SELF) -> None:
    """Approve a submitted digest (security staff; not the submitter)."""
    with enclave() as factory:
        row = factory.images.approve(actor, image, reason=reason)
    console.print(f"{row.pinned}: {row.status} by {row.decided_by}")


@images_app.command("reject")
def images_reject(image: Annotated[str, typer.Argument(help="registry/repo@sha256:<digest>")],
                  reason: Annotated[str, typer.Option("--reason", help="Why.")], actor: As = SELF) -> None:
    """Reject a submitted digest, or withdraw an approval."""
    with enclave() as factory:
        row = factory.images.reject(actor, image, reason=reason)
    console.print(f"{row.pinned}: {row.status} by {row.decided_by}")


@images_app.command("list")
def images_list(status: Annotated[str | None, typer.Option("--status", help="submitted|approved|rejected")] = None,
                output: Output = OutputFormat.TABLE) -> None:
    """Images and their vetting state."""
    try:
        wanted = ImageStatus(status) if status else None
    except ValueError:
        raise InputError([Problem("--status", f"{status!r} is not a status",
                                  "use submitted, approved or rejected")]) from None
    with enclave() as factory:
        data = [r.model_dump(mode="json") for r in factory.images.listing(wanted)]
    if output != OutputFormat.TABLE:
        emit(data, output)
        return
    t = Table(title=f"Images ({len(data)})")
    for col in ("repository", "tag", "digest", "status", "submitted by", "decided by", "reason"):
        t.add_column(col)
    for d in data:
        t.add_row(str(d["repository"]), str(d["tag"] or ""), str(d["digest"])[:19] + "…", str(d["status"]),
                  str(d["submitted_by"]), str(d["decided_by"] or ""), str(d["reason"]))
    console.print(t)


# ------------------------------------------------------------------------------------------------ render

def render_admission_command(out: Annotated[Path, typer.Option("--out", help="Directory to write YAML into.")],
                             spec: SpecOption = None) -> None:
    """Kyverno ClusterPolicy admitting only approved image digests (validated against its schema)."""
    with services(spec) as factory:
        path, allowed = factory.renders.admission(out)
    console.print(f"wrote {path}: {allowed} approved digest(s) admitted")


def render_deploy_command(out: Annotated[Path, typer.Option("--out", help="Directory to write the bundle into.")],
                          spec: SpecOption = None) -> None:
    """What runs enclave in the commons: Dockerfile, manifests and kustomization (`kubectl apply -k`); see
    docs/deploy.md."""
    with services(spec) as factory:
        paths = factory.renders.deploy(out)
    for path in paths:
        console.print(f"wrote {path}")


def render_all_command(out: Annotated[Path, typer.Option("--out", help="Directory; one sub-directory per "
                                                         "renderer.")],
                       spec: SpecOption = None) -> None:
    """Everything enclave renders (access, batch, notebooks, admission, …): rebuild from the spec (§12 option 1)."""
    with services(spec) as factory:
        results = factory.renders.everything(out)
    for r in results:
        detail = f"  {r.detail}" if r.detail else ""
        console.print(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<12} {r.directory}{detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise InputError([Problem(f"render {r.name}", r.detail, "run it alone to see the full error")
                          for r in failed])


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(upgrade_app, name="upgrade")
    app.add_typer(backup_app, name="backup")
    app.add_typer(security_app, name="security")
    app.add_typer(images_app, name="images")
    render.command("admission")(render_admission_command)
    render.command("deploy")(render_deploy_command)
    render.command("all")(render_all_command)
