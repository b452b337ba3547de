"""The CIS benchmark a run reports against, chosen per release as kube-bench chooses it, and each check's item in
that benchmark. Expected values are read off kube-bench's own files (aquasecurity/kube-bench@a73ce378):
cfg/config.yaml ``version_mapping``, cmd/common.go ``mapToBenchmarkVersion`` and cfg/<benchmark>/*.yaml, each
named next to the assertion; kube-proxy's rules from its reference and defaults.go (cited in
security-checks.yaml, KPROXY-01)."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.errors import InputError
from enclave.ops import cis, security
from enclave.ops.versions import Version
from tests.ops.test_cli import env  # noqa: F401  (the CLI harness and its per-test database)

_, CHECKS, _BENCH = security.shipped_benchmark()
CATALOGUE = cis.catalogue()


def _under(benchmark: str) -> dict[str, security.Check]:
    return {c.id: c for c in security.for_benchmark(CHECKS, benchmark)}


# cfg/config.yaml version_mapping (the upstream "1.N" rows).
@pytest.mark.parametrize(("kubernetes", "benchmark"), [
    ("1.15.3", "cis-1.5"), ("1.16.0", "cis-1.6"), ("1.18.9", "cis-1.6"), ("1.19.0", "cis-1.20"),
    ("1.21.4", "cis-1.20"), ("1.22.0", "cis-1.23"), ("1.24.2", "cis-1.24"), ("1.25.0", "cis-1.7"),
    ("1.26.1", "cis-1.8"), ("1.27.0", "cis-1.9"), ("1.28.0", "cis-1.10"), ("1.30.2", "cis-1.11"),
    ("1.33.0", "cis-1.12"), ("1.34.1", "cis-1.12"),
])
def test_benchmark_follows_kube_bench_version_mapping(kubernetes: str, benchmark: str) -> None:
    chosen = CATALOGUE.choose(Version.parse(kubernetes))
    assert chosen.version == benchmark and chosen.note == ""


def test_newer_release_takes_the_nearest_mapped_one_below() -> None:
    """cmd/common.go mapToBenchmarkVersion lowers the minor (cmd/util.go decrementVersion) until it is mapped:
    1.37 → 1.34 → cis-1.12."""
    chosen = CATALOGUE.choose(Version(1, 37, 0))
    assert chosen.version == "cis-1.12" and "1.34" in chosen.note


def test_release_older_than_every_benchmark_uses_the_oldest_and_says_so() -> None:
    """kube-bench refuses 1.9 (no mapped minor at or below it); the oldest mapping is 1.15 → cis-1.5."""
    chosen = CATALOGUE.choose(Version(1, 9, 3))
    assert chosen.version == "cis-1.5"
    assert "older than every CIS benchmark kube-bench ships" in chosen.note and "1.15" in chosen.note


def test_benchmark_override_and_unknown_name() -> None:
    """kube-bench's --benchmark names a cfg/ directory and wins over the detected version."""
    assert CATALOGUE.choose(Version(1, 33, 0), "cis-1.8").version == "cis-1.8"
    with pytest.raises(InputError) as e:
        CATALOGUE.choose(Version(1, 33, 0), "cis-9.9")
    assert "unknown benchmark 'cis-9.9'" in str(e.value) and "cis-1.12" in str(e.value)


# "Ensure that the admission control plugin NodeRestriction is set": cfg/<b>/master.yaml renumbers it as items
# are added and withdrawn above it.
NODE_RESTRICTION = {"cis-1.5": "1.2.17", "cis-1.6": "1.2.17", "cis-1.20": "1.2.16", "cis-1.23": "1.2.16",
                    "cis-1.24": "1.2.15", "cis-1.7": "1.2.15", "cis-1.8": "1.2.15", "cis-1.9": "1.2.14",
                    "cis-1.10": "1.2.14", "cis-1.11": "1.2.14", "cis-1.12": "1.2.14"}


@pytest.mark.parametrize(("benchmark", "item"), sorted(NODE_RESTRICTION.items()))
def test_item_is_followed_into_each_benchmark(benchmark: str, item: str) -> None:
    check = _under(benchmark)["API-08"]
    assert (check.cis.id, check.cis.type) == (item, "Automated")
    assert check.cis.title == "Ensure that the admission control plugin NodeRestriction is set"


def test_type_and_expected_mode_come_from_the_chosen_benchmark() -> None:
    old, mid, new = _under("cis-1.5"), _under("cis-1.23"), _under("cis-1.12")
    # cfg/cis-1.5/node.yaml 4.2.4 "(Scored)"; cfg/cis-1.12/node.yaml 4.2.4 "(Manual)"
    assert (old["KUBELET-04"].cis.type, old["KUBELET-04"].scored) == ("Automated", True)
    assert (new["KUBELET-04"].cis.type, new["KUBELET-04"].scored) == ("Manual", False)
    # cfg/cis-1.5/master.yaml 1.2.1 "(Not Scored)": CIS's word before Automated/Manual
    assert old["API-01"].cis.type == "Manual" and CATALOGUE.item("cis-1.5", "1.2.1").status == "Not Scored"  # type: ignore[union-attr]
    # 1.1.1 bitmask 644 in cfg/cis-1.5 and cfg/cis-1.23 master.yaml, 600 in cfg/cis-1.24 on
    assert [b["FILE-01"].test.value for b in (old, mid, new)] == ["644", "644", "600"]
    # cfg/cis-1.8/master.yaml 1.1.13 "admin.conf file permissions … 600"; cfg/cis-1.9 renamed it
    assert _under("cis-1.8")["FILE-09"].cis.title == \
        "Ensure that the admin.conf file permissions are set to 600 or more restrictive"
    assert new["FILE-09"].cis.title == \
        "Ensure that the default administrative credential file permissions are set to 600"


# kube-bench reports a `type: "manual"` check WARN whatever its test gives, and an unscored failure WARN
# (check/check.go run); the "(Automated)" in the title does not decide it.
# cfg/cis-1.8/policies.yaml 5.2.6 "…allowPrivilegeEscalation (Automated)" and 5.2.8 "…NET_RAW capability
# (Automated)": type "manual", scored: false. cfg/cis-1.5/policies.yaml 5.2.5 "…allowPrivilegeEscalation (Scored)":
# type "manual", scored: true.
@pytest.mark.parametrize(("benchmark", "cid", "item"), [
    ("cis-1.8", "POD-10", "5.2.6"), ("cis-1.8", "POD-12", "5.2.8"), ("cis-1.5", "POD-10", "5.2.5"),
])
def test_pod_items_kube_bench_does_not_score_warn(benchmark: str, cid: str, item: str) -> None:
    check = _under(benchmark)[cid]
    assert (check.cis.id, check.cis.check_type, check.scored) == (item, "manual", False)
    assert check.cis.type == "Automated"  # the title's word, as CIS printed it
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "qserv"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}  # neither field set: both tests fail
    report = security.run([c for c in CHECKS if c.id == cid], objects=[("f", pod)], benchmark=benchmark)
    assert report.results[0].status == "warn" and not report.failed


def test_item_absent_from_the_benchmark_is_not_applicable_with_a_note() -> None:
    """4.3.1 (kube-proxy metrics) first appears in cfg/cis-1.9/node.yaml; --insecure-port (cis-1.20 1.2.18) is
    gone from cfg/cis-1.23/master.yaml; 1.2.30 --service-account-extend-token-expiration arrives in cis-1.11."""
    for benchmark, cid in (("cis-1.8", "KPROXY-01"), ("cis-1.23", "API-09"), ("cis-1.10", "API-26")):
        check = _under(benchmark)[cid]
        result = security.run_check(check)
        assert result.status == "na" and result.reason.startswith(f"{benchmark} has no such item"), cid
        assert check.cis.id is None and check.cis.note == result.reason
    assert _under("cis-1.9")["KPROXY-01"].cis.id == "4.3.1"
    assert _under("cis-1.20")["API-09"].cis.id == "1.2.18" and _under("cis-1.5")["API-09"].cis.id == "1.2.19"


def test_enclave_policy_holds_without_the_cis_item() -> None:
    """POD-02 (hostPath) is scored as enclave policy (seed §5-6); cfg/cis-1.5/policies.yaml has no hostPath item,
    so the check still runs, saying so."""
    check = _under("cis-1.5")["POD-02"]
    assert check.cis.id is None and "checked as enclave policy" in check.cis.note and check.scored
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "qserv"},
           "spec": {"containers": [], "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]}}
    assert security.run_check(check, objects=[("f", pod)], params={"home_root": "/jhome"}).status == "fail"


def test_matched_items_keep_their_meaning_by_hand() -> None:
    """A few matches across renumbering checked against the cfg files' titles."""
    row = next(r for r in CATALOGUE.lineage if r.get("cis-1.12") == "5.2.9")
    # "Minimize the admission of containers with capabilities assigned": cis-1.5 5.2.9, cis-1.11 5.2.10
    assert (row["cis-1.5"], row["cis-1.11"]) == ("5.2.9", "5.2.10")
    row = next(r for r in CATALOGUE.lineage if r.get("cis-1.12") == "1.2.2")  # --token-auth-file
    assert row["cis-1.5"] == "1.2.3"  # cis-1.5 1.2.2 was --basic-auth-file
    row = next(r for r in CATALOGUE.lineage if r.get("cis-1.5") == "1.2.16")  # PodSecurityPolicy
    assert "cis-1.23" not in row  # withdrawn with PSP; not confused with NodeRestriction (same audit, same flag)


# ---- CIS 4.3.1: kube-proxy's metrics address -------------------------------------------------------------

def _daemonset(image: str, command: list[str]) -> dict[str, Any]:
    """kubeadm's kube-proxy DaemonSet (cmd/kubeadm/app/phases/addons/proxy/manifests.go): --config from the
    kube-proxy ConfigMap mounted at /var/lib/kube-proxy."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {"template": {"spec": {
                "containers": [{"name": "kube-proxy", "image": image, "command": command,
                                "volumeMounts": [{"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"}]}],
                "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]}}}}


def _configmap(metrics: str | None) -> dict[str, Any]:
    line = "" if metrics is None else f"metricsBindAddress: {metrics}\n"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                                    f"kind: KubeProxyConfiguration\n{line}",
                     "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"}}


KUBE_PROXY_19 = [("ds", _daemonset("gcr.io/google_containers/kube-proxy-amd64:v1.9.3",
                                   ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"])),
                 ("cm", _configmap("127.0.0.1:10249"))]  # kubeadm 1.9 wrote the defaulted configuration out
KUBE_PROXY_133 = [("ds", _daemonset("registry.k8s.io/kube-proxy:v1.33.0",
                                    ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                     "--hostname-override=$(NODE_NAME)"])),
                  ("cm", _configmap('""'))]  # current kubeadm: metricsBindAddress: ""


def _kproxy(objects: list[tuple[str, dict[str, Any]]], version: Version, benchmark: str | None = None) -> str:
    report = security.run([c for c in CHECKS if c.id == "KPROXY-01"], objects=objects, version=version,
                          benchmark=benchmark)
    return report.results[0].status


def test_kube_proxy_metrics_on_the_seed_and_current_kubeadm() -> None:
    assert _kproxy(KUBE_PROXY_19, Version(1, 9, 3)) == "na"  # cis-1.5 has no 4.3.1
    assert _kproxy(KUBE_PROXY_19, Version(1, 9, 3), "cis-1.12") == "pass"
    assert _kproxy(KUBE_PROXY_133, Version(1, 33, 0)) == "pass"  # "" is defaulted to 127.0.0.1:10249


def test_kube_proxy_config_file_wins_and_wide_address_fails() -> None:
    wide = [KUBE_PROXY_133[0], ("cm", _configmap("0.0.0.0:10249"))]
    report = security.run([c for c in CHECKS if c.id == "KPROXY-01"], objects=wide, version=Version(1, 33, 0))
    assert report.results[0].status == "fail"
    assert "ConfigMap/kube-system/kube-proxy config.conf metricsBindAddress" in report.results[0].findings[0].where
    # with --config, the flag is ignored (kube-proxy flag help since kubernetes/kubernetes#107157)
    ds = _daemonset("k", ["kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--metrics-bind-address=0.0.0.0"])
    assert _kproxy([("ds", ds), ("cm", _configmap(None))], Version(1, 33, 0)) == "pass"
    # without --config the flag rules; unset takes the default 127.0.0.1:10249
    assert _kproxy([("ds", _daemonset("k", ["kube-proxy", "--metrics-bind-address=0.0.0.0:10249"]))],
                   Version(1, 33, 0)) == "fail"
    assert _kproxy([("ds", _daemonset("k", ["kube-proxy"]))], Version(1, 33, 0)) == "pass"


def test_kube_proxy_not_given_or_config_missing_is_not_applicable() -> None:
    check = _under("cis-1.12")["KPROXY-01"]
    assert security.run_check(check, objects=[]).status == "na"
    missing = security.run_check(check, objects=[KUBE_PROXY_133[0]])
    assert missing.status == "na" and "reads ConfigMap kube-system/kube-proxy, not given" in missing.reason


@pytest.mark.usefixtures("env")
def test_cli_benchmark_option_names_the_benchmark_used() -> None:
    """`enclave security check --benchmark` as kube-bench's --benchmark; the shipped spec runs 1.9.3, so without
    it the report is under cis-1.5 with the note."""
    import json

    from tests.ops.test_cli import run

    default = json.loads(run("security", "check", "-o", "json").stdout)
    assert default["benchmark"]["version"] == "cis-1.5" and "older than every" in default["benchmark_note"]
    chosen = json.loads(run("security", "check", "--benchmark", "cis-1.8", "-o", "json").stdout)
    assert chosen["benchmark"]["version"] == "cis-1.8"
    bad = run("security", "check", "--benchmark", "cis-9")
    assert bad.exit_code == 1 and "unknown benchmark 'cis-9'" in bad.output
