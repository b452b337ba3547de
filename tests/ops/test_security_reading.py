"""How the security benchmark reads a node: command lines, values and files, each against the rule of the
component that parses them and of kube-bench (aquasecurity/kube-bench@a73ce378418c71c5861e6963753f50dec3badadf)
that reports them. Every expected result is derived from the cited source, never from enclave's output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enclave.errors import InputError
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
    env = security.parse_env_file('KUBELET_EXTRA_ARGS="--authorization-mode=AlwaysAllow --authorization-mode=Webhook"')
    argv = security.kubelet_argv([], [env])
    assert security.parse_flags(argv[1:], security.KUBELET_SLICE_FLAGS) == {"--authorization-mode": "Webhook"}


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


def test_entries_that_are_no_envvar_or_volume_are_reported_not_a_traceback() -> None:
    """Review, stop 48: `env: [ETCD_CLIENT_CERT_AUTH]` (a string, not an EnvVar, which the API server refuses) and
    `volumes: [scratch]` ended `enclave security check` in an AttributeError. Skipping them passed a pod nothing
    could judge: the static pod is refused (the kubelet would not run it) and the volume is a finding, beside those
    of the well-formed entries (tests/ops/test_manifest_flaws.py has each malformed shape)."""
    pod = _pod(["etcd"], ["ETCD_CLIENT_CERT_AUTH", {"name": "ETCD_AUTO_TLS", "value": "true"}])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"etcd\.yaml Pod/kube-system/etcd containers\[0\]\(c\) env\[0\]: is a "
                                         r"string, not an EnvVar object"):
        node_config_from_manifests([("etcd.yaml", pod)])
    pod["spec"]["volumes"] = ["scratch", {"name": "host", "hostPath": {"path": "/"}}]
    result = run_check(BY_ID["POD-02"], objects=[("pod.yaml", pod)])  # POD-02: no hostPath volume
    assert (result.status, [f.where for f in result.findings]) == (
        "fail", ["pod.yaml Pod/kube-system/etcd volumes[0]", "pod.yaml Pod/kube-system/etcd volumes[1](host)"])


# ---- the kubelet's command line from systemd (finding 4) ---------------------------------------------------

# kubelet.service and kubeadm's drop-in 10-kubeadm.conf as the DEB packages install them (kubeadm docs,
# "Configuring each kubelet in your cluster using kubeadm", sections "The kubelet drop-in file for systemd" and
# "Kubernetes binaries and package contents":
# https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/kubelet-integration/).
KUBELET_SERVICE = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
DROP_IN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501 — the drop-in's lines as kubeadm's docs print them
KUBEADM_FLAGS = ('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock '
                 '--pod-infra-container-image=registry.k8s.io/pause:3.10"\n')
# What a kubeadm 1.33 node's kubelet config file says on the items below (KUBELET_CONFIG_133 of the upstream test).
SAFE_CONFIG = "authentication:\n  anonymous:\n    enabled: false\nauthorization:\n  mode: Webhook\n"


def _node_dir(tmp_path: Path) -> Path:
    root = tmp_path / "etc-kubernetes"
    (root / "manifests").mkdir(parents=True)
    (root / "kubelet").mkdir()
    (root / "kubelet" / "config.yaml").write_text(SAFE_CONFIG)
    (root / "kubelet" / "kubeadm-flags.env").write_text(KUBEADM_FLAGS)
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_kubeadm_drop_in_gives_the_kubelet_its_whole_command_line(tmp_path: Path) -> None:
    """The drop-in's ExecStart expands KUBELET_KUBECONFIG_ARGS and KUBELET_CONFIG_ARGS (Environment=),
    KUBELET_KUBEADM_ARGS (kubeadm-flags.env, here the node directory's kubelet/ copy) and KUBELET_EXTRA_ARGS
    (/etc/default/kubelet, here the operator's copy, matched by name)."""
    root = _node_dir(tmp_path)
    default = _write(tmp_path / "copies" / "kubelet", "KUBELET_EXTRA_ARGS=--anonymous-auth=true\n")
    command = security.read_kubelet_command([_write(tmp_path / "10-kubeadm.conf", DROP_IN), default], root)
    assert command.flags == {
        "--bootstrap-kubeconfig": "/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig": "/etc/kubernetes/kubelet.conf", "--config": "/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint": "unix:///var/run/containerd/containerd.sock",
        "--pod-infra-container-image": "registry.k8s.io/pause:3.10", "--anonymous-auth": "true"}
    assert command.read == (tmp_path / "10-kubeadm.conf", root / "kubelet" / "kubeadm-flags.env", default)
    assert command.unit == tmp_path / "10-kubeadm.conf"


def test_extra_args_on_the_command_line_beat_the_config_file(tmp_path: Path) -> None:
    """A flag wins over the config file (kubelet-config-file docs; kube-bench check/check.go execute reads the
    audit output first): --anonymous-auth=true from /etc/default/kubelet fails cfg/cis-1.12/node.yaml 4.2.1."""
    root = _node_dir(tmp_path)
    default = _write(tmp_path / "kubelet", "KUBELET_EXTRA_ARGS=--anonymous-auth=true\n")
    node = security.load_node_dir(root, kubelet_flags=[_write(tmp_path / "10-kubeadm.conf", DROP_IN), default])
    result = run_check(BY_ID["KUBELET-01"], node=node)
    assert result.status == "fail" and "--anonymous-auth" in result.findings[0].where


def test_flags_written_on_exec_start_count(tmp_path: Path) -> None:
    """systemd runs the ExecStart line itself; flags written there are the kubelet's (4.2.2 fails on
    AlwaysAllow)."""
    root = _node_dir(tmp_path)
    drop_in = DROP_IN.replace("$KUBELET_EXTRA_ARGS\n", "$KUBELET_EXTRA_ARGS --authorization-mode=AlwaysAllow\n")
    node = security.load_node_dir(root, kubelet_flags=[_write(tmp_path / "10-kubeadm.conf", drop_in)])
    assert node.kubelet_flags is not None and node.kubelet_flags["--authorization-mode"] == "AlwaysAllow"
    assert run_check(BY_ID["KUBELET-02"], node=node).status == "fail"


def test_empty_exec_start_resets_and_the_last_command_runs(tmp_path: Path) -> None:
    """systemd.service ExecStart=: "If the empty string is assigned to this option, the list of commands to start
    is reset, prior assignments of this option will have no effect." kubelet.service's bare ExecStart is dropped
    by the drop-in's empty one."""
    units = [security.parse_unit(KUBELET_SERVICE), security.parse_unit(DROP_IN)]
    argv = security.kubelet_argv(units, [])
    assert argv[0] == "/usr/bin/kubelet" and "--config=/var/lib/kubelet/config.yaml" in argv
    assert security.kubelet_argv([security.parse_unit(KUBELET_SERVICE)], []) == ["/usr/bin/kubelet"]


def test_environment_line_with_several_assignments() -> None:
    """systemd.exec Environment=: `Environment="VAR1=word1 word2" VAR2=word3 "VAR3=$word 5 6"` sets three
    variables; `$NAME` alone on ExecStart splits at whitespace, `${NAME}` stays one argument (systemd.service,
    "Command lines")."""
    unit = security.parse_unit('[Service]\nEnvironment="A=--anonymous-auth=true --read-only-port=10255" '
                               'B=--authorization-mode=AlwaysAllow "C=x y"\n'
                               "ExecStart=/usr/bin/kubelet $A $B --node-labels=${C}\n")
    assert unit.environment == {"A": "--anonymous-auth=true --read-only-port=10255",
                                "B": "--authorization-mode=AlwaysAllow", "C": "x y"}
    assert security.kubelet_argv([unit], []) == ["/usr/bin/kubelet", "--anonymous-auth=true", "--read-only-port=10255",
                                                 "--authorization-mode=AlwaysAllow", "--node-labels=x y"]


def test_environment_file_overrides_environment_and_later_files_win() -> None:
    """systemd.exec EnvironmentFile=: "Settings from these files override settings made with Environment=. If
    the same variable is set twice from these files, the files will be read in the order they are specified and
    the later setting will override the earlier setting." Quotes and comments as that section describes."""
    unit = security.parse_unit('[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--read-only-port=0"\n'
                               "ExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS\n")
    first = security.parse_env_file("# comment\n; comment\nKUBELET_EXTRA_ARGS='--read-only-port=10255'\nnoequals\n")
    second = security.parse_env_file('KUBELET_EXTRA_ARGS="--read-only-port=10250 \\"quoted\\""\n')
    assert first == {"KUBELET_EXTRA_ARGS": "--read-only-port=10255"}
    assert security.kubelet_argv([unit], [first]) == ["/usr/bin/kubelet", "--read-only-port=10255"]
    assert security.kubelet_argv([unit], [first, second])[1] == "--read-only-port=10250"


def test_kubelet_config_named_by_its_config_flag_is_read(tmp_path: Path) -> None:
    """With no --kubelet-config, the file the kubelet's --config names is the one it reads (and kube-bench reads,
    $kubeletconf); the node directory's kubelet/config.yaml (here anonymous off) is then not used."""
    root = _node_dir(tmp_path)
    real = _write(tmp_path / "var-lib-kubelet" / "config.yaml", "authentication:\n  anonymous:\n    enabled: true\n")
    drop_in = DROP_IN.replace("--config=/var/lib/kubelet/config.yaml", f"--config={real}")
    node = security.load_node_dir(root, kubelet_flags=[_write(tmp_path / "10-kubeadm.conf", drop_in)])
    assert node.files["kubelet-config"] == real
    assert run_check(BY_ID["KUBELET-01"], node=node).status == "fail"
    explicit = security.load_node_dir(root, kubelet_config=root / "kubelet" / "config.yaml",
                                      kubelet_flags=[tmp_path / "10-kubeadm.conf"])
    assert run_check(BY_ID["KUBELET-01"], node=explicit).status == "pass"  # --kubelet-config wins


def test_unreadable_config_flag_falls_back_with_a_note(tmp_path: Path) -> None:
    root = _node_dir(tmp_path)
    drop_in = DROP_IN.replace("/var/lib/kubelet/config.yaml", str(tmp_path / "absent" / "config.yaml"))
    notes: list[str] = []
    node = security.load_node_dir(root, kubelet_flags=[_write(tmp_path / "10-kubeadm.conf", drop_in)], notes=notes)
    assert node.files["kubelet-config"] == root / "kubelet" / "config.yaml"
    assert any("cannot be read here" in n for n in notes)


def test_missing_environment_file_without_dash_is_noted(tmp_path: Path) -> None:
    """systemd.exec: a path prefixed with "-" is skipped when missing; without it the unit does not start."""
    unit = "[Service]\nEnvironmentFile=/nonexistent/kubelet.env\nExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS\n"
    notes: list[str] = []
    command = security.read_kubelet_command([_write(tmp_path / "u.conf", unit)], _node_dir(tmp_path), notes)
    assert command.flags == {} and any("/nonexistent/kubelet.env" in n for n in notes)


def test_environment_files_alone_run_under_kubeadm_exec_start(tmp_path: Path) -> None:
    """With kubeadm-flags.env and /etc/default/kubelet but no unit, kubeadm's ExecStart is assumed: EXTRA_ARGS
    after KUBEADM_ARGS."""
    flags = _write(tmp_path / "kubeadm-flags.env", 'KUBELET_KUBEADM_ARGS="--read-only-port=0"\n')
    extra = _write(tmp_path / "kubelet", "KUBELET_EXTRA_ARGS=--read-only-port=10255\n")
    command = security.read_kubelet_command([flags, extra], _node_dir(tmp_path))
    assert command.flags == {"--read-only-port": "10255"} and command.unit is None


# ---- a file that is not there (finding 6) ------------------------------------------------------------------

def test_missing_control_plane_file_fails_as_in_kube_bench(tmp_path: Path) -> None:
    """cfg/cis-1.12/master.yaml 1.1.13/1.1.14 audit `for adminconf in …admin.conf …super-admin.conf; do if test -e
    $adminconf; then stat …; fi; done`: with neither file nothing is printed, the `permissions` / `root:root` test
    finds nothing and the scored item FAILS (check/test.go evaluate: set but not found)."""
    node = NodeConfig(root=tmp_path, flags={"apiserver": {}})  # a control-plane node without admin.conf
    for cid in ("FILE-09", "FILE-10", "FILE-11"):
        result = run_check(BY_ID[cid], node=node)
        assert result.status == "fail", cid
        assert "(no such file)" in result.findings[0].where and str(tmp_path / "admin.conf") in \
            run_check(BY_ID["FILE-09"], node=node).findings[0].where


def test_missing_kubelet_kubeconfig_fails_on_any_node(tmp_path: Path) -> None:
    """cfg/cis-1.12/node.yaml 4.1.5 (Automated, `if test -e $kubeletkubeconfig; …; fi`): kube-bench runs node
    checks on every node."""
    assert run_check(BY_ID["KFILE-01"], node=NodeConfig(root=tmp_path)).status == "fail"


def test_control_plane_files_on_a_worker_are_not_applicable(tmp_path: Path) -> None:
    """kube-bench runs master checks only where the API server runs (cmd/root.go: `if isMaster()`, else
    "== Skipping master checks ==")."""
    result = run_check(BY_ID["FILE-09"], node=NodeConfig(root=tmp_path))
    assert result.status == "na" and "not a control-plane node" in result.reason


def test_named_file_not_present_here_is_not_applicable(tmp_path: Path) -> None:
    """etcd's --data-dir is a path on the node; run elsewhere it cannot be seen, which says nothing of the node."""
    node = NodeConfig(root=tmp_path, flags={"apiserver": {}}, files={"etcd-data-dir": tmp_path / "absent"})
    assert run_check(BY_ID["FILE-18"], node=node).status == "na"


# ---- where enclave's reading of an absent setting differs from kube-bench's (finding 7) ---------------------

# kube-bench passes an absent --bind-address (cfg/cis-1.12/controlplane.yaml 1.3.7, 1.4.2: `bin_op: or` with a
# `set: false` item) and an absent --rotate-certificates (node.yaml 4.2.10, likewise); the components' defaults are
# 0.0.0.0 and false, which enclave fails — stricter, and said so with the result.
@pytest.mark.parametrize(("cid", "node"), [
    ("CM-05", NodeConfig(flags={"controller-manager": {}})),
    ("SCH-02", NodeConfig(flags={"scheduler": {}})),
    ("KUBELET-08", NodeConfig(kubelet={})),
])
def test_stricter_than_kube_bench_on_an_absent_setting_and_says_so(cid: str, node: NodeConfig) -> None:
    report = security.run([BY_ID[cid]], node=node, benchmark="cis-1.12")
    result = report.results[0]
    assert result.status == "fail" and result.check.differs.startswith("Stricter")
    assert f"differs from kube-bench: {result.check.differs}" in security.to_text(report)
    [row] = json.loads(security.to_json(report))["results"]
    assert row["differs_from_kube_bench"] == result.check.differs


def test_kubelet_default_where_kube_bench_fails_an_absent_key_is_said() -> None:
    """cfg/cis-1.12/node.yaml 4.2.1 and 4.2.2 have no set-false item: a config file without the key fails in
    kube-bench; the kubelet runs with its v1beta1 defaults (anonymous false, authorization Webhook)."""
    node = NodeConfig(kubelet={"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"})
    for cid in ("KUBELET-01", "KUBELET-02"):
        result = run_check(BY_ID[cid], node=node)
        assert result.status == "pass" and "kube-bench fails" in result.check.differs, cid


def test_checks_that_agree_with_kube_bench_say_nothing() -> None:
    """--profiling has no set-false item in kube-bench (cfg/cis-1.12/master.yaml 1.2.15) and defaults to true:
    both fail it when absent."""
    assert BY_ID["API-10"].differs == ""
    assert run_check(BY_ID["API-10"], node=NodeConfig(flags={"apiserver": {}})).status == "fail"


# ---- a bare boolean flag and whole numbers (finding 9) ------------------------------------------------------

def test_bare_boolean_flag_does_not_take_the_next_word() -> None:
    """pflag gives a bool flag NoOptDefVal "true" (spf13/pflag bool.go), so `--profiling false` sets it true and
    leaves "false" a positional; kube-bench's findValue reads "true" for it too. 1.2.15 fails."""
    node = _node("kube-apiserver", "--profiling", "false", "--authorization-mode", "Node,RBAC")
    assert node.flags["apiserver"] == {"--profiling": "true", "--authorization-mode": "Node,RBAC"}
    assert run_check(BY_ID["API-10"], node=node).status == "fail"


@pytest.mark.parametrize(("value", "status"), [("30", "pass"), ("45", "pass"), ("29", "fail"), ("30m", "fail"),
                                               ("100.5", "fail"), ("+30", "pass")])
def test_gte_reads_whole_numbers_only(value: str, status: str) -> None:
    """kube-bench's gte compares strconv.Atoi values and fails what Atoi refuses (check/test.go toNumeric);
    --audit-log-maxage is an int flag (k8s.io/apiserver options/audit.go IntVar). cis-1.12 1.2.17: ≥ 30."""
    node = NodeConfig(flags={"apiserver": {"--audit-log-maxage": value}})
    assert run_check(BY_ID["API-12"], node=node).status == status


@pytest.mark.parametrize("zero", ["0", "0s", "0m", "0h0m0s", 0])
def test_zero_duration_in_the_kubelet_config_takes_the_default(zero: Any) -> None:
    """KubeletConfiguration v1beta1 defaulting replaces a zero streamingConnectionIdleTimeout with 4h
    (pkg/kubelet/apis/config/v1beta1/defaults.go); Go's time.ParseDuration reads each spelling as zero."""
    result = run_check(BY_ID["KUBELET-05"], node=NodeConfig(kubelet={"streamingConnectionIdleTimeout": zero}))
    assert result.status == "pass" and result.checked[0].endswith(": 4h")


def test_empty_environment_assignments_reset_those_of_earlier_units() -> None:
    """systemd.exec: "If the empty string is assigned to this option, the list of environment variables is reset,
    all prior assignments have no effect" (Environment=), and likewise the list of files (EnvironmentFile=)."""
    main = security.parse_unit('[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--read-only-port=10255"\n'
                               "EnvironmentFile=/etc/default/kubelet\n")
    drop_in = security.parse_unit("[Service]\nEnvironment=\nEnvironmentFile=\n"
                                  "ExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS\n")
    assert security.kubelet_argv([main, drop_in], []) == ["/usr/bin/kubelet"]
    assert drop_in.resets_environment_files and drop_in.environment_files == []


def test_unbalanced_quotes_in_a_unit_are_a_clear_error(tmp_path: Path) -> None:
    unit = _write(tmp_path / "10-kubeadm.conf", '[Service]\nEnvironment="A=--x\nExecStart=/usr/bin/kubelet $A\n')
    with pytest.raises(InputError) as err:
        security.read_kubelet_command([unit], _node_dir(tmp_path))
    problem = err.value.problems[0]
    assert str(unit) in problem.where and "Environment=" in problem.where and "quotes" in problem.fix


# Each op at the values that tell it from its neighbours. kube-bench's check/test.go compareOp: gte/lte are numeric
# and inclusive ("gte": >=, "lte": <=); bitmask passes when the file's mode sets no bit the limit does not (0644
# against 0600 fails, 0400 passes: a mode numerically below the limit may still set another bit, 0604 < 0640).
# enclave's own ops are stricter than kube-bench's `has` (strings.Contains): an item of a comma-separated value,
# so NodeRestrictionX is not NodeRestriction; `in` is membership, `prefix` a start. A mutation round (stop 57)
# changed each of these and no test failed.
OPS = [
    ("lte", "10", [("10", True), ("9", True), ("11", False)]),
    ("gte", "10", [("10", True), ("11", True), ("9", False)]),
    ("mode_max", "640", [("640", True), ("600", True), ("604", False), ("644", False)]),
    ("prefix", "/etc/kubernetes/", [("/etc/kubernetes/pki", True), ("/var/etc/kubernetes/x", False)]),
    ("has", "NodeRestriction", [("AlwaysPullImages,NodeRestriction", True), ("NodeRestrictionX", False)]),
    ("in", ["RBAC", "Node"], [("Node", True), ("No", False), ("RBAC,Node", False)]),
]


@pytest.mark.parametrize(("op", "expected", "values"), OPS, ids=[o[0] for o in OPS])
def test_each_op_at_its_boundaries(op: str, expected: Any, values: list[tuple[str, bool]]) -> None:
    for value, passes in values:
        assert security.evaluate(security.Test(op, expected), value, {}) is passes, (op, expected, value)


def test_a_zero_duration_is_zero_in_every_go_spelling_and_no_other() -> None:
    """KubeletConfiguration defaulting replaces a zero duration (``zero_is_default``): Go's time.ParseDuration
    reads 0, 0s and 0h0m0s as zero, and 4h0m0s or 30s as not."""
    assert all(security._zero_duration(v) for v in ("0", "0s", "0h0m0s", "0.0s"))
    assert not any(security._zero_duration(v) for v in ("4h0m0s", "30s", "1m0s", "5"))


def test_a_default_that_changed_takes_the_newest_row_for_an_unknown_version() -> None:
    """``default_for``: the first row that fits the version; no version known, the newest row (the last)."""
    read = {"default": [{"value": "old", "until": "1.20"}, {"value": "new", "since": "1.20"}]}
    assert security.default_for(read, security.Version.parse("1.19.0")) == "old"
    assert security.default_for(read, security.Version.parse("1.25.0")) == "new"
    assert security.default_for(read, None) == "new"


def test_a_null_in_a_config_is_a_setting_left_out() -> None:
    """YAML `key: null` (`key:` with nothing after it) sets nothing, as the component's decoder leaves the field
    unset: resolve reports it missing, so the default applies."""
    assert security.resolve({"authentication": {"anonymous": None}}, "authentication.anonymous") == [security.MISSING]
    assert security.resolve({"a": {"b": False}}, "a.b") == [False]
