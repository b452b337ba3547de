"""`enclave batch explain|pools|spoof` and `enclave render condor`. The BCS procedures under `enclave batch` are
the broker's (``enclave.cli.broker``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from enclave.batch import explain as explain_mod
from enclave.batch import policy, render, spoof
from enclave.cli.options import Live, Output, OutputFormat, SpecOption, emit, load_spec_option, services
from enclave.errors import InputError, Problem
from enclave.spec.document import read_text
from enclave.spec.models import EnclaveSpec

batch_app = typer.Typer(help="HTCondor pools by ClassAd: explain matches, list pools, prove anti-spoofing.",
                        no_args_is_help=True)
console = Console(highlight=False, markup=False, width=120)

MembersOption = Annotated[
    Path | None, typer.Option("--members", help="YAML owner → pools the schedd's user map grants "
                                                "(default: everyone may use the default pool).")]


def _members(path: Path | None) -> dict[str, list[str]] | None:
    return explain_mod.read_members(path) if path else None


def _labels(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        node, sep, pool = pair.partition("=")
        if not sep or not node or not pool:
            problems.append(Problem("--label", f"'{pair}' is not NODE=POOL", "write e.g. --label condor-001=drp"))
        out[node] = pool
    if problems:
        raise InputError(problems)
    return out


@batch_app.command("explain")
def explain_cmd(
    submit_file: Annotated[Path, typer.Argument(help="An HTCondor submit description.")],
    node: Annotated[list[str] | None, typer.Option("--node", help="Node to explain against (repeatable; "
                                                   "default: every standalone batch node).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Submitting user (default: $USER).")] = None,
    schedd: Annotated[str | None, typer.Option("--schedd", help="Submit host (default: the first of "
                                                                "batch.submit_hosts).")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="NODE=POOL: the node's current pool "
                                                    "(default: the rendered layout).")] = None,
    details: Annotated[bool, typer.Option("--details", help="After the summary, every node's failing clauses "
                                                            "(default: only for the nodes named with --node).")]
    = False,
    members: MembersOption = None,
    live: Live = False,
    spec_path: SpecOption = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Does this job match, and if not, which clause rules out how many slots (as condor_q -better-analyze);
    then, for the nodes named with --node (or all with --details), each failing clause of START or
    Requirements."""
    spec = load_spec_option(spec_path)
    text = read_text(submit_file)  # unreadable or not UTF-8: an InputError naming the file
    labels: dict[str, str] | None = None
    startds = None
    if live:
        with services(spec_path) as factory:
            startds = factory.batch.startds()
    elif label:
        labels = {**policy.static_labels(spec), **_labels(label)}
    policy.load_membership(spec, _members(members))
    who = owner or os.environ.get("USER", "nobody")
    where = schedd or spec.batch.submit_hosts[0]
    result = explain_mod.explain(spec, text, owner=who, schedd=where, nodes=node, labels=labels,
                                 startds=startds, where=str(submit_file))
    if output != OutputFormat.TABLE:
        emit(_explain_data(result, who, where, bool(node) or details), output)
        return
    _print_header(spec, submit_file, result, who, where)
    _print_summary(explain_mod.summarise(result), bool(node) or details)
    if node or details:
        _print_nodes(result)


def _explain_data(result: explain_mod.Explanation, who: str, where: str, detailed: bool) -> dict[str, object]:
    summary = explain_mod.summarise(result)
    data: dict[str, object] = {
        "owner": who, "schedd": where, "queue": result.submitted.queue,
        "refused_at_submit": list(result.admission.refused),
        "slots": summary.slots, "matched": summary.matched, "rejected_by_job": summary.rejected_by_job,
        "reject_job": summary.reject_job,
        "clauses": [{"side": c.side, "clause": c.clause.name, "expression": repr(c.clause.expr),
                     "rules_out": c.ruled_out, "only_blocker": c.only, "why": c.clause.why} for c in summary.clauses],
        "pools": {p: {"slots": n, "matched": ok} for p, (n, ok) in summary.pools.items()},
    }
    if detailed:
        data["nodes"] = [{"node": n.node, "pool": n.pool, "matches": n.matches,
                          "failing": [{"side": r.side, "clause": r.clause.name, "value": _value(r.value)}
                                      for r in n.failing]} for n in result.nodes]
    return data


def _print_header(spec: EnclaveSpec, submit_file: Path, result: explain_mod.Explanation, who: str,
                  where: str) -> None:
    ad = result.admission.ad
    a = spec.batch.pool_attribute
    console.print(Text.assemble((str(submit_file), "bold"),
                                f" (queue {result.submitted.queue}) — owner {who}, submitted on {where}"))
    console.print(f"  after the schedd: {a}={ad.get(a)!r} AcctGroup={ad.get('AcctGroup')!r} "
                  f"EnclaveSchedd={ad.get(policy.SCHEDD_ATTR)!r} RequestCpus={ad.get('RequestCpus')!r} "
                  f"RequestMemory={ad.get('RequestMemory')!r}")
    for reason in result.admission.refused:
        console.print(Text.assemble("  ", ("refused at submit:", "red"), f" {reason}"))


def _print_summary(summary: explain_mod.Summary, detailed: bool) -> None:
    """The -better-analyze layout: per clause the slots it rules out, then the run analysis summary."""
    console.print(f"  matches {summary.matched} of {summary.slots} node(s): "
                  f"{summary.rejected_by_job} rejected by the job's Requirements, "
                  f"{summary.reject_job} reject the job by their own START policy")
    console.print(f"  {'clause':<30} {'rules out':>9} {'only blocker':>12}")
    for c in summary.clauses:
        mark = "red" if c.ruled_out else "green"
        console.print(Text.assemble(f"  {c.side + ' ' + c.clause.name:<30} ", (f"{c.ruled_out:>9}", mark),
                                    f" {c.only:>12}  — {c.clause.why}"))
    console.print("  matching by pool: " + ", ".join(f"{p} {ok} of {n}" for p, (n, ok) in summary.pools.items()))
    if not detailed and summary.matched < summary.slots:
        console.print("  per-node detail: --node NAME (repeatable) or --details")


def _print_nodes(result: explain_mod.Explanation) -> None:
    for n in result.nodes:
        if n.matches:
            console.print(Text.assemble("  ", (n.node, "green"), f" (pool {n.pool}): matches"))
            continue
        console.print(Text.assemble("  ", (n.node, "red"), f" (pool {n.pool}): no match"))
        for r in n.failing:
            console.print(f"      {r.side} clause '{r.clause.name}' is {_value(r.value)}: {r.clause.expr!r}"
                          f"  — {r.clause.why}")


def _value(value: object) -> str:
    return "false" if value is False else str(value).lower() if isinstance(value, bool) else repr(value)


@batch_app.command("pools")
def pools_cmd(live: Live = False, spec_path: SpecOption = None, output: Output = OutputFormat.TABLE) -> None:
    """Each pool: accounting group, shares, trusted submit hosts, and its nodes (rendered layout or live)."""
    spec = load_spec_option(spec_path)
    policy.validate(spec)
    table = Table(title=f"HTCondor pools of {spec.cluster.name} (attribute {spec.batch.pool_attribute}, "
                        f"manager {spec.batch.central_manager})")
    for col in ("pool", "accounting group", "guaranteed", "max", "submit hosts", "startds", "cores"):
        table.add_column(col)
    if live:
        with services(spec_path) as factory:
            startds, demand = factory.batch.pools_now()
        counts = Counter(s.pool for s in startds)
        cores = Counter({p: sum(s.cores for s in startds if s.pool == p) for p in spec.pools})
        table.add_column("idle jobs")
        table.add_column("running jobs")
    else:
        labels = policy.static_labels(spec)
        counts = Counter(labels.values())
        per_node = {g.name: g.cores for g in spec.cluster.node_groups}
        cores = Counter()
        for node_name, pool_name in labels.items():
            cores[pool_name] += per_node[node_name.rsplit("-", 1)[0]]
    if output != OutputFormat.TABLE:
        emit([{"pool": name, "accounting_group": policy.accounting_group(spec, name),
               "guaranteed_share": s.guaranteed_share, "max_share": s.max_share,
               "submit_hosts": policy.pool_submit_hosts(spec, name), "startds": counts[name], "cores": cores[name],
               **({"idle_jobs": demand[name].idle_jobs, "running_jobs": demand[name].running_jobs} if live else {})}
              for name, s in spec.pools.items()], output)
        return
    for name, settings in spec.pools.items():
        row = [name, policy.accounting_group(spec, name), f"{settings.guaranteed_share:.0%}",
               f"{settings.max_share:.0%}",
               ", ".join(policy.pool_submit_hosts(spec, name)), str(counts[name]), str(cores[name])]
        if live:
            row += [str(demand[name].idle_jobs), str(demand[name].running_jobs)]
        table.add_row(*row)
    console.print(table)


@batch_app.command("spoof")
def spoof_cmd(members: MembersOption = None, spec_path: SpecOption = None,
              output: Output = OutputFormat.TABLE) -> None:
    """Run the spoofing catalogue: every attempt must be refused and every legitimate job run."""
    spec = load_spec_option(spec_path)
    verdicts = spoof.run(spec, _members(members))
    if output != OutputFormat.TABLE:
        emit([{"attempt": v.attempt.name, "legitimate": v.attempt.legitimate, "runs": v.runs,
               "as_expected": v.as_expected, "refused_by": list(v.refused_by())} for v in verdicts], output)
        if not all(v.as_expected for v in verdicts):
            raise typer.Exit(1)
        return
    table = Table(title="Spoofing catalogue (classad2 evaluation of the rendered policy)")
    for col in ("attempt", "expected", "outcome", "refused by"):
        table.add_column(col)
    for v in verdicts:
        table.add_row(v.attempt.name, "runs" if v.attempt.legitimate else "refused",
                      Text.assemble("runs" if v.runs else "refused",
                                    "" if v.as_expected else ("  UNEXPECTED", "red")),
                      "\n".join(v.refused_by()))
    console.print(table)
    bad = [v.attempt.name for v in verdicts if not v.as_expected]
    if bad:
        console.print(Text(f"{len(bad)} unexpected verdict(s): {', '.join(bad)}", style="red"))
        raise typer.Exit(1)
    console.print(f"all {len(verdicts)} verdicts as expected")


def render_condor(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the config files into.")],
    members: MembersOption = None,
    config_dir: Annotated[str, typer.Option("--config-dir", help="Where the files will live on the hosts "
                                            "(the schedd reads the user map from there).")] = render.DEFAULT_CONFIG_DIR,
    check: Annotated[bool, typer.Option("--check", help="Read every file back through HTCondor's config "
                                                        "parser.")] = False,
    spec: SpecOption = None,
) -> None:
    """Write HTCondor config: central manager, submit hosts, execute nodes per pool, worker pods."""
    with services(spec) as factory:
        written = factory.renders.condor(out, members=_members(members), config_dir=config_dir)
        enclave_spec = factory.spec
    for f, path in written:
        line = f"wrote {path} ({f.role})"
        if check and path.suffix == ".conf":
            line += f" — HTCondor reads it back: {render.verify(enclave_spec, f, path)}"
        console.print(line)


def register(app: typer.Typer, render_app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
    render_app.command("condor")(render_condor)
