"""Load and validate enclave.yaml, reporting every problem with its file, YAML path and line."""

from __future__ import annotations

from pathlib import Path

import yaml

from enclave.errors import Problem, SpecError
from enclave.spec.checks import check
from enclave.spec.document import load_model, where
from enclave.spec.models import EnclaveSpec


def parse(text: str, source: str = "<spec>") -> EnclaveSpec:
    """Parse and validate spec text; raise SpecError listing every problem found."""
    spec, lines = load_model(text, source, EnclaveSpec, what="the spec", example="examples/minimal.yaml",
                             error=SpecError)
    problems = [Problem(where(source, lines, loc), what, fix) for loc, what, fix in check(spec)]
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
