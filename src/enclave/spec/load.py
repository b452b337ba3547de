"""Load and validate enclave.yaml, reporting every problem with its file, YAML path and line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from enclave.errors import Problem, SpecError
from enclave.spec.checks import check
from enclave.spec.models import EnclaveSpec

Loc = tuple[str | int, ...]

_FIXES = {
    "extra_forbidden": "remove the key, or check its spelling against the spec reference",
    "missing": "add the key",
    "string_pattern_mismatch": "use lower-case letters, digits and '-' (a DNS label)",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
}


def _lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
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


def line_of(lines: dict[Loc, int], loc: Iterable[str | int]) -> int | None:
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


def _where(source: str, lines: dict[Loc, int], loc: Loc) -> str:
    line = line_of(lines, loc)
    return f"{source}:{line}: {dotted(loc)}" if line else f"{source}: {dotted(loc)}"


def _pydantic_problems(err: ValidationError, source: str, lines: dict[Loc, int]) -> list[Problem]:
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
        problems.append(Problem(_where(source, lines, loc), what, fix))
    return problems


def parse(text: str, source: str = "<spec>") -> EnclaveSpec:
    """Parse and validate spec text; raise SpecError listing every problem found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            [Problem(f"{source}{line}", f"malformed YAML: {reason}", "fix the YAML syntax at that line")]
        ) from None
    if not isinstance(data, dict) or node is None:
        raise SpecError(
            [Problem(source, "the spec must be a YAML mapping", "start from examples/minimal.yaml")]
        )
    lines: dict[Loc, int] = {}
    _lines(node, (), lines)
    try:
        spec = EnclaveSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_pydantic_problems(err, source, lines)) from None
    problems = [Problem(_where(source, lines, loc), what, fix) for loc, what, fix in check(spec)]
    if problems:
        raise SpecError(problems)
    return spec


def load(path: str | Path) -> EnclaveSpec:
    """Load a spec file; raise SpecError (never a traceback) for any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(p), "file not found", "give the path of an enclave spec")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(str(p), f"cannot read the file: {exc}", "check the path")]) from None
    return parse(text, str(p))


def dump(spec: EnclaveSpec) -> str:
    """The spec as YAML, such that parse(dump(s)) == s."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
