"""`enclave render all` (seed §12, disaster recovery option 1): everything needed to rebuild from the spec.

It calls every `enclave render <x>` command that is registered, whichever concepts are installed, each
into its own sub-directory, so a renderer added later is included without touching this module.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from enclave.errors import EnclaveError
from enclave.ops.manifests import Located, load_manifests
from enclave.ops.notebook_pods import Pinner, pods_in
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec


@dataclass(frozen=True)
class Rendered:
    name: str
    directory: Path
    ok: bool
    detail: str = ""


def _renderers(render: typer.Typer, skip: set[str]) -> list[tuple[str, Callable[..., Any]]]:
    out: list[tuple[str, Callable[..., Any]]] = []
    for info in render.registered_commands:
        callback = info.callback
        if callback is None:
            continue
        name = info.name or callback.__name__.replace("_", "-")
        if name not in skip:
            out.append((name, callback))
    return sorted(out)


def render_everything(render: typer.Typer, out: Path, spec_path: Path | None,
                      skip: set[str] | None = None) -> list[Rendered]:
    """Run each registered renderer with --out OUT/<name> (and --spec when it takes one)."""
    results: list[Rendered] = []
    for name, callback in _renderers(render, skip or {"all"}):
        params = inspect.signature(callback).parameters
        kwargs: dict[str, Any] = {}
        target = out / name
        if "out" in params:
            kwargs["out"] = target
        if "spec" in params:
            kwargs["spec"] = spec_path
        missing = [p for p, v in params.items() if p not in kwargs and v.default is inspect.Parameter.empty]
        if "out" not in params or missing:
            results.append(Rendered(name, target, False, f"skipped: needs {missing or ['--out']}"))
            continue
        try:
            callback(**kwargs)
        except EnclaveError as exc:
            results.append(Rendered(name, target, False, str(exc)))
            continue
        results.append(Rendered(name, target, True))
    return results


def _pinner(spec: EnclaveSpec) -> Pinner | None:
    """What the notebook pre-spawn hook does to images: pin them to approved digests (vetting required)."""
    if not spec.registry.vetting_required:
        return None
    from enclave.db.cli import cli_session
    from enclave.ops.images import approved, pinner

    with cli_session() as session:
        return pinner(approved(session, spec.registry.host))


@contextmanager
def rendered_objects(render: typer.Typer, spec_path: Path | None,
                     skipped: list[str] | None = None) -> Iterator[tuple[list[Located], list[Rendered]]]:
    """Render everything into a temporary directory and yield the Kubernetes objects found there,
    including the notebook pods KubeSpawner would start from the rendered JupyterHub values."""
    with tempfile.TemporaryDirectory(prefix="enclave-render-") as tmp:
        # Renderers report what they wrote on stdout; here that would corrupt a JSON or JUnit report.
        with contextlib.redirect_stdout(io.StringIO()):
            results = render_everything(render, Path(tmp), spec_path)
        dirs = [r.directory for r in results if r.ok and r.directory.exists()]
        spec = load(spec_path or default_spec_path())
        pods = pods_in(dirs, spec.notebooks.namespace, _pinner(spec), skipped)
        yield load_manifests(dirs, strict=False) + pods, results
