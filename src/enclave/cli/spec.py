"""`enclave spec validate|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from enclave.cli.options import Output, OutputFormat, emit
from enclave.spec.load import load
from enclave.spec.models import ROLE_DESCRIPTIONS, EnclaveSpec, NodeRole
from enclave.spec.summary import batch_cores, notebook_users, pool_capacity, storage_totals

spec_app = typer.Typer(help="Validate and summarise an enclave spec.", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=120)

SpecFile = Annotated[Path, typer.Argument(help="Path of the enclave spec (YAML).")]
@spec_app.command("validate")
def validate(file: SpecFile, output: Output = OutputFormat.TABLE) -> None:
    """Check a spec and report every problem at once (exit 0 when valid, 1 otherwise)."""
    spec = load(file)
    if output != OutputFormat.TABLE:
        emit({"file": file, "valid": True, "cluster": spec.cluster.name,
              "nodes": sum(g.count for g in spec.cluster.node_groups), "pools": len(spec.pools)}, output)
        return
    console.print(f"{file}: valid — cluster {spec.cluster.name}, "
                  f"{sum(g.count for g in spec.cluster.node_groups)} nodes, {len(spec.pools)} pools")


@spec_app.command("show")
def show(file: SpecFile, output: Output = OutputFormat.TABLE) -> None:
    """Summarise a spec: nodes, cores per pool, notebook users that fit, storage."""
    spec = load(file)
    if output != OutputFormat.TABLE:
        emit({"spec": spec.model_dump(mode="json"), "batch_cores": batch_cores(spec),
              "pools": pool_capacity(spec), "notebook_users": notebook_users(spec),
              "storage": storage_totals(spec)}, output)
        return
    render_summary(spec, console)


def render_summary(spec: EnclaveSpec, out: Console) -> None:
    c = spec.cluster
    out.print(Text.assemble((c.name, "bold"), f" — Kubernetes {c.kubernetes_version}, overlay {c.network_overlay}"))

    nodes = Table(title="Nodes")
    for col in ("group", "role", "count", "cores/node", "GiB/node", "disk GiB", "cores", "memory GiB"):
        nodes.add_column(col, justify="left" if col in ("group", "role") else "right")
    for g in c.node_groups:
        nodes.add_row(g.name, g.role.value, str(g.count), str(g.cores), f"{g.memory_gib:g}",
                      f"{g.local_disk_gib:g}", str(g.count * g.cores), f"{g.count * g.memory_gib:g}")
    total_cores = sum(g.count * g.cores for g in c.node_groups)
    total_mem = sum(g.count * g.memory_gib for g in c.node_groups)
    nodes.add_row("total", "", str(sum(g.count for g in c.node_groups)), "", "", "", str(total_cores),
                  f"{total_mem:g}", style="bold")
    out.print(nodes)

    pools = Table(title=f"Batch pools ({batch_cores(spec)} standalone batch cores)")
    for col in ("pool", "priority", "guaranteed cores", "max cores", "latency objective"):
        pools.add_column(col, justify="left" if col in ("pool", "latency objective") else "right")
    for p in pool_capacity(spec):
        pools.add_row(p.name, str(p.priority), str(p.guaranteed_cores), str(p.max_cores), p.objective)
    out.print(pools)

    worker_cores = spec.cores(NodeRole.WORKER)
    nb = Table(title=f"Notebook users that fit on {worker_cores} Kubernetes worker cores (all of one size)")
    for col in ("size", "cpu req/limit", "MiB req/limit", "concurrent users"):
        nb.add_column(col, justify="left" if col == "size" else "right")
    fits = notebook_users(spec)
    for name, s in spec.notebooks.sizes.items():
        label = f"{name} (default)" if name == spec.notebooks.default_size else name
        nb.add_row(label, f"{s.cpu_request:g}/{s.cpu_limit:g}", f"{s.memory_request_mib}/{s.memory_limit_mib}",
                   str(fits[name]))
    out.print(nb)

    st = storage_totals(spec)
    storage = Table(title="Storage")
    storage.add_column("what")
    storage.add_column("size", justify="right")
    storage.add_row("home (jhome) quota per user", f"{st.home_quota_gib:g} GiB")
    storage.add_row("workspace (WebDAV)", f"{spec.storage.home_root}/<user>/{spec.storage.workspace_subdir}")
    storage.add_row("shared storage", f"{st.shared_tib:g} TiB")
    storage.add_row("node-local storage, all nodes", f"{st.node_local_total_gib:g} GiB")
    storage.add_row("image cache per node", f"{st.image_cache_per_node_gib:g} GiB")
    storage.add_row("container cache", f"{st.container_cache_gib:g} GiB")
    out.print(storage)

    roles = Table(title="Actor roles")
    roles.add_column("role")
    roles.add_column("responsibility")
    for role in spec.roles:
        roles.add_row(role.value, spec.roles[role].description or ROLE_DESCRIPTIONS[role])
    out.print(roles)


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
