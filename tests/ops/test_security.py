"""Security benchmark: every check fails its failing fixture and passes its passing one; outputs and CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from enclave.errors import InputError
from enclave.ops import security
from enclave.ops.security import NodeConfig, evaluate, parse_checks, parse_flags, resolve, run_check, shipped_checks

FIXTURES = yaml.safe_load((Path(__file__).parent / "security_fixtures.yaml").read_text())
PARAMS = {"registry": "registry.lsst.local", "home_root": "/jhome"}
_, CHECKS = shipped_checks()
BY_ID = {c.id: c for c in CHECKS}


def _inputs(check: security.Check, raw: dict[str, Any]) -> dict[str, Any]:
    if "flags" in raw:
        return {"node": NodeConfig(flags={check.target: parse_flags(raw["flags"])})}
    if "kubelet_flags" in raw:
        return {"node": NodeConfig(kubelet=raw.get("kubelet"), kubelet_flags=parse_flags(raw["kubelet_flags"]))}
    if "kubelet" in raw:
        return {"node": NodeConfig(kubelet=raw["kubelet"])}
    if "container" in raw:
        raw = {"pod": {"containers": [{"name": "c", "image": "registry.lsst.local/x@sha256:" + "0" * 64,
                                       **raw["container"]}]}}
    if "pod" in raw:
        pod = {"containers": [{"name": "c", "image": "registry.lsst.local/x@sha256:" + "0" * 64}], **raw["pod"]}
        raw = {"objects": [{"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "p", "namespace": "jupyter-lsst"}, "spec": pod}]}
    return {"objects": [(f"fixture#{i}", o) for i, o in enumerate(raw["objects"])]}


FLAG_CHECKS = {cid: c for cid, c in BY_ID.items() if c.target != "file"}  # file checks: test_security_upstream


def test_at_least_thirty_checks_each_with_both_fixtures() -> None:
    assert len(CHECKS) >= 30
    assert sorted(FIXTURES) == sorted(FLAG_CHECKS), "every check needs a fixture and every fixture a check"
    for cid, fx in FIXTURES.items():
        assert set(fx) == {"fail", "pass"}, cid


@pytest.mark.parametrize("cid", sorted(FLAG_CHECKS))
def test_check_fails_bad_and_passes_good(cid: str) -> None:
    check = BY_ID[cid]
    bad = run_check(check, params=PARAMS, **_inputs(check, FIXTURES[cid]["fail"]))
    assert bad.status == ("fail" if check.scored else "warn"), (cid, bad)
    assert bad.findings
    good = run_check(check, params=PARAMS, **_inputs(check, FIXTURES[cid]["pass"]))
    assert good.status == "pass", (cid, good)


def test_workload_kinds_are_walked() -> None:
    pod = {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}
    objs = [
        ("d", {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": pod}}}),
        ("cj", {"kind": "CronJob", "metadata": {"name": "cj"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}),
        ("ds", {"kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": {"spec": pod}}}),
        ("svc", {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": []}}),
    ]
    r = run_check(BY_ID["POD-01"], objects=objs)
    assert r.status == "fail" and len(r.findings) == 3


def test_waiver_annotation_keeps_the_finding_visible() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {"security.enclave.lsst.io/waive-POD-02": "GPFS, approved by sec"}},
           "spec": {"containers": [], "volumes": [{"name": "g", "hostPath": {"path": "/gpfs"}}]}}
    r = run_check(BY_ID["POD-02"], objects=[("f", obj)])
    assert r.status == "waived" and r.findings[0].waived == "GPFS, approved by sec"


def test_not_applicable_when_component_absent() -> None:
    assert run_check(BY_ID["API-01"], node=None).status == "na"
    assert run_check(BY_ID["API-01"], node=NodeConfig()).status == "na"
    assert run_check(BY_ID["KUBELET-01"], node=NodeConfig()).status == "na"


def test_flag_parsing_and_evaluation_edges() -> None:
    assert parse_flags(["--a=b=c", "--bool", "--x", "1", "positional"]) == {"--a": "b=c", "--bool": "true", "--x": "1"}
    assert evaluate(security.Test("gte", "30"), "45", {}) and not evaluate(security.Test("gte", "30"), "abc", {})
    assert evaluate(security.Test("none_of", ["0s"]), "5m", {})
    assert resolve({"a": [{"b": 1}, {"b": 2}]}, "a.*.b") == [1, 2]
    assert resolve({}, "a.b") == [security.MISSING]


def test_bad_check_data_is_reported_with_every_problem() -> None:
    text = """
benchmark: {version: cis-1.12}
checks:
  - {id: X-1, section: s, text: t, target: nowhere, read: {path: a}, test: {op: eq, value: 1}, remediation: r,
     cis: {id: null, note: n}}
  - {id: X-1, section: s, text: t, target: container, read: {flag: a}, test: {op: frobnicate}, remediation: r,
     cis: {id: "1.2.1", type: Manual}, scored: true}
  - {id: X-2, section: s, text: t, target: pod, read: {path: a}, test: {op: set}, remediation: r,
     cis: {id: "9.9", type: Sometimes}}
  - {id: X-5, section: s, text: t, target: pod, read: {path: a}, test: {op: set}, remediation: r,
     cis: {id: "1.2.1", type: Automated, title: Ensure that the --anonymous-auth argument is set to false}}
  - {id: X-4, section: s, text: t, target: pod, read: {path: a}, test: {op: set}, remediation: r}
  - {id: X-3}
"""
    with pytest.raises(InputError) as e:
        parse_checks(text, "bad.yaml")
    msgs = " | ".join(str(p) for p in e.value.problems)
    assert "unknown target" in msgs and "duplicate id" in msgs and "unknown test op" in msgs
    assert "read needs 'path'" in msgs and "missing or malformed" in msgs
    # cfg/cis-1.12/master.yaml 1.2.1: scored: false, so kube-bench never fails it; scoring it needs a policy
    assert "cis-1.12 1.2.1 is not scored by kube-bench, yet scored here without a policy note" in msgs
    assert "cis-1.12 has no item 9.9" in msgs
    # kube-bench cfg/cis-1.12/master.yaml: 1.2.1 is "(Manual)"; the data must say so
    assert "cis-1.12 1.2.1 is Manual: 'Ensure that the --anonymous-auth argument is set to false'" in msgs
    assert "no cis mapping" in msgs


def test_outputs_text_json_junit() -> None:
    objs = [("f", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "docker.io/x:latest"}]}})]
    report = security.run(CHECKS, objects=objs, params=PARAMS, data_version="t")
    assert report.failed
    text = security.to_text(report)
    assert "[FAIL] IMG-01" in text and "remediation:" in text and "summary:" in text
    data = json.loads(security.to_json(report))
    assert data["summary"]["fail"] == report.count("fail") > 0
    assert {r["id"] for r in data["results"]} == set(BY_ID)
    root = ET.fromstring(security.to_junit(report))
    assert root.tag == "testsuite" and int(root.get("tests", "0")) == len(CHECKS)
    assert int(root.get("failures", "0")) == len(root.findall("testcase/failure")) == report.count("fail")
    assert len(root.findall("testcase/skipped")) == report.count("na")


def test_node_dir_from_kubeadm_layout(kubernetes_tree: Path) -> None:
    (kubernetes_tree / "kubelet").mkdir()
    (kubernetes_tree / "kubelet" / "config.yaml").write_text("authentication: {anonymous: {enabled: false}}\n")
    node = security.load_node_dir(kubernetes_tree)
    assert node.flags["apiserver"]["--anonymous-auth"] == "false"
    assert run_check(BY_ID["API-01"], node=node).status == "pass"
    assert run_check(BY_ID["API-21"], node=node).status == "warn"  # CIS 1.2.27 is Manual
    assert run_check(BY_ID["API-16"], node=node).status == "fail"  # no etcd client pair in the tree
    assert run_check(BY_ID["KUBELET-01"], node=node).status == "pass"
