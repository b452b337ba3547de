"""A YAML boolean is never read as a number: pydantic's lax mode would take `count: true` as 1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from pydantic import Field, ValidationError

from enclave.errors import SpecError
from enclave.spec import load, parse
from enclave.spec.defaults import EXAMPLES
from enclave.spec.models import Strict

from .test_spec import base, problems

MINIMAL = EXAMPLES / "minimal.yaml"
WANTED = "a boolean where a number is wanted: write the number"
AT = "a boolean where a number is wanted at"  # an item of a list, tuple or dict


@pytest.mark.parametrize(
    ("path", "value", "where", "read_as"),
    [
        (["cluster", "node_groups", 1, "count"], True, "cluster.node_groups[1].count", "true would be read as 1"),
        (["cluster", "node_groups", 2, "memory_gib"], False, "cluster.node_groups[2].memory_gib",
         "false would be read as 0"),
        (["pools", "drp", "guaranteed_share"], True, "pools.drp.guaranteed_share", "true would be read as 1"),
        (["notebooks", "sizes", "small", "memory_limit_mib"], True, "notebooks.sizes.small.memory_limit_mib",
         "true would be read as 1"),
        # int | None: the Optional is looked through.
        (["batch", "htcondor"], {"claim_worklife": False}, "batch.htcondor.claim_worklife",
         "false would be read as 0"),
    ],
)
def test_a_boolean_for_a_number_is_refused_at_its_key(path: list[str | int], value: Any, where: str,
                                                       read_as: str) -> None:
    data = base()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = problems(data)
    assert any("bad.yaml:" in p and f": {where}: {WANTED} ({read_as})" in p for p in found), found


def test_the_loader_names_file_line_and_key(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(MINIMAL.read_text().replace("role: worker, count: 2", "role: worker, count: true")
                 .replace("role: batch-only, count: 2, cores: 8, memory_gib: 32",
                          "role: batch-only, count: 2, cores: 8, memory_gib: false"))
    with pytest.raises(SpecError) as info:
        load(f)
    assert [str(p) for p in info.value.problems] == [
        f"{f}:9: cluster.node_groups[1].count: {WANTED} (true would be read as 1)",
        f"{f}:10: cluster.node_groups[2].memory_gib: {WANTED} (false would be read as 0)",
    ]


def test_cli_validate_exits_non_zero_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(MINIMAL.read_text().replace("role: worker, count: 2", "role: worker, count: true"))
    monkeypatch.setattr("sys.argv", ["enclave", "spec", "validate", str(f)])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert f"{f}:9: cluster.node_groups[1].count: {WANTED} (true would be read as 1)" in err
    assert "Traceback" not in err


def test_real_boolean_fields_still_take_true_and_false() -> None:
    for flag in (True, False):
        data = base()
        data["cluster"]["drain"] = {"force": flag, "ignore_daemonsets": flag, "delete_emptydir_data": flag}
        data["registry"]["vetting_required"] = flag
        data["batch"]["htcondor"] = {"consumption_policy": flag, "submit_send_reschedule": flag}  # bool, bool | None
        spec = parse(yaml.safe_dump(data, sort_keys=False), "ok.yaml")
        assert spec.cluster.drain.force is flag and spec.registry.vetting_required is flag
        assert spec.batch.htcondor.consumption_policy is flag and spec.batch.htcondor.submit_send_reschedule is flag


class Shapes(Strict):
    """Annotations the rule must see through; not fields of the spec, but of any model on a Strict base."""

    bounded: Annotated[int, Field(ge=0)] | None = None
    either: bool | int = 0
    anything: Any = None
    flag_or_word: Literal[True, "auto"] = "auto"
    flag_or_count: Literal[True] | int = 0
    word_or_number: float | Literal["twilight"] = 0.0
    numbers: list[int] = []
    pair: tuple[float, float] = (0.0, 0.0)
    labelled: tuple[str, float] = ("", 0.0)
    many: tuple[float, ...] = ()
    by_name: dict[str, float] = {}
    table_or_list: dict[str, int] | list[int] = []
    flags: list[bool] = []
    name: str = ""


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bounded", True, f"{WANTED} (true would be read as 1)"),
        ("word_or_number", False, f"{WANTED} (false would be read as 0)"),
        ("numbers", [1, True], f"{AT} [1]: write the number (true would be read as 1)"),
        ("pair", [1.0, False], f"{AT} [1]: write the number (false would be read as 0)"),
        ("many", [False], f"{AT} [0]: write the number (false would be read as 0)"),
        ("by_name", {"a": 1, "b": True}, f"{AT} [b]: write the number (true would be read as 1)"),
        # Each item against its own place in a fixed tuple, every item against the one type of a variadic one,
        # and a list against the list arm even where a dict arm comes first.
        ("labelled", ["x", True], f"{AT} [1]: write the number (true would be read as 1)"),
        ("many", [1.0, 2.0, True], f"{AT} [2]: write the number (true would be read as 1)"),
        ("table_or_list", [1, True], f"{AT} [1]: write the number (true would be read as 1)"),
    ],
)
def test_the_rule_sees_through_optional_annotated_and_containers(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Shapes.model_validate({field: value})
    (error,) = info.value.errors()
    assert error["loc"] == (field,) and error["type"] == "bool_as_number" and error["msg"] == message


def test_types_that_take_a_boolean_keep_taking_it() -> None:
    shapes = Shapes.model_validate({"either": True, "anything": False, "flag_or_word": True, "flags": [True, False],
                                    "flag_or_count": True})
    assert shapes.either is True and shapes.anything is False and shapes.flag_or_word is True
    assert shapes.flag_or_count is True
    assert shapes.flags == [True, False]


def test_a_boolean_for_a_string_keeps_pydantic_s_own_error() -> None:
    with pytest.raises(ValidationError) as info:
        Shapes.model_validate({"name": True})
    (error,) = info.value.errors()
    assert error["type"] == "string_type"


@pytest.mark.parametrize(("value", "kind"), [
    ([1.0, 2.0, True], "too_long"),  # a fixed tuple given more items than it has places
    ({"a": True}, "tuple_type"),  # a mapping where a tuple is wanted
])
def test_a_value_of_the_wrong_shape_keeps_pydantic_s_own_error(value: Any, kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        Shapes.model_validate({"pair": value})
    (error,) = info.value.errors()
    assert error["type"] == kind
