"""How the security benchmark reads a node: command lines, values and files, each against the rule of the
component that parses them and of kube-bench (aquasecurity/kube-bench@a73ce378418c71c5861e6963753f50dec3badadf)
that reports them. Every expected result is derived from the cited source, never from enclave's output."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.ops import security
from enclave.ops.security import NodeConfig, node_config_from_manifests, run_check

_, CHECKS = security.shipped_checks()
BY_ID = {c.id: c for c in CHECKS}


def _pod(command: list[str], env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "registry.k8s.io/kube-apiserver:v1.33.0", "command": command}
    if env is not None:
        container["env"] = env
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": command[0], "namespace": "kube-system"},
            "spec": {"containers": [container]}}


def _node(*command: str) -> NodeConfig:
    return node_config_from_manifests([("manifest.yaml", _pod(list(command)))])


# ---- repeated list flags (finding 1) --------------------------------------------------------------------

# pflag's StringSlice appends on every occurrence (spf13/pflag string_slice.go stringSliceValue.Set), so the API
# server runs AlwaysAllow first here, admits everything, and has NamespaceLifecycle disabled; the controller
# manager's feature gates merge (component-base featuregate Set → SetFromMap), so the gate is off. Each of these
# cis-1.12 items (cfg/cis-1.12/master.yaml 1.2.6, 1.2.10, 1.2.13, 1.3.6) is Automated and fails.
@pytest.mark.parametrize(("cid", "command"), [
    ("API-04", ["kube-apiserver", "--authorization-mode=AlwaysAllow", "--authorization-mode=Node,RBAC"]),
    ("API-07", ["kube-apiserver", "--enable-admission-plugins=AlwaysAdmit",
                "--enable-admission-plugins=NodeRestriction"]),
    ("API-25", ["kube-apiserver", "--disable-admission-plugins=NamespaceLifecycle",
                "--disable-admission-plugins", "AlwaysPullImages"]),
    ("CM-06", ["kube-controller-manager", "--feature-gates=RotateKubeletServerCertificate=false",
               "--feature-gates=SomeOtherGate=true"]),
])
def test_every_occurrence_of_a_list_flag_counts(cid: str, command: list[str]) -> None:
    assert run_check(BY_ID[cid], node=_node(*command)).status == "fail"


def test_list_flag_occurrences_are_joined_and_scalar_flags_keep_the_last() -> None:
    flags = security.parse_flags(["--authorization-mode=Node", "--authorization-mode=RBAC", "--profiling=true",
                                  "--profiling=false"])
    assert flags == {"--authorization-mode": "Node,RBAC", "--profiling": "false"}
    # The kubelet's --authorization-mode is a plain string (cmd/kubelet/app/options/options.go StringVar).
    kubelet = security.parse_kubelet_env('KUBELET_EXTRA_ARGS="--authorization-mode=AlwaysAllow '
                                         '--authorization-mode=Webhook"\n')
    assert kubelet == {"--authorization-mode": "Webhook"}


# ---- booleans as the components read them (finding 2) -----------------------------------------------------

# Every boolean flag is read by Go's strconv.ParseBool (spf13/pflag bool.go boolValue.Set for the Kubernetes
# components; Go's flag package, the same, for etcd): 1, t, T, TRUE, true, True are true; 0, f, F, FALSE, false,
# False are false. kube-bench's `eq` lower-cases a boolean before comparing (check/test.go compareOp).
@pytest.mark.parametrize("spelling", ["True", "TRUE", "1", "t", "T"])
def test_auto_tls_spelled_any_way_go_reads_as_true_fails(spelling: str) -> None:
    """cfg/cis-1.12/etcd.yaml 2.3 and 2.6 (Automated): --auto-tls / --peer-auto-tls absent or false."""
    for cid, flag in (("ETCD-02", "--auto-tls"), ("ETCD-04", "--peer-auto-tls")):
        node = NodeConfig(flags={"etcd": security.parse_flags([f"{flag}={spelling}"])})
        assert run_check(BY_ID[cid], node=node).status == "fail", (cid, spelling)


@pytest.mark.parametrize("spelling", ["False", "FALSE", "0", "f", "F"])
def test_profiling_spelled_any_way_go_reads_as_false_passes(spelling: str) -> None:
    """cfg/cis-1.12/master.yaml 1.2.15, 1.3.2, 1.4.1: --profiling eq false."""
    for cid, target in (("API-10", "apiserver"), ("CM-01", "controller-manager"), ("SCH-01", "scheduler")):
        node = NodeConfig(flags={target: security.parse_flags([f"--profiling={spelling}"])})
        assert run_check(BY_ID[cid], node=node).status == "pass", (cid, spelling)


def test_a_word_go_does_not_read_as_a_bool_is_not_one() -> None:
    """strconv.ParseBool refuses "no" and "off" (the component would not start); they are not false here either."""
    node = NodeConfig(flags={"apiserver": {"--profiling": "no"}})
    assert run_check(BY_ID["API-10"], node=node).status == "fail"
    assert security.evaluate(security.Test("eq", "0"), "0", {})  # a number compared with a number stays one


@pytest.mark.parametrize("gate", ["False", "0", "f", "FALSE"])
def test_feature_gate_turned_off_in_any_spelling_fails(gate: str) -> None:
    """component-base featuregate Set reads each gate's value with strconv.ParseBool; cfg/cis-1.12/master.yaml
    1.3.6: --feature-gates must not have RotateKubeletServerCertificate=false."""
    node = _node("kube-controller-manager", f"--feature-gates=Other=true,RotateKubeletServerCertificate={gate}")
    assert run_check(BY_ID["CM-06"], node=node).status == "fail"


# ---- etcd's ETCD_* environment (finding 3) -----------------------------------------------------------------

def _etcd(command: list[str], env: dict[str, str]) -> NodeConfig:
    pod = _pod(["etcd", *command], [{"name": k, "value": v} for k, v in env.items()])
    return node_config_from_manifests([("etcd.yaml", pod)])


def test_etcd_takes_an_absent_flag_from_its_environment() -> None:
    """etcd sets a flag it was not given from ETCD_<FLAG> (etcdmain/config.go configFromCmdLine → pkg/flags
    SetFlagsFromEnv); kube-bench reads the same variables when the flag is absent (cfg/cis-1.12/etcd.yaml 2.1–2.6
    `env: ETCD_*`, check/check.go execute). 2.3 fails on auto TLS, 2.2 and 2.1 pass on the variables."""
    node = _etcd([], {"ETCD_AUTO_TLS": "true", "ETCD_CLIENT_CERT_AUTH": "true",
                      "ETCD_CERT_FILE": "/pki/server.crt", "ETCD_KEY_FILE": "/pki/server.key"})
    auto_tls = run_check(BY_ID["ETCD-02"], node=node)
    assert auto_tls.status == "fail" and "ETCD_AUTO_TLS" in auto_tls.findings[0].where
    assert run_check(BY_ID["ETCD-01"], node=node).status == "pass"
    assert run_check(BY_ID["ETCD-05"], node=node).status == "pass"


def test_etcd_flag_wins_over_its_variable_and_an_empty_variable_is_ignored() -> None:
    """SetFlagsFromEnv skips a flag set on the command line (alreadySet) and a variable whose value is empty."""
    node = _etcd(["--auto-tls=false"], {"ETCD_AUTO_TLS": "true", "ETCD_PEER_AUTO_TLS": ""})
    assert run_check(BY_ID["ETCD-02"], node=node).status == "pass"
    assert node.flags["etcd"] == {"--auto-tls": "false"}


def test_etcd_with_a_config_file_reads_no_variables() -> None:
    """etcdmain/config.go parse: with --config-file the file is read (configFromFile), not flags or variables."""
    node = _etcd(["--config-file=/etc/etcd/etcd.conf.yml"], {"ETCD_AUTO_TLS": "true"})
    assert "--auto-tls" not in node.flags["etcd"]
