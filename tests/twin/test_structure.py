"""The twin's modules form a DAG, import everything at module top, and stay off the live adapters.

Read from the source with ``ast`` (every import statement, inside functions and ``TYPE_CHECKING`` blocks
too), so a cycle cannot hide behind a deferred import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import enclave.twin

TWIN = Path(enclave.twin.__file__).parent
PACKAGE = "enclave.twin"
FORBIDDEN = ("enclave.cluster", "enclave.batch.live", "enclave.db", "enclave.api", "enclave.cli")
"""Live adapters, the database, the API and the CLI: the twin is a backend and a model, not a front end."""


def _imports(tree: ast.Module, module: str) -> list[tuple[str, ast.stmt]]:
    out: list[tuple[str, ast.stmt]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.append((name, node))
            # ``from enclave.twin import report`` imports the module enclave.twin.report.
            out += [(f"{name}.{alias.name}", node) for alias in node.names]
    return out


def _modules() -> dict[str, ast.Module]:
    return {f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE: ast.parse(p.read_text(), str(p))
            for p in sorted(TWIN.glob("*.py"))}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {name for name, _ in _imports(tree, m) if name in modules and name not in (m, PACKAGE)}
            for m, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None for a DAG."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)) is not None:
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)) is not None:
            return found
    return None


def test_the_twin_modules_form_a_dag() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_every_import_is_at_module_top() -> None:
    hidden = [f"{m}:{node.lineno} {name}" for m, tree in _modules().items() for name, node in _imports(tree, m)
              if node not in tree.body]
    assert hidden == []


def test_the_twin_imports_no_live_adapter_database_api_or_cli() -> None:
    wrong = [f"{m}: {name}" for m, tree in _modules().items() for name, _ in _imports(tree, m)
             if name.startswith(FORBIDDEN) or (name.endswith(".cli") and name != f"{PACKAGE}.cli")]
    assert wrong == []
    # Within the twin only the twin's own front end is a CLI, and no twin module imports it.
    assert not any(f"{PACKAGE}.cli" in deps for deps in _graph().values())
