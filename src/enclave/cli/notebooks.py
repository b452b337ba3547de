"""`enclave notebooks capacity|options`, `enclave render notebooks`, `enclave webdav`, `enclave vospace`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from enclave import logs
from enclave.cli.options import DbOption, Output, OutputFormat, SpecOption, emit, load_spec_option, services
from enclave.cli.options import host as on_host
from enclave.notebooks import vospace as vo
from enclave.notebooks import webdav as dav
from enclave.notebooks.capacity import Capacity, parse_mix, plan
from enclave.notebooks.workspace import LEDGER_DIR
from enclave.services import local

notebooks_app = typer.Typer(help="Notebook options, capacity planning (seed §5, §13).", no_args_is_help=True)
console = Console(highlight=False, markup=False, width=120)



@notebooks_app.command("capacity")
def capacity(
    spec_path: SpecOption = None,
    mix: Annotated[str, typer.Option("--mix", help="Size shares, e.g. small=5,medium=3,large=2 "
                                                   "(default: everyone on the default size).")] = "",
    users: Annotated[int | None, typer.Option("--users", help="Target concurrent users: what to add to reach "
                                                              "them.")] = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """How many concurrent notebook users fit, what a mix does, image caches, and what to add for N users."""
    spec = load_spec_option(spec_path)
    result = plan(spec, parse_mix(mix, spec), users)
    if output != OutputFormat.TABLE:
        emit(result, output)
        return
    print_capacity(result)


def print_capacity(c: Capacity) -> None:
    console.print(Text.assemble(("Notebook capacity", "bold"), f" on {c.worker_nodes} worker nodes "
                                f"({c.worker_cores} cores, {c.worker_memory_gib:g} GiB), packed by request"))
    t = Table(title="Concurrent users if everyone picks one size")
    for col in ("size", "per node", "users", "bound by", "users at limits"):
        t.add_column(col, justify="left" if col in ("size", "bound by", "per node") else "right")
    for f in c.sizes:
        t.add_row(f.size, ", ".join(f"{g}: {n}" for g, n in f.per_node.items()), str(f.users), f.bound_by,
                  str(f.users_at_limit))
    console.print(t)
    m = c.mix
    shares = ", ".join(f"{k} {v:.0%}" for k, v in m.mix.items())
    console.print(Text.assemble(f"Mix {shares}: ", (str(m.users), "bold"), " concurrent users fit today."))
    if m.target is not None:
        counts = ", ".join(f"{n} {k}" for k, n in m.counts.items())
        if m.add_nodes:
            console.print(Text.assemble(f"To reach {m.target} users ({counts}): add ", (str(m.add_nodes), "bold"),
                                        f" '{m.add_group}' nodes (+{m.add_cores} cores, +{m.add_memory_gib:g} GiB)."))
        else:
            console.print(f"{m.target} users ({counts}) fit already; nothing to add.")
    cache = c.cache
    console.print(f"Images: {cache.images_offered} offered; a node caches {cache.slots_per_node} (§13.4); "
                  f"the container cache holds {cache.registry_cache_images} (§13.6).")
    for note in (*cache.notes, *c.warnings):
        console.print(Text.assemble(("note:", "yellow"), f" {note}"))


@notebooks_app.command("options")
def options(
    username: Annotated[str, typer.Argument(help="Account whose spawner options to show.")],
    spec_path: SpecOption = None,
    db: DbOption = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """The images and sizes an account may pick (vetted images only; refused for expired/departed)."""
    with on_host(spec_path, db) as factory:
        opts = factory.notebooks.options_of(username)
    if output != OutputFormat.TABLE:
        emit(opts, output)
        return
    console.print(Text.assemble((username, "bold"),
                                f" may spawn, up to {opts.limit.max_cpu:g} CPU / {opts.limit.max_memory_mib} MiB:"))
    for image in opts.images:
        console.print(f"  image {image}" + (" (default)" if image == opts.default_image else ""))
    for size in opts.sizes:
        console.print(f"  size  {size.label}" + (" (default)" if size.default else ""))
    for image in opts.withheld_images:
        console.print(Text.assemble("  ", ("withheld, not vetted:", "yellow"), f" {image}"))


def render_notebooks(
    out: Annotated[Path, typer.Option("--out", help="Directory to write values.yaml, profile_list.yaml, "
                                                    "jupyterhub_config.py.")],
    spec: SpecOption = None,
) -> None:
    """Write the JupyterHub (Zero-to-JupyterHub) values and KubeSpawner profile_list derived from the spec."""
    with services(spec) as factory:
        written = factory.renders.notebooks(out)
    for path in written:
        console.print(f"wrote {path}")


def _logging(level: str | None, fmt: str | None) -> None:
    """Configure the logs; with JSON logs the lines for people go to stderr, so stdout is only the log."""
    if logs.configure(level, fmt) == logs.LogFormat.JSON:
        console.file = sys.stderr


def _started(server: str, database: str, host: str, port: int, **fields: object) -> None:
    logs.event(logs.logger(server), logging.INFO, f"enclave {server} starting", version=logs.enclave_version(),
               database=database, host=host, port=port, **fields)


def webdav(
    spec_path: SpecOption = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8090,
    log_level: logs.LevelOption = None,
    log_format: logs.FormatOption = None,
) -> None:
    """Serve each user's File Workspace over WebDAV (seed §6.2). Log in with your user name and an enclave
    token (scope data.read; data.write to change files) as the password; your files are at /<username>/.
    Logs (start-up, one line per request) go to stdout."""
    _logging(log_level, log_format)
    local.check_server(db, local.os_user())
    with services(spec_path, db) as factory:
        home = factory.spec.storage.home_root
        app = dav.make_app(factory.notebooks.authenticator(), anchor=home if Path(home).is_dir() else "/")
        server = dav.make_server(app, host, port)
        _started("webdav", factory.db.dialect, host, port, home_root=home, home_mounted=Path(home).is_dir(),
                 quota_ledger=str(Path(home, LEDGER_DIR)))
        console.print(f"WebDAV File Workspace on http://{host}:{port}/<username>/ (Ctrl-C stops)")
        try:
            server.safe_start()
        finally:
            server.stop()


def vospace(
    spec_path: SpecOption = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8091,
    resource_id: Annotated[str, typer.Option("--resource-id", help="The service's IVOA identifier; node URIs are "
                                                                   "vos://<authority>~<path>/<username>/...")]
    = vo.DEFAULT_RESOURCE_ID,
    public_url: Annotated[str | None, typer.Option("--public-url", help="The URL clients reach the service at "
                                                                        "(behind a TLS proxy); default: the "
                                                                        "request's own host.")] = None,
    log_level: logs.LevelOption = None,
    log_format: logs.FormatOption = None,
) -> None:
    """Serve each user's File Workspace over VOSpace 2.1 (seed §6.2), for the IVOA `vos` tools. Authenticate with
    an enclave token (scope data.read; data.write to change files): `vls --token TOKEN vos://.../<username>`.
    Logs (start-up, one line per request) go to stdout."""
    _logging(log_level, log_format)
    local.check_server(db, local.os_user())
    with services(spec_path, db) as factory:
        try:
            app = vo.make_app(factory.notebooks.authenticator(), resource_id=resource_id, public_url=public_url)
        except ValueError as err:
            console.print(Text.assemble(("error:", "red"), f" --resource-id: {err}"))
            raise typer.Exit(2) from None
        server = vo.make_server(app, host, port)
        _started("vospace", factory.db.dialect, host, port, resource_id=resource_id,
                 quota_ledger=str(Path(factory.spec.storage.home_root, LEDGER_DIR)))
        console.print(f"VOSpace File Workspace on http://{host}:{port} as {resource_id}: node URIs "
                      f"vos://{app.authority}/<username>/... (Ctrl-C stops)")
        try:
            server.safe_start()
        finally:
            server.stop()


def register(app: typer.Typer, render: typer.Typer) -> None:
    app.add_typer(notebooks_app, name="notebooks")
    render.command("notebooks")(render_notebooks)
    app.command("webdav")(webdav)
    app.command("vospace")(vospace)
