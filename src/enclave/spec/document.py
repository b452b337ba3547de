"""The one YAML loader for every YAML document enclave reads (the spec, twin scenarios, members files, observed
versions, manifests, shipped data): parse safely, keep the line of every key, validate with pydantic, and report
each problem as ``file:line: path: what — fix``.

The parser refuses, before anything is built from the document (limits and why: docs/hardening.md):

- more than ``MAX_ALIASES`` alias uses, or aliases that repeat more than ``MAX_ALIAS_NODES`` nodes in all — an
  800-byte "billion laughs" document otherwise expands to gigabytes in whatever walks it;
- nesting deeper than ``MAX_DEPTH`` — PyYAML's composer recurses once per level, so deep nesting would end in a
  RecursionError traceback;
- a key given twice in one mapping — YAML 1.2 §3.2.1.1 requires keys to be unique, and PyYAML silently keeps the
  last (https://yaml.org/spec/1.2.2/#3211-nodes);
- ``.inf``, ``.nan`` and floats that overflow to infinity (``1e999``) — no quantity enclave reads is infinite, and
  an infinite one passed validation and crashed a renderer later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
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


MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64


class Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that the safe loader will not build (see the module docstring)."""

    def __init__(self, problem: str, mark: Any, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (no Python objects) plus the alias budget, depth limit, unique keys and finite floats."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise Refused(f"more than {MAX_ALIASES} aliases (*name)", event.start_mark,
                              "write the repeated values out instead of referring to an anchor")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark, "flatten the document")
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if (key.tag, key.value) in seen:
                    raise Refused(f"key '{key.value}' is given twice in this mapping", key.start_mark,
                                  "keep one of the two (YAML requires keys to be unique)")
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise Refused(f"'{node.value}' is not a finite number", node.start_mark, "give a finite number")
        return float(value)


_SafeLoader.add_constructor("tag:yaml.org,2002:float", _SafeLoader.construct_yaml_float)
# SafeConstructor registers construct_yaml_map, which fills the dict through construct_mapping: the duplicate
# check above therefore covers every mapping, merge keys included.


def _expansion(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Nodes under ``node`` counting every alias as a full copy (memoised, so linear in the document)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:  # '&a [*a]': PyYAML builds a node that contains itself
        raise Refused("an alias refers to a node that contains it", node.start_mark,
                      "a document must be a tree: write the value out instead of referring to its own anchor")
    open_.add(id(node))
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(_expansion(k, sizes, open_) + _expansion(v, sizes, open_) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(_expansion(item, sizes, open_) for item in node.value)
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def _check_expansion(node: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    expanded = _expansion(node, sizes, set())
    if expanded - len(sizes) > MAX_ALIAS_NODES:
        raise Refused(f"aliases repeat {expanded - len(sizes)} nodes (more than {MAX_ALIAS_NODES})",
                      node.start_mark, "write the repeated values out instead of referring to an anchor")


def parse_all(text: str, source: str, error: type[InputError] = InputError) -> list[tuple[Any, yaml.Node]]:
    """Every document of ``text`` as (data, node), through the safe loader; ``error`` on anything refused."""
    out: list[tuple[Any, yaml.Node]] = []
    try:
        loader = _SafeLoader(text)  # the reader refuses control characters already here
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:  # check_node() said a document follows
                    break
                _check_expansion(node)
                out.append((loader.construct_document(node), node))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise error([syntax_problem(exc, source)]) from None
    return out


def parse(text: str, source: str, error: type[InputError] = InputError) -> tuple[Any, yaml.Node | None]:
    """The one document of ``text`` (None for an empty file), through the safe loader."""
    docs = parse_all(text, source, error)
    if len(docs) > 1:
        raise error([Problem(source, f"{len(docs)} YAML documents where one is expected",
                             "remove the extra '---' separators")])
    return docs[0] if docs else (None, None)


def read_text(path: Path, source: str | None = None) -> str:
    """A file's text as UTF-8; a file that cannot be read or decoded is an InputError, never a traceback."""
    where = source or str(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(where, f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")]) from None
    except OSError as exc:
        raise InputError([Problem(where, f"cannot read: {exc.strerror}", "check the path")]) from None


def syntax_problem(exc: yaml.YAMLError, source: str) -> Problem:
    """Malformed or refused YAML, at the line the parser stopped."""
    mark = getattr(exc, "problem_mark", None)  # only MarkedYAMLError carries a position
    line = f":{mark.line + 1}" if mark is not None else ""
    reason = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, Refused):
        return Problem(f"{source}{line}", f"refused YAML: {reason}", exc.fix)
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
    data, node = parse(text, source, error)
    if not isinstance(data, dict) or node is None:
        raise error([Problem(source, f"{what} must be a YAML mapping", f"start from {example}")])
    lines: Lines = {}
    _lines(node, (), lines)
    try:
        return model.model_validate(data), lines
    except ValidationError as err:
        raise error(_pydantic_problems(err, source, lines)) from None
