"""Every validation rule, with a bad spec that must fail with its own message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from enclave.cli import app
from enclave.errors import SpecError
from enclave.spec import dump, load, parse
from enclave.spec.defaults import EXAMPLES

LDF = EXAMPLES / "lsst-ldf.yaml"
MINIMAL = EXAMPLES / "minimal.yaml"


def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MINIMAL.read_text())
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse(yaml.safe_dump(data, sort_keys=False), "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_examples_are_valid() -> None:
    ldf = load(LDF)
    assert ldf.cluster.kubernetes_version == "1.9.3"
    assert ldf.storage.home_quota_gib == 100
    assert load(MINIMAL).cluster.name == "mini"


def mutate(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["pools", "prompt", "guaranteed_share"], 0.9, "guaranteed shares add up to 115%"),
        (["pools", "user", "guaranteed_share"], 0.6, "guaranteed_share 0.6 is above max_share 0.5"),
        (["notebooks", "default_size"], "huge", "default size 'huge' is not defined"),
        (["storage"], {"workspace_subdir": "."}, "is not a subdirectory of the home area"),
        (["storage"], {"workspace_subdir": "/jhome/u"}, "is not a subdirectory of the home area"),
        (["storage"], {"workspace_subdir": "../other"}, "is not a subdirectory of the home area"),
        (["notebooks", "images"], ["docker.io/lsst/lab:1.0"], "not from the local registry"),
        (["notebooks", "images"], ["registry.example.org/lab"], "is not registry/repository:tag"),
        (["storage"], {"cached_images_per_node": 11}, "do not fit in 100 GiB of node-local storage"),
        (["storage"], {"node_local_gib": 200}, "less than the 200 GiB node-local storage"),
        (["batch", "default_pool"], "nightly", "default pool 'nightly' is not defined"),
        (["notebooks", "bounds"], {"min_cpu": 5}, "min_cpu 5.0 is above max_cpu 4.0"),
        (["notebooks", "bounds"], {"min_memory_mib": 9000}, "above max_memory_mib"),
        # The pool's key: every daemon takes it (store_cred.cpp getTokenSigningKey), so the hub must not hold it.
        (["notebooks", "batch_tokens"], {"enabled": True, "key": "POOL"}, "may not be POOL"),
        (["notebooks", "batch_tokens"], {"key": "../POOL"}, "should match pattern"),
        (["notebooks", "batch_tokens"], {"lifetime_seconds": 0}, "greater than 0"),
    ],
)
def test_rule(path: list[str | int], value: Any, message: str) -> None:
    found = problems(mutate(path, value))
    assert any(message in p for p in found), found


def test_size_out_of_bounds_names_file_line_path_and_fix() -> None:
    data = mutate(["notebooks", "sizes", "small", "cpu_limit"], 8)
    found = problems(data)
    assert len(found) == 1
    line = found[0]
    assert line.startswith("bad.yaml:")
    assert "notebooks.sizes.small" in line and "outside the bounds 0.5–4.0 cores" in line and "fix:" in line


def test_request_above_limit() -> None:
    data = mutate(["notebooks", "sizes", "small"],
                  {"cpu_request": 1, "cpu_limit": 0.5, "memory_request_mib": 4000, "memory_limit_mib": 2048})
    found = problems(data)
    assert any("cpu_request 1.0 is above cpu_limit 0.5" in p for p in found)
    assert any("memory_request_mib 4000 is above memory_limit_mib 2048" in p for p in found)


def test_missing_pool_and_duplicate_group_and_no_control_plane() -> None:
    data = base()
    del data["pools"]["general"]
    data["cluster"]["node_groups"] = [data["cluster"]["node_groups"][1], data["cluster"]["node_groups"][1]]
    found = problems(data)
    assert any("missing pool(s): general" in p for p in found)
    assert any("defined twice" in p for p in found)
    assert any("no control-plane node" in p for p in found)


def test_a_worker_group_whose_pods_names_the_kubelet_would_cut_is_refused() -> None:
    """The kubelet cuts a pod's host name to 63 characters (pkg/kubelet/kubelet_pods.go,
    truncatePodHostnameIfNeeded), and a share pod's startd advertises that host name as its Machine: the broker
    would never match pod and startd. The longest share pod name on a group is htcondor-<group>-<last index>-<n>,
    n up to twice the worker's cores (numbers past the cores while pods still terminate)."""
    data = base()
    [workers] = [g for g in data["cluster"]["node_groups"] if g["role"] == "worker"]
    assert (workers["count"], workers["cores"]) == (2, 8)
    # "htcondor-" (9) + name + "-002" (4) + "-16" (3): 63 exactly with a 47-character name.
    workers["name"] = "w" * 47
    parse(yaml.safe_dump(data, sort_keys=False), "ok.yaml")
    workers["name"] = "w" * 48
    found = problems(data)
    assert any("would be named up to 64 characters" in p and "shorten the group's name by 1" in p for p in found), found


def test_a_pool_name_with_a_dash_is_refused() -> None:
    """HTCondor refuses "ENCLAVE_GRACE_late-night = …" in a config file ("Illegal Identifier": a macro name holds
    letters, digits and _./, condor_utils/config.cpp condor_isidchar), and the startd config names a macro
    after each pool."""
    data = base()
    data["pools"]["late-night"] = {"guaranteed_share": 0.0, "max_share": 0.1, "priority": 5}
    found = problems(data)
    assert any("pool name 'late-night' has a '-'" in p and "'latenight'" in p for p in found), found


def test_a_start_timeout_within_the_pods_start_is_refused() -> None:
    """``broker.start_timeout_seconds`` gives up a worker pod whose startd has not joined; ``pod_start_seconds`` is how
    long joining takes. Within it, every pod would be given up before it could join."""
    data = base()
    data["broker"] = {**(data.get("broker") or {}), "pod_start_seconds": 300, "start_timeout_seconds": 300}
    found = problems(data)
    assert len(found) == 1 and "broker.start_timeout_seconds (300 s) is not past broker.pod_start_seconds" in found[0]
    data["broker"]["start_timeout_seconds"] = 301
    assert parse(yaml.safe_dump(data, sort_keys=False)).broker.start_timeout_seconds == 301


def test_lending_whole_workers_needs_the_drain_flags_kubectl_would_refuse_without() -> None:
    """kubectl drain refuses a node with DaemonSet pods unless --ignore-daemonsets, one with pods that declare no
    controller (KubeSpawner's notebooks) unless --force, and one with emptyDir pods unless --delete-emptydir-data
    (kubectl pkg/drain/filters.go, daemonSetFilter, unreplicatedFilter and localStorageFilter): BCS 5 would ask for
    the same refused drain every cycle."""
    data = mutate(["cluster", "drain"], {"force": True, "delete_emptydir_data": True})
    data["broker"] = {**(data.get("broker") or {}), "lend_mode": "nodes"}
    found = problems(data)
    assert len(found) == 1 and "cluster.drain" in found[0] and "leaves ignore_daemonsets off" in found[0], found
    data["cluster"]["drain"] = {}
    assert "leaves force and ignore_daemonsets and delete_emptydir_data off" in problems(data)[0]
    data["cluster"]["drain"] = {"force": True, "ignore_daemonsets": True, "delete_emptydir_data": True}
    assert parse(yaml.safe_dump(data, sort_keys=False)).broker.lend_mode.value == "nodes"
    data["cluster"]["drain"], data["broker"]["lend_mode"] = {}, "pods"  # pods mode drains no worker
    assert parse(yaml.safe_dump(data, sort_keys=False)).cluster.drain.force is False


def test_htcondor_refuses_a_dash_in_a_macro_name(tmp_path: Path) -> None:
    """The fact the rule above rests on, read from the installed HTCondor."""
    from enclave.batch.render import read_back
    from enclave.errors import ExternalError

    conf = tmp_path / "dash.conf"
    conf.write_text("ENCLAVE_GRACE_late-night = 600\n")
    with pytest.raises(ExternalError, match="Illegal Identifier"):
        read_back(conf, ["ENCLAVE_GRACE_late-night"], subsystem="STARTD")
    conf.write_text("ENCLAVE_GRACE_latenight = 600\n")
    assert read_back(conf, ["ENCLAVE_GRACE_latenight"], subsystem="STARTD") == {"ENCLAVE_GRACE_latenight": "600"}


def test_all_problems_reported_at_once() -> None:
    data = base()
    data["notebooks"]["default_size"] = "huge"
    data["pools"]["user"]["guaranteed_share"] = 0.9
    data["storage"] = {"workspace_subdir": ""}
    assert len(problems(data)) >= 3


def test_unknown_key_has_line_and_path(tmp_path: Path) -> None:
    text = MINIMAL.read_text().replace("  network_overlay: weave", "  network_overlay: weave\n  netwrok: x")
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as info:
        load(f)
    (p,) = info.value.problems
    assert str(p).startswith(f"{f}:6: cluster.netwrok: unknown key 'netwrok'")
    assert "fix:" in str(p)


def test_wrong_type_and_unknown_role() -> None:
    data = mutate(["cluster", "node_groups", 1, "cores"], "many")
    (p,) = problems(data)
    assert "cluster.node_groups[1].cores" in p and "integer" in p
    data = base()
    data["roles"] = {"wizard": {}}
    (p,) = problems(data)
    assert "roles.wizard" in p


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("cluster:\n  name: [unclosed\n")
    with pytest.raises(SpecError) as info:
        load(f)
    assert str(info.value).startswith(f"{f}:")
    assert "malformed YAML" in str(info.value)


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        parse("- 1\n- 2\n")
    with pytest.raises(SpecError, match="file not found"):
        load(tmp_path / "nope.yaml")


runner = CliRunner()


def test_cli_validate_ok_and_bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.cli import main

    ok = runner.invoke(app, ["spec", "validate", str(MINIMAL)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.read_text().replace("default_size: small", "default_size: huge"))
    monkeypatch.setattr("sys.argv", ["enclave", "spec", "validate", str(bad)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1


def test_cli_main_prints_one_line_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {name: x, extra: 1\n")
    monkeypatch.setattr("sys.argv", ["enclave", "spec", "validate", str(bad)])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "Traceback" not in err and "malformed YAML" in err and str(bad) in err


def test_cli_show_summary() -> None:
    result = runner.invoke(app, ["spec", "show", str(LDF)])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("lsst-ldf", "Batch pools (960 standalone batch cores)", "prompt", "98% within 60 s",
                 "816", "100 GiB", "10 TiB", "htcondor-admin"):
        assert text in out


def test_round_trip_examples() -> None:
    for f in (LDF, MINIMAL):
        spec = load(f)
        assert parse(dump(spec)) == spec
