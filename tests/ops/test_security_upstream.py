"""The benchmark against what its upstream sources say for the same inputs.

Two nodes are written the way kubeadm writes them: the seed's 1.9 cluster (DMTN-084 §9: v1.9.3) and a current
kubeadm (1.33). Each is checked under the benchmark kube-bench chooses for its release (cfg/config.yaml
version_mapping, commit a73ce378): 1.33 → cis-1.12; 1.9 is older than every mapped release, so the oldest,
cis-1.5. Each expected result is worked out from that benchmark's item (kube-bench cfg/<benchmark>/*.yaml: number,
"(Automated)"/"(Manual)" — "(Scored)"/"(Not Scored)" in cis-1.5 — and the expected value), the component's
documented default for an absent flag, and the version rules cited in security-checks.yaml — never from enclave's
output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from enclave.ops import security
from enclave.ops.manifests import load_manifests
from enclave.ops.security import NodeConfig, parse_flags, run_check
from enclave.ops.versions import Version

_, CHECKS, BENCH = security.shipped_benchmark()
BY_ID = {c.id: c for c in CHECKS}
PKI = "/etc/kubernetes/pki"


def _static_pod(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name}},
            "spec": {"hostNetwork": True, "containers": [{"name": name, "image": image, "command": command}]}}


# kubeadm v1.9 (cmd/kubeadm/app/phases/controlplane/manifests.go, getAPIServerCommand /
# getControllerManagerCommand / getSchedulerCommand; etcd/local.go), the flags it sets by default:
# --insecure-port=0, --admission-control (the flag before 1.10), Node,RBAC; --address=127.0.0.1 for the
# controller manager and scheduler; a local etcd on plain http (kubeadm secured etcd with TLS from 1.10).
KUBEADM_19 = {
    "kube-apiserver": _static_pod("kube-apiserver", "gcr.io/google_containers/kube-apiserver-amd64:v1.9.3", [
        "kube-apiserver", "--insecure-port=0",
        "--admission-control=Initializers,NamespaceLifecycle,LimitRanger,ServiceAccount,PersistentVolumeLabel,"
        "DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,ResourceQuota",
        "--advertise-address=141.142.181.10", "--service-cluster-ip-range=10.96.0.0/12",
        f"--service-account-key-file={PKI}/sa.pub", f"--client-ca-file={PKI}/ca.crt",
        f"--tls-cert-file={PKI}/apiserver.crt", f"--tls-private-key-file={PKI}/apiserver.key",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key", "--enable-bootstrap-token-auth=true",
        "--secure-port=6443", "--allow-privileged=true",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt", "--requestheader-allowed-names=front-proxy-client",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--authorization-mode=Node,RBAC", "--etcd-servers=http://127.0.0.1:2379"]),
    "kube-controller-manager": _static_pod(
        "kube-controller-manager", "gcr.io/google_containers/kube-controller-manager-amd64:v1.9.3", [
            "kube-controller-manager", "--address=127.0.0.1", "--leader-elect=true",
            "--kubeconfig=/etc/kubernetes/controller-manager.conf", f"--root-ca-file={PKI}/ca.crt",
            f"--service-account-private-key-file={PKI}/sa.key", f"--cluster-signing-cert-file={PKI}/ca.crt",
            f"--cluster-signing-key-file={PKI}/ca.key", "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner"]),
    "kube-scheduler": _static_pod("kube-scheduler", "gcr.io/google_containers/kube-scheduler-amd64:v1.9.3", [
        "kube-scheduler", "--address=127.0.0.1", "--leader-elect=true",
        "--kubeconfig=/etc/kubernetes/scheduler.conf"]),
    "etcd": _static_pod("etcd", "gcr.io/google_containers/etcd-amd64:3.1.11", [
        "etcd", "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
        "--data-dir=/var/lib/etcd"]),
}

# The kubelet of kubeadm 1.9 ran on flags only, from the packages' systemd drop-in
# (kubernetes/release rpm/10-kubeadm.conf of 1.9): no config file, no --anonymous-auth.
_ENV_19 = {
    "KUBECONFIG": "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
                  "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "SYSTEM_PODS": "--pod-manifest-path=/etc/kubernetes/manifests --allow-privileged=true",
    "NETWORK": "--network-plugin=cni --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin",
    "DNS": "--cluster-dns=10.96.0.10 --cluster-domain=cluster.local",
    "AUTHZ": "--authorization-mode=Webhook --client-ca-file=/etc/kubernetes/pki/ca.crt",
    "CADVISOR": "--cadvisor-port=0",
    "CERTIFICATE": "--rotate-certificates=true --cert-dir=/var/lib/kubelet/pki",
}
DROP_IN_19 = "[Service]\n" + "".join(f'Environment="KUBELET_{k}_ARGS={v}"\n' for k, v in _ENV_19.items()) \
    + "ExecStart=\nExecStart=/usr/bin/kubelet " + " ".join(f"$KUBELET_{k}_ARGS" for k in _ENV_19) \
    + " $KUBELET_EXTRA_ARGS\n"

# Current kubeadm (1.33; the flags `kubeadm init` writes by default, cmd/kubeadm/app/phases/controlplane/
# manifests.go and etcd/local.go): --enable-admission-plugins=NodeRestriction, no --insecure-port (gone in
# 1.24), --bind-address=127.0.0.1, etcd on TLS with client and peer certificate authentication.
KUBEADM_133 = {
    "kube-apiserver": _static_pod("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.33.0", [
        "kube-apiserver", "--advertise-address=141.142.181.10", "--allow-privileged=true",
        "--authorization-mode=Node,RBAC", f"--client-ca-file={PKI}/ca.crt",
        "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={PKI}/etcd/ca.crt", f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={PKI}/apiserver-etcd-client.key", "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client", f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User", "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI}/sa.pub", f"--service-account-signing-key-file={PKI}/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12", f"--tls-cert-file={PKI}/apiserver.crt",
        f"--tls-private-key-file={PKI}/apiserver.key"]),
    "kube-controller-manager": _static_pod(
        "kube-controller-manager", "registry.k8s.io/kube-controller-manager:v1.33.0", [
            "kube-controller-manager", "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf", "--bind-address=127.0.0.1",
            f"--client-ca-file={PKI}/ca.crt", "--cluster-name=kubernetes",
            f"--cluster-signing-cert-file={PKI}/ca.crt", f"--cluster-signing-key-file={PKI}/ca.key",
            "--controllers=*,bootstrapsigner,tokencleaner", "--kubeconfig=/etc/kubernetes/controller-manager.conf",
            "--leader-elect=true", f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
            f"--root-ca-file={PKI}/ca.crt", f"--service-account-private-key-file={PKI}/sa.key",
            "--use-service-account-credentials=true"]),
    "kube-scheduler": _static_pod("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.33.0", [
        "kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf", "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"]),
    "etcd": _static_pod("etcd", "registry.k8s.io/etcd:3.5.21-0", [
        "etcd", "--advertise-client-urls=https://141.142.181.10:2379", f"--cert-file={PKI}/etcd/server.crt",
        "--client-cert-auth=true", "--data-dir=/var/lib/etcd",
        "--initial-advertise-peer-urls=https://141.142.181.10:2380",
        "--initial-cluster=kub-master-001=https://141.142.181.10:2380", f"--key-file={PKI}/etcd/server.key",
        "--listen-client-urls=https://127.0.0.1:2379,https://141.142.181.10:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381", "--listen-peer-urls=https://141.142.181.10:2380",
        "--name=kub-master-001", f"--peer-cert-file={PKI}/etcd/peer.crt", "--peer-client-cert-auth=true",
        f"--peer-key-file={PKI}/etcd/peer.key", f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
        "--snapshot-count=10000", f"--trusted-ca-file={PKI}/etcd/ca.crt"]),
}

# /var/lib/kubelet/config.yaml as kubeadm writes it (zero durations written out as 0s).
KUBELET_CONFIG_133 = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
    "authentication": {"anonymous": {"enabled": False}, "webhook": {"cacheTTL": "0s", "enabled": True},
                       "x509": {"clientCAFile": f"{PKI}/ca.crt"}},
    "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
    "cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
    "rotateCertificates": True, "staticPodPath": "/etc/kubernetes/manifests",
    "streamingConnectionIdleTimeout": "0s", "syncFrequency": "0s",
}
KUBEADM_FLAGS_133 = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock ' \
                    '--pod-infra-container-image=registry.k8s.io/pause:3.10"\n'

# Expected results. Scored CIS Automated items FAIL, CIS Manual items (and enclave's unscored ones) WARN,
# items the chosen benchmark lacks, or for other releases, NOT APPLICABLE.
COMMON = {
    "API-01": "warn",  # 1.2.1 Manual; --anonymous-auth unset, default true
    "API-03": "pass", "API-04": "pass", "API-05": "pass", "API-06": "pass", "API-07": "pass",
    "API-08": "pass",  # 1.9: NodeRestriction in --admission-control; 1.33: in --enable-admission-plugins
    "API-10": "fail",  # --profiling defaults to true
    "API-11": "fail", "API-12": "fail", "API-13": "fail", "API-23": "fail",  # no audit log flags
    "API-14": "pass",  # --service-account-lookup defaults to true
    "API-15": "pass", "API-18": "pass", "API-19": "pass", "API-22": "pass",
    "API-20": "fail",  # kubeadm sets no --kubelet-certificate-authority
    "API-21": "warn",  # 1.2.27 Manual; no encryption at rest
    "API-24": "pass", "API-25": "pass",
    "CM-01": "fail", "CM-02": "pass", "CM-03": "pass", "CM-04": "pass", "CM-05": "pass", "CM-06": "pass",
    "SCH-01": "fail", "SCH-02": "pass",
    "ETCD-02": "pass", "ETCD-04": "pass",
    "KUBELET-02": "pass", "KUBELET-03": "pass", "KUBELET-05": "pass", "KUBELET-07": "pass", "KUBELET-08": "pass",
}
EXPECTED_19 = {  # under cis-1.5
    **COMMON,
    "API-02": "pass",  # cis-1.5/master.yaml 1.2.2 (Scored): --basic-auth-file not set
    "API-26": "na",  # cis-1.5 has no --service-account-extend-token-expiration item (cis-1.11 added 1.2.30)
    "API-09": "pass",  # --insecure-port=0 set by kubeadm 1.9
    "API-16": "fail", "API-17": "fail",  # kubeadm 1.9's etcd is plain http: no etcd client pair, no CA
    "ETCD-01": "fail", "ETCD-03": "fail", "ETCD-05": "fail", "ETCD-06": "fail",
    "KUBELET-01": "fail",  # flags only: --anonymous-auth defaults to true on the command line
    # cis-1.5/node.yaml 4.2.4 "(Scored)": --read-only-port defaults to 10255 on the command line (cis-1.6 made
    # the item Manual)
    "KUBELET-04": "fail",
    "KUBELET-06": "fail",  # cis-1.5/node.yaml 4.2.6 (Scored) --protect-kernel-defaults; it defaults to false
}
EXPECTED_133 = {  # under cis-1.12
    **COMMON,
    "API-02": "na", "API-09": "na",  # the flags are gone (1.19, 1.24); cis-1.12 has neither item
    "KUBELET-06": "na",  # --protect-kernel-defaults: withdrawn from cis-1.7 on, so not in cis-1.12
    "API-26": "fail",  # --service-account-extend-token-expiration defaults to true; kubeadm leaves it
    "API-16": "pass", "API-17": "pass",
    "ETCD-01": "pass", "ETCD-03": "pass", "ETCD-05": "pass", "ETCD-06": "pass",
    "KUBELET-01": "pass", "KUBELET-04": "pass",  # readOnlyPort absent: 0 in the config file
}
# Item numbers and types as each benchmark states them (kube-bench cfg/cis-1.5/master.yaml, node.yaml;
# cfg/cis-1.12/master.yaml, node.yaml): API-09 --insecure-port, API-08 NodeRestriction, API-10 --profiling,
# API-01 --anonymous-auth, KUBELET-04 --read-only-port, KUBELET-07 --make-iptables-util-chains.
ITEMS_19 = {"API-09": ("1.2.19", "Automated"), "API-08": ("1.2.17", "Automated"), "API-10": ("1.2.21", "Automated"),
            "API-01": ("1.2.1", "Manual"), "KUBELET-04": ("4.2.4", "Automated"), "KUBELET-07": ("4.2.7", "Automated")}
ITEMS_133 = {"API-09": (None, ""), "API-08": ("1.2.14", "Automated"), "API-10": ("1.2.15", "Automated"),
             "API-01": ("1.2.1", "Manual"), "KUBELET-04": ("4.2.4", "Manual"), "KUBELET-07": ("4.2.6", "Automated")}
NODE_CHECKS = [c for c in CHECKS if c.target in security.NODE_TARGETS]


def _write_node(root: Path, pods: dict[str, dict[str, Any]], kubelet: dict[str, Any] | None, flags: str,
                flags_name: str) -> Path:
    (root / "manifests").mkdir(parents=True)
    for name, pod in pods.items():
        (root / "manifests" / f"{name}.yaml").write_text(yaml.safe_dump(pod))
    (root / "kubelet").mkdir()
    if kubelet is not None:
        (root / "kubelet" / "config.yaml").write_text(yaml.safe_dump(kubelet))
    (root / "kubelet" / flags_name).write_text(flags)
    return root


@pytest.fixture
def seed_node(tmp_path: Path) -> security.NodeConfig:
    root = _write_node(tmp_path / "k19", KUBEADM_19, None, DROP_IN_19, "10-kubeadm.conf")
    return security.load_node_dir(root, kubelet_flags=root / "kubelet" / "10-kubeadm.conf")


@pytest.fixture
def current_node(tmp_path: Path) -> security.NodeConfig:
    root = _write_node(tmp_path / "k133", KUBEADM_133, KUBELET_CONFIG_133, KUBEADM_FLAGS_133, "kubeadm-flags.env")
    return security.load_node_dir(root)


def _statuses(node: NodeConfig, benchmark: str) -> dict[str, str]:
    report = security.run(NODE_CHECKS, node=node)
    assert report.benchmark.version == benchmark
    return {r.check.id: r.status for r in report.results}


def _items(node: NodeConfig) -> dict[str, tuple[str | None, str]]:
    report = security.run(NODE_CHECKS, node=node)
    return {r.check.id: (r.check.cis.id, r.check.cis.type) for r in report.results if r.check.id in ITEMS_19}


def test_every_node_check_has_an_expected_result() -> None:
    assert set(EXPECTED_19) == set(EXPECTED_133) == {c.id for c in NODE_CHECKS}


def test_seed_19_kubeadm_node_gives_the_cis_results(seed_node: NodeConfig) -> None:
    assert seed_node.version == Version(1, 9, 3)  # from the API server's image tag
    assert _statuses(seed_node, "cis-1.5") == EXPECTED_19
    assert _items(seed_node) == ITEMS_19


def test_current_kubeadm_node_gives_the_cis_results(current_node: NodeConfig) -> None:
    assert current_node.version == Version(1, 33, 0)
    assert _statuses(current_node, "cis-1.12") == EXPECTED_133
    assert _items(current_node) == ITEMS_133


# ---- the single upstream rules -------------------------------------------------------------------------

def test_every_check_names_its_cis_item_or_says_why_not() -> None:
    """kube-bench cfg/cis-1.12 is the benchmark named; each id given exists there with that type."""
    assert BENCH.version == "cis-1.12"
    kb = _kube_bench_items()
    for c in CHECKS:
        if c.cis.id is None:
            assert c.cis.note, c.id
            continue
        if c.cis.benchmark != "cis-1.12":  # withdrawn before cis-1.12: test_withdrawn_items_name_their_benchmark
            continue
        assert c.cis.id in kb, (c.id, c.cis.id)
        assert kb[c.cis.id]["type"] == c.cis.type, (c.id, c.cis.id)
        assert c.cis.title in kb[c.cis.id]["text"], (c.id, c.cis.title)
        assert c.scored == (c.cis.type == "Automated") or c.cis.type == "Manual" and c.scored, c.id


def test_withdrawn_items_name_their_benchmark() -> None:
    """Items CIS withdrew before cis-1.12 are numbered in the last benchmark that had them, as kube-bench states
    them: cfg/cis-1.6/master.yaml 1.2.2, cfg/cis-1.20/master.yaml 1.2.18, cfg/cis-1.24/node.yaml 4.2.6."""
    got = {c.id: (c.cis.benchmark, c.cis.id, c.cis.type, c.cis.title) for c in CHECKS
           if c.cis.id is not None and c.cis.benchmark != "cis-1.12"}
    assert got == {
        "API-02": ("cis-1.6", "1.2.2", "Automated", "Ensure that the --basic-auth-file argument is not set"),
        "API-09": ("cis-1.20", "1.2.18", "Automated", "Ensure that the --insecure-port argument is set to 0"),
        "KUBELET-06": ("cis-1.24", "4.2.6", "Automated",
                       "Ensure that the --protect-kernel-defaults argument is set to true"),
    }


def _kube_bench_items() -> dict[str, dict[str, str]]:
    """CIS 1.12 item numbers, types and titles, as kube-bench's cfg/cis-1.12 states them (titles end in
    "(Automated)" or "(Manual)"). Copied here from aquasecurity/kube-bench@a73ce378 for the items the data
    uses."""
    path = Path(__file__).parent / "cis-1.12-items.json"
    raw: dict[str, str] = json.loads(path.read_text())
    return {k: {"text": v, "type": "Manual" if v.endswith("(Manual)") else "Automated"} for k, v in raw.items()}


def test_manual_items_warn_and_are_not_scored() -> None:
    api01 = BY_ID["API-01"]
    assert api01.cis.type == "Manual" and not api01.scored
    assert run_check(api01, node=NodeConfig(flags={"apiserver": {}})).status == "warn"


def test_insecure_port_default_follows_the_release() -> None:
    """8080 before 1.20 (pkg/kubeapiserver/options/serving.go), 0 from 1.20, the flag gone from 1.24."""
    unset = NodeConfig(flags={"apiserver": {}})
    check = BY_ID["API-09"]
    assert run_check(check, node=unset, version=Version(1, 9, 3)).status == "fail"
    assert run_check(check, node=unset, version=Version(1, 19, 0)).status == "fail"
    assert run_check(check, node=unset, version=Version(1, 20, 0)).status == "pass"
    assert run_check(check, node=unset, version=Version(1, 24, 0)).status == "na"


def test_certificate_needs_its_key() -> None:
    for cid, cert, key in (("API-16", "--etcd-certfile", "--etcd-keyfile"),
                           ("API-18", "--tls-cert-file", "--tls-private-key-file"),
                           ("ETCD-05", "--cert-file", "--key-file")):
        check = BY_ID[cid]
        half = NodeConfig(flags={check.target: {cert: "/x.crt"}})
        both = NodeConfig(flags={check.target: {cert: "/x.crt", key: "/x.key"}})
        assert run_check(check, node=half).status == "fail", cid
        assert run_check(check, node=both).status == "pass", cid


def test_kubelet_flag_wins_over_config_file() -> None:
    """kubelet-config-file docs: command-line flags take precedence over the config file."""
    check = BY_ID["KUBELET-01"]
    node = NodeConfig(kubelet={"authentication": {"anonymous": {"enabled": False}}},
                      kubelet_flags=parse_flags(["--anonymous-auth=true"]))
    r = run_check(check, node=node)
    assert r.status == "fail" and "--anonymous-auth" in r.findings[0].where
    node.kubelet_flags = parse_flags(["--anonymous-auth=false"])
    node.kubelet = {"authentication": {"anonymous": {"enabled": True}}}
    assert run_check(check, node=node).status == "pass"


def test_kubeadm_env_file_extra_args_come_last() -> None:
    """kubeadm's drop-in runs `kubelet … $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS` (kubeadm docs,
    kubelet-integration), so a flag in EXTRA_ARGS comes later and wins (pflag: the last value of a scalar)."""
    text = ('KUBELET_KUBEADM_ARGS="--anonymous-auth=false --read-only-port=0"\n'
            "KUBELET_EXTRA_ARGS=--anonymous-auth=true\n")
    argv = security.kubelet_argv([], [security.parse_env_file(text)])
    assert security.parse_flags(argv[1:]) == {"--anonymous-auth": "true", "--read-only-port": "0"}


def test_pod_level_run_as_user_zero_is_caught() -> None:
    """A container inherits the pod's securityContext.runAsUser unless it sets its own (Kubernetes API)."""
    check = BY_ID["POD-09"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "qserv"},
           "spec": {"securityContext": {"runAsUser": 0}, "containers": [{"name": "a", "image": "x"}]}}
    assert run_check(check, objects=[("f", pod)]).status == "fail"
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1000}
    assert run_check(check, objects=[("f", pod)]).status == "pass"


@pytest.mark.parametrize("caps", [["sys_admin"], ["CAP_SYS_ADMIN"], ["NET_RAW"], ["cap_net_raw"]])
def test_capabilities_any_spelling_are_caught(caps: list[str]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "qserv"},
           "spec": {"containers": [{"name": "a", "image": "x", "securityContext": {"capabilities": {"add": caps}}}]}}
    assert run_check(BY_ID["POD-06"], objects=[("f", pod)]).status == "fail"


def test_namespace_less_object_counts_as_default_but_cluster_scoped_kinds_do_not() -> None:
    check = BY_ID["POD-11"]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert run_check(check, objects=[("f", cm)]).status == "fail"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "qserv"}}
    assert run_check(check, objects=[("f", ns)]).status == "na"


def test_nothing_checked_is_not_applicable_never_pass() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "qserv"}}
    for cid in ("POD-01", "RBAC-01", "RBAC-02", "IMG-01"):
        r = run_check(BY_ID[cid], objects=[("f", svc)])
        assert r.status == "na" and r.reason == "no matching objects", cid


def test_foreign_yaml_in_a_directory_is_skipped_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(KUBEADM_19["etcd"]))
    (tmp_path / "values.yaml").write_text("hub:\n  image: x\n")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    notes: list[str] = []
    objects = load_manifests([tmp_path], notes=notes)
    assert [o["kind"] for _, o in objects] == ["Pod"]
    assert any("values.yaml#0 skipped" in n for n in notes) and any("broken.yaml skipped" in n for n in notes)


# ---- files -----------------------------------------------------------------------------------------------

def _kubeadm_files(root: Path) -> None:
    """Modes as kubeadm writes them: manifests and kubeconfigs 0600, keys 0600, certificates 0644."""
    (root / "pki" / "etcd").mkdir(parents=True)
    (root / "manifests").mkdir()
    for rel in ("manifests/kube-apiserver.yaml", "manifests/kube-controller-manager.yaml",
                "manifests/kube-scheduler.yaml", "manifests/etcd.yaml", "admin.conf", "super-admin.conf",
                "scheduler.conf", "controller-manager.conf", "kubelet.conf", "pki/ca.key", "pki/etcd/ca.key"):
        (root / rel).write_text("x")
        (root / rel).chmod(0o600)
    for rel in ("pki/ca.crt", "pki/etcd/ca.crt"):
        (root / rel).write_text("x")
        (root / rel).chmod(0o644)


FILE_CHECKS = [c for c in CHECKS if c.target == "file" and not str(c.read["file"]).startswith("@")]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership root:root needs files owned by root")
def test_file_permissions_and_ownership(tmp_path: Path) -> None:
    _kubeadm_files(tmp_path)
    node = NodeConfig(root=tmp_path)
    assert {c.id: run_check(c, node=node).status for c in FILE_CHECKS} == {c.id: "pass" for c in FILE_CHECKS}
    (tmp_path / "manifests" / "etcd.yaml").chmod(0o644)  # group/other read: more than 600
    (tmp_path / "pki" / "etcd" / "ca.key").chmod(0o640)
    os.chown(tmp_path / "admin.conf", 1000, 1000)
    got = {c.id: run_check(c, node=node).status for c in FILE_CHECKS}
    assert got["FILE-07"] == "fail" and got["FILE-10"] == "fail" and got["FILE-17"] == "warn"  # 1.1.21 Manual
    assert got["FILE-08"] == "pass"


def test_mode_is_a_bitmask_not_a_number() -> None:
    """kube-bench `bitmask`: 400 is within 600 although 0o400 < 0o600 says nothing; 610 is not."""
    assert security.evaluate(security.Test("mode_max", "600"), "400", {})
    assert not security.evaluate(security.Test("mode_max", "600"), "610", {})
    assert not security.evaluate(security.Test("mode_max", "644"), "660", {})


def test_kube_bench_json_shape(current_node: NodeConfig) -> None:
    """check/controls.go: {Controls: [{id, version, detected_version, text, node_type, tests: [{section, pass,
    fail, warn, info, desc, results: [{test_number, test_desc, status, scored, …}]}], total_*}], Totals}."""
    report = security.run(NODE_CHECKS, node=current_node)
    data = json.loads(security.to_kube_bench(report))
    results = [res for c in data["Controls"] for t in c["tests"] for res in t["results"]]
    assert len(results) == len(NODE_CHECKS)
    assert data["Controls"][0]["version"] == "cis-1.12" and data["Controls"][0]["detected_version"] == "1.33"
    by_number = {r["enclave_id"]: r for r in results}
    assert by_number["API-10"]["test_number"] == "1.2.15" and by_number["API-10"]["status"] == "FAIL"
    assert data["Totals"]["total_fail"] == sum(1 for v in EXPECTED_133.values() if v == "fail")
    # One control per cfg/cis-1.12 controls file: master.yaml `id: 1`, text "Control Plane Security
    # Configuration", type master; etcd.yaml id 2 (its one group "2"); node.yaml id 4, group 4.2 "Kubelet".
    controls = {c["id"]: c for c in data["Controls"]}
    assert (controls["1"]["text"], controls["1"]["node_type"]) == ("Control Plane Security Configuration", "master")
    assert [g["section"] for g in controls["2"]["tests"]] == ["2"] and controls["2"]["node_type"] == "etcd"
    groups = {g["section"]: g for c in data["Controls"] for g in c["tests"]}
    assert groups["1.2"]["desc"] == "API Server" and groups["4.2"]["desc"] == "Kubelet"
    assert "API-10" in {r["enclave_id"] for r in groups["1.2"]["results"]}
    # master.yaml 1.2.15 has no `type`: kube-bench's Check.Type is "" (not "manual", which always WARNs)
    assert by_number["API-10"]["type"] == "" and "reason" not in by_number["API-10"]  # reason omitempty


def test_kube_bench_json_one_result_per_item_and_types_from_the_cfg() -> None:
    """RBAC-02 and RBAC-03 both encode cis-1.12 5.1.3: one result, the worse status. cfg/cis-1.12/policies.yaml
    5.2.8 (POD-12) has `type: "manual"`. Controls.DetectedVersion is `json:"detected_version,omitempty"`."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "q"},
            "rules": [{"verbs": ["get"], "resources": ["*"], "apiGroups": [""]}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "q"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    checks = [BY_ID[c] for c in ("RBAC-02", "RBAC-03", "POD-12")]
    report = security.run(checks, objects=[("f", role), ("f", pod)], benchmark="cis-1.12")
    data = json.loads(security.to_kube_bench(report))
    results = {r["test_number"]: r for c in data["Controls"] for g in c["tests"] for r in g["results"]}
    assert sorted(results) == ["5.1.3", "5.2.8"]
    assert results["5.1.3"]["enclave_id"] == "RBAC-02,RBAC-03" and results["5.1.3"]["status"] == "FAIL"
    assert results["5.1.3"]["enclave_status"] == "pass,fail"  # verbs listed, resources "*"
    assert results["5.2.8"]["type"] == "manual"
    assert [c["id"] for c in data["Controls"]] == ["5"] and "detected_version" not in data["Controls"][0]



@pytest.mark.skipif(os.geteuid() != 0, reason="ownership root:root needs files owned by root")
def test_named_node_files_etcd_data_dir_and_kubelet_service(tmp_path: Path) -> None:
    """1.1.11/1.1.12 read etcd's --data-dir, 4.1.1/4.1.2 the kubelet's systemd drop-in. kubeadm runs etcd as
    root (data directory root:root, 0700), so 1.1.12's etcd:etcd fails on a kubeadm node as kube-bench says;
    the packages install the drop-in 0644, more than 4.1.1's 600."""
    data = tmp_path / "var-lib-etcd"
    data.mkdir(mode=0o700)
    drop_in = tmp_path / "10-kubeadm.conf"
    drop_in.write_text(DROP_IN_19)
    drop_in.chmod(0o644)
    node = NodeConfig(root=tmp_path, files={"etcd-data-dir": data, "kubelet-service": drop_in})
    got = {cid: run_check(BY_ID[cid], node=node).status for cid in ("FILE-18", "FILE-19", "KFILE-05", "KFILE-06")}
    assert got == {"FILE-18": "pass", "FILE-19": "fail", "KFILE-05": "fail", "KFILE-06": "pass"}
    assert run_check(BY_ID["FILE-18"], node=NodeConfig(root=tmp_path)).status == "na"


def test_load_node_dir_finds_the_named_files(tmp_path: Path) -> None:
    root = _write_node(tmp_path / "k", KUBEADM_19, None, DROP_IN_19, "10-kubeadm.conf")
    node = security.load_node_dir(root, kubelet_flags=root / "kubelet" / "10-kubeadm.conf")
    assert node.files["etcd-data-dir"] == Path("/var/lib/etcd")  # from etcd's --data-dir
    assert node.files["kubelet-service"] == root / "kubelet" / "10-kubeadm.conf"


def test_report_names_the_benchmark_and_says_when_the_cluster_is_older_than_all(seed_node: NodeConfig,
                                                                                 current_node: NodeConfig) -> None:
    """kube-bench's oldest mapping is 1.15 → cis-1.5 (cfg/config.yaml version_mapping); for 1.9 kube-bench
    itself stops ("unable to find a matching Benchmark Version", cmd/common.go mapToBenchmarkVersion)."""
    old = security.run(NODE_CHECKS, node=seed_node)
    text = security.to_text(old)
    assert text.startswith("== CIS Kubernetes Benchmark cis-1.5 · Kubernetes 1.9.3")
    assert "older than every CIS benchmark kube-bench ships" in text and "written for 1.15" in text
    assert json.loads(security.to_json(old))["benchmark"]["version"] == "cis-1.5"
    kb = json.loads(security.to_kube_bench(old))
    assert {c["version"] for c in kb["Controls"]} == {"cis-1.5"} and kb["enclave_benchmark"]["note"]
    new = security.run(NODE_CHECKS, node=current_node)
    assert json.loads(security.to_json(new))["benchmark_note"] is None
    assert json.loads(security.to_json(new))["benchmark"]["version"] == "cis-1.12"
