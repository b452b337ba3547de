"""The one YAML loader for enclave's own documents (the spec, twin scenarios, manifests): parse, keep the line of
every key, validate with pydantic, and report each problem as ``file:line: path: what — fix``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from enclave.errors import InputError, Problem

Loc = tuple[str | int, ...]
Lines = dict[Loc, int]
M = TypeVar("M", bound=BaseModel)

_FIXES = {
    "extra_forbidden": "remove the key, or check its spelling against the reference",
    "missing": "add the key",
    "string_pattern_mismatch": "use lower-case letters, digits and '-' (a DNS label)",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
}


def syntax_problem(exc: yaml.YAMLError, source: str) -> Problem:
    """Malformed YAML, at the line the parser stopped."""
    mark = getattr(exc, "problem_mark", None)  # only MarkedYAMLError carries a position
    line = f":{mark.line + 1}" if mark is not None else ""
    reason = getattr(exc, "problem", None) or str(exc)
    return Problem(f"{source}{line}", f"malformed YAML: {reason}", "fix the YAML syntax at that line")


def _lines(node: yaml.Node, loc: Loc, out: Lines) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            _lines(value, (*loc, name), out)
            # A key's problem is reported at the key's line, not where its value starts.
            out[(*loc, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*loc, i), out)


def line_of(lines: Lines, loc: Iterable[str | int]) -> int | None:
    """The line of the deepest part of ``loc`` that exists in the file."""
    parts = tuple(loc)
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return lines.get(())


def dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def where(source: str, lines: Lines, loc: Loc) -> str:
    line = line_of(lines, loc)
    return f"{source}:{line}: {dotted(loc)}" if line else f"{source}: {dotted(loc)}"


def _pydantic_problems(err: ValidationError, source: str, lines: Lines) -> list[Problem]:
    problems = []
    for e in err.errors():
        # Pydantic appends the tag of a union/enum branch to loc; keep only the keys from the file.
        loc = tuple(p for p in e["loc"] if isinstance(p, int) or not str(p).startswith("function-"))
        what = e["msg"]
        if e["type"] == "extra_forbidden":
            what = f"unknown key '{loc[-1]}'"
        elif e["type"] == "missing":
            what = f"required key '{loc[-1]}' is missing"
        fix = _FIXES.get(e["type"], "")
        if not fix and "input" in e and e["type"].endswith("_type"):
            fix = f"give a value of the right type (got {type(e['input']).__name__})"
        problems.append(Problem(where(source, lines, loc), what, fix))
    return problems


def load_model(text: str, source: str, model: type[M], *, what: str, example: str,
               error: type[InputError] = InputError) -> tuple[M, Lines]:
    """Parse ``text`` as one YAML mapping and validate it as ``model``; raise ``error`` listing every problem
    (never a traceback). Returns the model and the line of every key, for checks made afterwards."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error([syntax_problem(exc, source)]) from None
    if not isinstance(data, dict) or node is None:
        raise error([Problem(source, f"{what} must be a YAML mapping", f"start from {example}")])
    lines: Lines = {}
    _lines(node, (), lines)
    try:
        return model.model_validate(data), lines
    except ValidationError as err:
        raise error(_pydantic_problems(err, source, lines)) from None
