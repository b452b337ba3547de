"""The safe YAML reader's own refusals (``spec/document.py``), for every document it reads — manifests, notebook
pods and versions files as well as specs. Each test failed a one-line bug that tests/spec passed before: a spec's
model refuses a non-finite number too, so only a document read without one shows what the reader itself does."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.errors import InputError
from enclave.spec.document import parse_all, read_text
from tests.spec.test_spec import base, problems


def _problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as info:
        parse_all(text, "x.yaml")
    return [(p.where, p.what, p.fix) for p in info.value.problems]


@pytest.mark.parametrize("value", [".inf", "-.Inf", ".NaN"])
def test_a_non_finite_number_is_refused_in_any_document_at_its_line(value: str) -> None:
    # YAML 1.1's float tag resolves .inf and .nan (any case) to infinities and NaN (PyYAML resolver.py); no
    # quantity of this project is infinite, and NaN compares false with every bound.
    assert _problems(f"kind: List\n---\nreplicas: {value}\n") == [
        ("x.yaml:3", f"refused YAML: '{value}' is not a finite number", "give a finite number")]


def test_malformed_yaml_says_the_parsers_problem_once_at_its_line() -> None:
    # PyYAML's parser (parser.py, parse_flow_sequence_entry): "expected ',' or ']', but got %r" with the token's
    # id, '<stream end>' at the end of the text. Said as the problem alone: the whole exception's text would
    # repeat the position on lines of its own.
    assert _problems("a: 1\nb: [1, 2\n") == [
        ("x.yaml:3", "malformed YAML: expected ',' or ']', but got '<stream end>'", "fix the YAML syntax at that line")]


def test_a_file_that_cannot_be_read_is_named_by_its_path_or_the_name_given(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    for source, where in ((None, str(missing)), ("--spec", "--spec")):
        with pytest.raises(InputError) as info:
            read_text(missing, source)
        assert [(p.where, p.what) for p in info.value.problems] == [
            (where, "cannot read: No such file or directory")]


def test_a_value_of_the_wrong_type_is_told_the_type_it_was() -> None:
    # Pydantic's error types ending in "_type" (string_type, int_type, ...) carry the input; the fix names its
    # Python type. A string that does not parse as a number is int_parsing: pydantic's message says it all.
    data = base()
    data["cluster"]["network_overlay"] = [1]
    [problem] = problems(data)  # pydantic's messages for string_type and int_parsing (pydantic-core errors)
    assert problem.endswith(": cluster.network_overlay: Input should be a valid string — fix: give a value of the "
                            "right type (got list)")
    data = base()
    data["cluster"]["node_groups"][1]["count"] = "two"
    [problem] = problems(data)
    assert problem.endswith(": cluster.node_groups[1].count: Input should be a valid integer, unable to parse "
                            "string as an integer")
