"""The safe YAML loader (enclave.spec.document): every YAML enclave reads is refused cleanly — never a traceback,
never gigabytes — when it holds an alias bomb, deep nesting, a duplicate key or a non-finite number."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.batch.explain import read_members
from enclave.cli import app
from enclave.errors import InputError, SpecError
from enclave.ops.manifests import parse_manifests
from enclave.spec import parse
from enclave.spec.defaults import EXAMPLES
from enclave.spec.document import MAX_ALIASES, MAX_DEPTH, parse_all

MINIMAL = (EXAMPLES / "minimal.yaml").read_text()
runner = CliRunner()


def bomb(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs' document: each level is a list of ``width`` aliases of the level below, so
    ``levels`` levels expand to width**levels leaves from a few hundred bytes (9**9 ≈ 3.9e8)."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast() -> None:
    text = MINIMAL + bomb(levels=6, width=9)  # 54 aliases (within the alias budget), 9**6 = 531441 leaves
    start = time.monotonic()
    with pytest.raises(SpecError) as info:
        parse(text, "bomb.yaml")
    assert time.monotonic() - start < 5
    assert "aliases repeat" in str(info.value)


def test_alias_count_budget() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(InputError, match=f"more than {MAX_ALIASES} aliases"):
        parse_all(text, "many.yaml")
    ok = "a: &a 1\nb: [" + ", ".join(["*a"] * MAX_ALIASES) + "]\n"
    assert parse_all(ok, "ok.yaml")[0][0]["b"] == [1] * MAX_ALIASES


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep = "x: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(SpecError, match=f"nested deeper than {MAX_DEPTH}"):
        parse(MINIMAL + deep, "deep.yaml")
    # The limit itself is allowed: MAX_DEPTH levels counting the document's top mapping.
    fits = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse_all(fits, "fits.yaml")


def test_duplicate_key_is_refused_at_its_line() -> None:
    text = MINIMAL.replace("  drp: {guaranteed_share: 0.25",
                           "  prompt: {guaranteed_share: 0.1, max_share: 1.0, priority: 1}\n"
                           "  drp: {guaranteed_share: 0.25")
    line = text.splitlines().index("  prompt: {guaranteed_share: 0.1, max_share: 1.0, priority: 1}") + 1
    with pytest.raises(SpecError) as info:
        parse(text, "dup.yaml")
    assert str(info.value).startswith(f"dup.yaml:{line}: refused YAML: key 'prompt' is given twice")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e999", "'inf'", "'nan'"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    text = MINIMAL.replace("latency_objective: {seconds: 60,", f"latency_objective: {{seconds: {value},")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "latency_objective" in t)
    with pytest.raises(SpecError) as info:
        parse(text, "inf.yaml")
    assert f"inf.yaml:{line}:" in str(info.value) and "finite" in str(info.value)


def test_every_number_is_bounded() -> None:
    text = MINIMAL.replace("priority: 100,", "priority: 100, grace_seconds: 1.0e300,")
    with pytest.raises(SpecError, match="grace_seconds: Input should be less than or equal to 31536000"):
        parse(text, "big.yaml")


def test_two_pools_sharing_an_accounting_group_are_refused() -> None:
    # drp's explicit group is general's default one (group_<pool>): a general member could run on drp nodes.
    text = MINIMAL.replace("drp: {guaranteed_share: 0.25,", "drp: {accounting_group: group_general, "
                                                            "guaranteed_share: 0.25,")
    with pytest.raises(SpecError) as info:
        parse(text, "shared.yaml")
    assert "shared.yaml:" in str(info.value) and "accounting group 'group_general'" in str(info.value)
    # Differing only in case is refused too.
    text = MINIMAL.replace("drp: {guaranteed_share: 0.25,", "drp: {accounting_group: Group_General, "
                                                            "guaranteed_share: 0.25,")
    with pytest.raises(SpecError, match="'group_general' is also pool 'drp's"):
        parse(text, "case.yaml")


def test_members_file_and_manifests_use_the_safe_loader(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text("alice: [drp]\nalice: [prompt]\n")
    with pytest.raises(InputError, match="key 'alice' is given twice"):
        read_members(members)
    members.write_bytes(b"alice: [\xff]\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_members(members)
    with pytest.raises(InputError, match="aliases repeat"):
        parse_manifests("apiVersion: v1\nkind: ConfigMap\n" + bomb(), "m.yaml")


def test_observed_versions_bomb_exits_cleanly(tmp_path: Path) -> None:
    observed = tmp_path / "observed.yaml"
    observed.write_text(bomb())
    result = runner.invoke(app, ["upgrade", "plan", "--observed", str(observed)])
    # The CLI's run() turns this InputError into its message and exit code 1 (tests/spec/test_spec.py).
    assert isinstance(result.exception, InputError) and "aliases repeat" in str(result.exception)


def test_self_referring_alias_is_refused_not_a_recursion_error() -> None:
    # PyYAML registers an anchor before composing its children, so '&a [*a]' is a list that contains itself
    # (found by tests/fuzz).
    with pytest.raises(SpecError, match="an alias refers to a node that contains it"):
        parse(MINIMAL + "x: &a [*a, *a]\n", "loop.yaml")


def test_control_characters_are_refused_cleanly() -> None:
    with pytest.raises(SpecError, match="malformed YAML"):  # PyYAML's reader, before any parsing (tests/fuzz)
        parse("\x1f" + MINIMAL, "ctl.yaml")
