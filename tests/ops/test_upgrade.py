"""Upgrade planning: the seed's 1.9.3 cluster to the newest maintained release, and plans that must be refused."""

from __future__ import annotations

import datetime as dt

import pytest

from enclave.errors import InputError, InvalidTransition, NotFound
from enclave.ops.removed_apis import removed_apis, scan
from enclave.ops.upgrade import (
    Components,
    ControlPlaneNode,
    check_skew,
    components_from_mapping,
    components_from_spec,
    node_commands,
    plan_upgrade,
)
from enclave.ops.versions import Version, parse_release_data, release_data, target_version
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load

TODAY = dt.date(2026, 11, 25)
V = Version.parse


def test_release_data_covers_1_9_to_newest_with_sources() -> None:
    data = release_data()
    minors = [r.minor.minor_name for r in data.releases]
    assert minors[0] == "1.9" and minors[-1] == "1.37" and len(minors) == 29
    assert all(r.source and r.released < r.eol for r in data.releases)
    assert [r.minor.minor_name for r in data.maintained(TODAY)] == ["1.35", "1.36", "1.37"]
    assert [r.minor.minor_name for r in data.maintained(dt.date(2018, 6, 15))] == ["1.9", "1.10"]
    assert data.release(V("1.10.4")).eol == dt.date(2019, 2, 13)


def test_seed_cluster_to_newest_maintained_lists_every_minor() -> None:
    spec = load(DEFAULT_SPEC)
    current = components_from_spec(spec)
    assert current.kubelet_count == 20  # the seed's "Kubelet 20 x v1.9.3"
    plan = plan_upgrade(current, today=TODAY)
    assert plan.target == V("1.37.1")
    assert [s.target.minor for s in plan.steps] == list(range(10, 38))
    assert all(s.kind == "minor" for s in plan.steps)
    # kubeadm < 1.28 moves kube-proxy inside `kubeadm upgrade apply`: those steps leave the skew policy
    # (reported, not refused); from 1.28 kubeadm waits for every control-plane node and the steps are clean.
    assert [s.target.minor for s in plan.steps if not s.ok] == list(range(10, 28))
    assert all(s.kubeadm_skew for s in plan.steps if not s.ok)
    for step in plan.steps:
        rules = {c.rule for p in step.phases for c in p.checks}
        assert "kube-apiserver instances within one minor" in rules
        assert any(r.startswith("kubectl within") for r in rules)
        assert "kubelet not newer than kube-apiserver" in rules
        # during the control-plane phase the kubelets are one minor behind, which the policy allows
        mid = step.phases[0]
        assert {v for v, _ in mid.state.kubelets} == {step.source}
        assert not [c for c in mid.checks if not c.ok and c.rule.startswith("kubelet")]
    assert plan.steps[0].commands["repository"][0].startswith("packages for 1.10 are not on pkgs.k8s.io")
    assert "pkgs.k8s.io/core:/stable:/v1.37/" in plan.steps[-1].commands["repository"][0]
    assert any("apt-mark hold kubeadm kubelet kubectl" in x for x in plan.pinning["apt (Debian/Ubuntu)"])
    assert any("versionlock add" in x for x in plan.pinning["dnf (RHEL/Rocky 8+)"])
    rows = {r.component: r for r in plan.table}
    assert rows["Kubelet"].current == "20 x v1.9.3" and rows["API Server"].target == "v1.37.1"


def test_seed_plan_of_2018_matches_kubeadm() -> None:
    """The seed planned 1.9.3 → 1.10.4 in June 2018: one kubeadm step, 1.9 and 1.10 maintained."""
    plan = plan_upgrade(components_from_spec(load(DEFAULT_SPEC)), V("1.10.4"), today=dt.date(2018, 6, 15))
    assert [(str(s.source), str(s.target)) for s in plan.steps] == [("1.9.3", "1.10.4")]
    assert "newer than the latest" not in " ".join(plan.notes)
    patch_first = plan_upgrade(components_from_spec(load(DEFAULT_SPEC)), V("1.10.4"), today=dt.date(2018, 6, 15),
                               patch_first=True)
    assert [str(s.target) for s in patch_first.steps] == ["1.9.11", "1.10.4"]


def test_plan_skipping_a_minor_is_refused() -> None:
    current = components_from_spec(load(DEFAULT_SPEC))
    with pytest.raises(InvalidTransition, match=r"skips minor release\(s\) 1.10"):
        plan_upgrade(current, V("1.11.10"), today=TODAY, steps=[V("1.11.10")])
    with pytest.raises(InvalidTransition, match="1.11, 1.12"):
        plan_upgrade(current, V("1.13.0"), today=TODAY, steps=[V("1.10.13"), V("1.13.0")])
    ok = plan_upgrade(current, V("1.11.10"), today=TODAY, steps=[V("1.10.13")])
    assert [str(s.target) for s in ok.steps] == ["1.10.13", "1.11.10"]


def test_kubelet_newer_than_apiserver_is_refused() -> None:
    observed = {"apiserver": ["1.9.3", "1.9.3"], "kubelets": {"1.9.3": 18, "1.10.4": 2}}
    with pytest.raises(InvalidTransition, match="kubelet not newer than kube-apiserver"):
        plan_upgrade(components_from_mapping(observed), today=TODAY)


def test_an_unquoted_minor_version_yaml_reads_as_a_number_is_refused_with_the_fix() -> None:
    """Review, stop 48: YAML reads `apiserver: 1.10` as the float 1.1, which parsed as Kubernetes 1.1 and refused
    the plan for a skew the cluster does not have. A version that is not text is refused, saying to quote it."""
    import yaml

    for text, where in (("apiserver: 1.10\nkubelets: {'1.10.13': 20}", "observed.apiserver[0]"),
                        ("apiserver: ['1.10.13']\nkubelets: {1.10: 20}", "observed.kubelets.1.1"),
                        ("apiserver: ['1.10.13']\nkubelets: {'1.10.13': 20}\nkube_proxy: 1.10", "observed.kube_proxy")):
        with pytest.raises(InputError) as refused:
            components_from_mapping(yaml.safe_load(text), where="observed")
        [problem] = refused.value.problems
        assert problem.where == where and "quote it: '1.1'" in problem.fix


def test_other_refusals() -> None:
    current = components_from_spec(load(DEFAULT_SPEC))
    with pytest.raises(InvalidTransition, match="older than"):
        plan_upgrade(current, V("1.8.15"), today=TODAY)
    with pytest.raises(NotFound):
        plan_upgrade(current, V("1.40.0"), today=TODAY)
    too_old = {"apiserver": "1.20.0", "kubelets": {"1.17.0": 3}}  # 3 minors behind; 1.20 allows 2
    with pytest.raises(InvalidTransition, match="at most 2 minors older"):
        plan_upgrade(components_from_mapping(too_old), today=TODAY)
    half_done = {"apiserver": ["1.10.4", "1.9.3"], "kubelets": {"1.9.3": 5}}
    with pytest.raises(InvalidTransition, match="half done"):
        plan_upgrade(components_from_mapping(half_done), today=TODAY)
    with pytest.raises(InvalidTransition, match="kubectl"):
        plan_upgrade(components_from_mapping({"apiserver": "1.20.0", "kubelets": {"1.20.0": 1},
                                              "kubectl": "1.23.0"}), today=TODAY)


def test_skew_window_grows_to_three_minors_from_1_28() -> None:
    lagging = {"apiserver": "1.30.2", "kubelets": {"1.27.16": 10, "1.30.2": 3}}
    plan = plan_upgrade(components_from_mapping(lagging), V("1.30.14"), today=TODAY)
    assert plan.steps[0].ok and plan.steps[0].kind == "patch"
    # one more control-plane minor would leave those kubelets four behind
    with pytest.raises(InvalidTransition, match="kubelet at most 3 minors older"):
        plan_upgrade(components_from_mapping(lagging), V("1.31.14"), today=TODAY)


def test_observed_input_errors_are_clear() -> None:
    with pytest.raises(InputError, match="unknown key"):
        components_from_mapping({"apiserver": "1.9.3", "kubelets": {"1.9.3": 1}, "etcd": "3.1"})
    with pytest.raises(InputError, match="not a Kubernetes version"):
        components_from_mapping({"apiserver": "nine", "kubelets": {"1.9.3": 1}})
    with pytest.raises(InputError, match="node count"):
        components_from_mapping({"apiserver": "1.9.3", "kubelets": {"1.9.3": -1}})
    with pytest.raises(InputError, match="required"):
        components_from_mapping({"apiserver": "1.9.3"})


def test_release_data_edits_are_checked() -> None:
    text = """
data_version: x
skew: {apiserver_max_spread: 1, kubelet_max_older: 2, kube_proxy_max_older: 2,
       controller_manager_max_older: 1, scheduler_max_older: 1, kubectl_max_distance: 1}
releases:
  - {minor: "1.9", released: 2017-12-15, eol: 2018-09-29, latest_patch: 1.9.11}
  - {minor: "1.11", released: 2018-06-27, eol: 2019-05-01, latest_patch: 1.11.10}
"""
    with pytest.raises(InputError, match="jumps from 1.9 to 1.11"):
        parse_release_data(text)
    with pytest.raises(InputError, match="not in minor"):
        parse_release_data(text.replace("latest_patch: 1.11.10", "latest_patch: 1.12.1"))
    with pytest.raises(InputError, match="malformed"):
        parse_release_data("releases: 3")


def test_removed_api_scan() -> None:
    objs = [
        ("a.yaml#0", {"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "jupyterhub"}}),
        ("a.yaml#1", {"apiVersion": "rbac.authorization.k8s.io/v1beta1", "kind": "RoleBinding",
                      "metadata": {"name": "b"}}),
        ("a.yaml#2", {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "cull"}}),
        ("a.yaml#3", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fine"}}),
    ]
    found = {f.name: f for f in scan(objs, V("1.9.3"), V("1.22.17"))}
    assert found["jupyterhub"].status == "removed" and found["jupyterhub"].release == "1.16"
    assert found["b"].status == "removed" and found["b"].replacement == "rbac.authorization.k8s.io/v1"
    assert found["cull"].status == "deprecated" and "fine" not in found
    assert "is removed in 1.16" in str(found["jupyterhub"])
    later = {f.name: f.status for f in scan(objs, V("1.23.0"), V("1.37.1"))}
    assert later == {"jupyterhub": "already-removed", "b": "already-removed", "cull": "removed"}
    version, rows = removed_apis()
    assert version and len(rows) >= 50


def test_target_by_minor_and_already_there() -> None:
    assert target_version("1.31") == V("1.31.14") and target_version("v1.31.2") == V("1.31.2")
    at_target = components_from_mapping({"apiserver": "1.37.1", "kubelets": {"1.37.1": 4}})
    plan = plan_upgrade(at_target, today=TODAY)
    assert plan.steps == () and plan.target == V("1.37.1")


def test_seed_1_9_to_1_10_reports_the_kube_proxy_skew_kubeadm_causes() -> None:
    """kubeadm 1.10 upgrades kube-proxy during `kubeadm upgrade apply` on the first of the seed's three
    control-plane nodes (kubeadm < 1.28, CHANGELOG-1.28): kube-proxy 1.10 then runs beside two 1.9 API servers
    ("kube-proxy must not be newer than kube-apiserver", version-skew-policy.md). Next to the 1.9 kubelets it
    is one minor newer, which the policy allows ("kube-proxy < 1.25 may only be up to two minor versions older
    or newer than the kubelet instance it runs alongside")."""
    plan = plan_upgrade(components_from_spec(load(DEFAULT_SPEC)), V("1.10.4"), today=dt.date(2018, 6, 15))
    step = plan.steps[0]
    assert not step.ok
    first = step.phases[0]
    assert first.state.kube_proxy == V("1.10.4") and "kube-proxy" in first.name
    broken = {c.rule for c in first.checks if not c.ok}
    assert broken == {"kube-proxy not newer than kube-apiserver"}
    assert any("kube-proxy not newer than kube-apiserver" in x for x in step.kubeadm_skew)
    assert any("step 1 (1.9.3 → 1.10.4): kubeadm 1.10 upgrades kube-proxy" in n for n in plan.notes)
    # bare `kubeadm upgrade node` does not exist in kubeadm 1.10
    assert not any("kubeadm upgrade node" in line for line in step.commands["apt"])
    assert "kubeadm upgrade apply v1.10.4   # on every other control-plane node" in step.commands["apt"]


def test_kubeadm_1_28_upgrades_add_ons_after_the_control_plane() -> None:
    current = components_from_mapping({"apiserver": ["1.27.16"] * 3, "kubelets": {"1.27.16": 20}})
    plan = plan_upgrade(current, V("1.28.15"), today=dt.date(2024, 9, 1))
    step = plan.steps[0]
    assert step.ok and not step.kubeadm_skew
    assert step.phases[0].state.kube_proxy == V("1.27.16")  # apply on the first node leaves the add-ons
    addon = [p for p in step.phases if p.name.startswith("kube-proxy and CoreDNS")]
    assert addon and addon[0].state.kube_proxy == V("1.28.15")
    assert all(n.apiserver == V("1.28.15") for n in addon[0].state.control_plane)


@pytest.mark.parametrize(("to", "control_plane", "worker"), [
    ("1.10.13", "kubeadm upgrade apply v1.10.13", None),
    ("1.12.10", "kubeadm upgrade apply v1.12.10", "kubeadm upgrade node config --kubelet-version v1.12.10"),
    # kubernetes/website kubeadm-upgrade-ha-1-13.md, "Upgrading additional control plane nodes"
    ("1.13.12", "kubeadm upgrade node experimental-control-plane",
     "kubeadm upgrade node config --kubelet-version v1.13.12"),
    ("1.14.10", "kubeadm upgrade node experimental-control-plane",
     "kubeadm upgrade node config --kubelet-version v1.14.10"),
    ("1.15.12", "kubeadm upgrade node", "kubeadm upgrade node"),
    ("1.37.1", "kubeadm upgrade node", "kubeadm upgrade node"),
])
def test_node_commands_exist_in_that_kubeadm(to: str, control_plane: str, worker: str | None) -> None:
    assert node_commands(V(to)) == (control_plane, worker)
    plan = plan_upgrade(components_from_mapping({"apiserver": [to] * 3, "kubelets": {to: 3}}), V(to),
                        today=TODAY)
    assert plan.steps == ()


def test_worker_steps_run_kubeadm_upgrade_node_from_1_15() -> None:
    current = components_from_mapping({"apiserver": "1.30.14", "kubelets": {"1.30.14": 5}})
    step = plan_upgrade(current, V("1.31.14"), today=TODAY).steps[0]
    apt = step.commands["apt"]
    worker = [i for i, line in enumerate(apt) if line.startswith("kubeadm upgrade node   # on each worker")]
    drain = [i for i, line in enumerate(apt) if line.startswith("kubectl drain")]
    assert worker and drain and worker[0] < drain[0]


def test_observed_controller_newer_than_api_server_is_reported_as_it_is() -> None:
    observed = components_from_mapping({"apiserver": "1.30.14", "controller_manager": "1.31.2",
                                        "kubelets": {"1.30.14": 5}})
    assert observed.control_plane[0].controller_manager == V("1.31.2")
    with pytest.raises(InvalidTransition, match="kube-controller-manager not newer than kube-apiserver"):
        plan_upgrade(observed, V("1.31.14"), today=TODAY)


def test_removed_api_rows_cite_their_source_and_cover_what_pluto_and_the_guide_list() -> None:
    """Rows the deprecation guide lists (v1.16: apps/v1beta1 ReplicaSet; v1.22: every
    authorization.k8s.io/v1beta1 kind) and pluto's for what the guide omits (audit.k8s.io v1alpha1/v1beta1,
    removed in 1.24; alpha APIs up to 1.35)."""
    _, rows = removed_apis()
    by = {(r.api, r.kind): r for r in rows}
    assert all(r.source for r in rows)
    for r in rows:
        if r.source.startswith("guide#v"):
            assert r.source.split()[0].rstrip(",") == f"guide#v1-{r.removed_in.minor}", r
    assert by[("apps/v1beta1", "ReplicaSet")].removed_in == V("1.16")
    assert by[("authorization.k8s.io/v1beta1", "SelfSubjectRulesReview")].removed_in == V("1.22")
    for api in ("audit.k8s.io/v1alpha1", "audit.k8s.io/v1beta1"):
        assert by[(api, "Policy")].removed_in == V("1.24")
    assert max(r.removed_in for r in rows) >= V("1.35")
    policy = [("p.yaml#0", {"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "metadata": {"name": "a"}})]
    assert [f.status for f in scan(policy, V("1.9.3"), V("1.24.17"))] == ["removed"]


def test_removed_api_row_without_source_is_refused() -> None:
    from enclave.ops.removed_apis import parse_removed_apis

    text = 'data_version: x\napis:\n  - {api: a/v1, kind: K, deprecated_in: "1.1", removed_in: "1.2", replacement: b}\n'
    with pytest.raises(InputError, match="cites no source"):
        parse_removed_apis(text)


def test_text_commands_show_the_repository_and_every_package_manager() -> None:
    """From 1.24 each minor has its own pkgs.k8s.io repository, switched before the packages are upgraded
    (kubernetes/website content/en/docs/tasks/administer-cluster/kubeadm/change-package-repository.md,
    "Switching to another Kubernetes package repository": https://pkgs.k8s.io/core:/stable:/v1.NN/deb/ and
    …/rpm/); upgrading-linux-nodes.md holds the packages again with `apt-mark hold` (Ubuntu/Debian tab)."""
    from enclave.ops.report import plan_to_text

    current = components_from_mapping({"apiserver": "1.23.17", "kubelets": {"1.23.17": 3}})
    text = plan_to_text(plan_upgrade(current, V("1.25.16"), today=TODAY), commands=True)
    steps = text[text.index("Steps ("):text.index("Stop automatic updates")]  # not the pinning snippets
    assert "https://pkgs.k8s.io/core:/stable:/v1.24/" in steps
    assert "https://pkgs.k8s.io/core:/stable:/v1.25/" in steps
    assert "$ apt-mark hold kubeadm" in steps and "$ apt-mark hold kubelet kubectl" in steps
    assert "$ dnf versionlock add kubeadm" in steps
    assert "kubeadm version -o short   # must print v1.25.16 before apply" in steps


def test_kube_proxy_may_be_two_minors_from_its_kubelet_three_from_kube_proxy_1_25() -> None:
    """kubernetes/website content/en/releases/version-skew-policy.md, kube-proxy: "kube-proxy may be up to three
    minor versions older or newer than the kubelet instance it runs alongside (kube-proxy < 1.25 may only be up
    to two …)". kubeadm 1.26 upgrades kube-proxy with the control plane, so 1.26 API server and kube-proxy beside
    1.25 kubelets is the state its own upgrade leaves; a plan from there to 1.27 passes."""
    left_by_kubeadm = components_from_mapping({"apiserver": "1.26.15", "kubelets": {"1.25.16": 5}})
    assert left_by_kubeadm.kube_proxy == V("1.26.15")
    plan = plan_upgrade(left_by_kubeadm, V("1.27.16"), today=TODAY)
    assert [str(s.target) for s in plan.steps] == ["1.27.16"] and plan.steps[0].ok
    # kube-proxy 1.24 is more than two minors from a 1.21 kubelet
    too_far = components_from_mapping({"apiserver": "1.24.17", "kube_proxy": "1.24.17", "kubelets": {"1.21.14": 2}})
    with pytest.raises(InvalidTransition, match=r"kube-proxy within 2 minor\(s\) of the kubelet beside it"):
        plan_upgrade(too_far, V("1.25.16"), today=TODAY)
    # kube-proxy 1.25 beside a 1.28 kubelet: three minors, allowed from kube-proxy 1.25
    three = components_from_mapping({"apiserver": "1.28.15", "kube_proxy": "1.25.16", "kubelets": {"1.28.15": 2}})
    assert not [c for c in check_skew(three, release_data().skew) if not c.ok]


def test_further_control_plane_nodes_before_1_13_need_their_kubeadm_config_edited() -> None:
    """Up to 1.12 each further control-plane node runs `kubeadm upgrade apply` after the kubeadm-config
    ConfigMap is edited for it (kubernetes/website kubeadm-upgrade-ha.md 1.9.x → 1.9.y: nodeName;
    kubeadm-upgrade-ha-1-12.md: etcd URLs, apiEndpoints, cri-socket annotation); from 1.13 `kubeadm upgrade node
    experimental-control-plane` reads the node's own settings (kubeadm-upgrade-ha-1-13.md)."""
    three = {"apiserver": ["1.11.10"] * 3, "kubelets": {"1.11.10": 6}}
    step = plan_upgrade(components_from_mapping(three), V("1.12.10"), today=TODAY).steps[0]
    assert "kubeadm upgrade apply v1.12.10   # on every other control-plane node" in step.commands["apt"]
    assert any("kubeadm-config" in n and "nodeName" in n and "apiEndpoints" in n for n in step.notes)
    one = {"apiserver": "1.11.10", "kubelets": {"1.11.10": 6}}
    assert not plan_upgrade(components_from_mapping(one), V("1.12.10"), today=TODAY).steps[0].notes
    three_12 = {"apiserver": ["1.12.10"] * 3, "kubelets": {"1.12.10": 6}}
    step = plan_upgrade(components_from_mapping(three_12), V("1.13.12"), today=TODAY).steps[0]
    further = "kubeadm upgrade node experimental-control-plane   # on every other control-plane node"
    assert further in step.commands["apt"]
    assert not [n for n in step.notes if "kubeadm-config" in n]


@pytest.mark.parametrize("to", ["1.10.13", "1.11.10"])
def test_up_to_1_11_the_kubeadm_binary_comes_before_apply_not_the_package(to: str) -> None:
    """kubernetes/website kubeadm-upgrade-1-9.md and kubeadm-upgrade-1-11.md, "Upgrade the control plane":
    curl https://dl.k8s.io/release/${VERSION}/bin/linux/${ARCH}/kubeadm > /usr/bin/kubeadm, because "upgrading the
    kubeadm package on your system prior to upgrading the control plane causes a failed upgrade"."""
    source = f"1.{V(to).minor - 1}.0"
    current = components_from_mapping({"apiserver": source, "kubelets": {source: 3}})
    for manager in ("apt", "dnf"):
        lines = plan_upgrade(current, V(to), today=TODAY).steps[0].commands[manager]
        apply = next(i for i, line in enumerate(lines) if f"kubeadm upgrade apply v{to}" in line)
        assert lines[0].startswith(f"curl -sSL https://dl.k8s.io/release/v{to}/bin/linux/amd64/kubeadm "
                                   "-o /usr/bin/kubeadm")
        assert not [line for line in lines[:apply] if "kubeadm=" in line or "kubeadm-'" in line]
        # the package comes later, with the kubelet; on a 1.11 worker before `kubeadm upgrade node config`
        package = next(i for i, line in enumerate(lines) if "kubeadm=" in line or "kubeadm-'" in line)
        assert package > apply
        assert all(i > package for i, line in enumerate(lines) if line.startswith("kubeadm upgrade node config"))


def test_from_1_12_the_kubeadm_package_comes_before_apply() -> None:
    """kubernetes/website kubeadm-upgrade-1-12.md, "Upgrade the control plane": apt-get upgrade -y kubeadm."""
    current = components_from_mapping({"apiserver": "1.11.10", "kubelets": {"1.11.10": 3}})
    lines = plan_upgrade(current, V("1.12.10"), today=TODAY).steps[0].commands["apt"]
    assert lines[0].startswith("apt-mark unhold kubeadm   # on every node")
    assert lines[1] == "apt-get update && apt-get install -y kubeadm='1.12.10-*'"
    assert not [line for line in lines if "dl.k8s.io" in line]


def test_workers_entering_1_11_get_the_kubelet_flags_file() -> None:
    """kubernetes/kubeadm#1418: upgrading 1.10 → 1.11 by the guide writes /var/lib/kubelet/kubeadm-flags.env only
    on the control-plane node, and workers' kubelets lose --network-plugin=cni; kubernetes/kubernetes#65562: run
    `kubeadm alpha phase kubelet write-env-file` on each node. It follows `kubeadm upgrade node config` (which
    writes /var/lib/kubelet/config.yaml) and precedes the kubelet restart."""
    current = components_from_mapping({"apiserver": "1.10.13", "kubelets": {"1.10.13": 3}})
    lines = plan_upgrade(current, V("1.11.10"), today=TODAY).steps[0].commands["apt"]
    config = next(i for i, line in enumerate(lines) if line.startswith("kubeadm upgrade node config"))
    env = next(i for i, line in enumerate(lines) if line.startswith("kubeadm alpha phase kubelet write-env-file"))
    restart = next(i for i, line in enumerate(lines) if "systemctl restart kubelet" in line)
    assert config < env < restart and "on each worker" in lines[env]
    # the file exists from then on: a patch step within 1.11 and the step into 1.12 leave it alone
    patch = components_from_mapping({"apiserver": "1.11.0", "kubelets": {"1.11.0": 3}})
    later = components_from_mapping({"apiserver": "1.11.10", "kubelets": {"1.11.10": 3}})
    for c, to in ((patch, "1.11.10"), (later, "1.12.10")):
        lines = plan_upgrade(c, V(to), today=TODAY).steps[0].commands["apt"]
        assert not [line for line in lines if "write-env-file" in line]


def test_the_step_into_1_24_requires_every_node_off_dockershim_first() -> None:
    """kubernetes/kubernetes CHANGELOG-1.24, "Dockershim Removed from kubelet": "From v1.24 onwards, you will need
    to either use one of the other supported runtimes (such as containerd or CRI-O) or use cri-dockerd if you are
    relying on Docker Engine as your container runtime"."""
    current = components_from_mapping({"apiserver": "1.23.17", "kubelets": {"1.23.17": 3}})
    plan = plan_upgrade(current, V("1.25.16"), today=TODAY)
    into_24, into_25 = plan.steps
    assert len(into_24.required) == 1
    assert all(word in into_24.required[0] for word in ("dockershim", "containerd", "cri-dockerd", "cri-socket"))
    assert into_25.required == ()
    patch = components_from_mapping({"apiserver": "1.24.0", "kubelets": {"1.24.0": 3}})
    assert plan_upgrade(patch, V("1.24.17"), today=TODAY).steps[0].required == ()
    from enclave.ops.report import plan_to_dict, plan_to_text

    assert "REQUIRED FIRST: every node whose kubelet runs Docker Engine" in plan_to_text(plan)
    assert plan_to_dict(plan)["steps"][0]["required"] == list(into_24.required)


def test_the_step_into_1_22_notes_kubeadm_defaults_the_cgroup_driver_to_systemd() -> None:
    """kubernetes/website configure-cgroup-driver.md: "In v1.22 and later, if the user does not set the
    cgroupDriver field under KubeletConfiguration, kubeadm defaults it to systemd"; to keep cgroupfs on an
    existing cluster, be explicit in the kubelet ConfigMap."""
    current = components_from_mapping({"apiserver": "1.21.14", "kubelets": {"1.21.14": 3}})
    into_22, into_23 = plan_upgrade(current, V("1.23.17"), today=TODAY).steps
    assert [n for n in into_22.notes if "cgroupDriver" in n and "systemd" in n and "cgroupfs" in n]
    assert not [n for n in into_23.notes if "cgroupDriver" in n]


def test_dns_add_on_is_kube_dns_before_1_11_and_coredns_from_it() -> None:
    """Seed §9 (kubeadm 1.10 plan of the 1.9.3 cluster): "Kube DNS 1.14.7 1.14.7"; kubeadm-upgrade-1-11.md:
    "The default DNS provider in version 1.11 is CoreDNS rather than kube-dns", its plan listing CoreDNS 1.1.3
    beside Kube DNS 1.14.8."""
    seed = components_from_spec(load(DEFAULT_SPEC))
    names = [r.component for r in plan_upgrade(seed, V("1.10.4"), today=dt.date(2018, 6, 15)).table]
    assert "Kube DNS" in names and "CoreDNS" not in names
    rows = {r.component: r for r in plan_upgrade(seed, V("1.11.10"), today=TODAY).table}
    assert rows["Kube DNS"].current == "kubeadm-managed" and "replaced by CoreDNS" in rows["Kube DNS"].target
    assert rows["CoreDNS"].current == "-"
    later = components_from_mapping({"apiserver": "1.20.15", "kubelets": {"1.20.15": 3}})
    names = [r.component for r in plan_upgrade(later, V("1.21.14"), today=TODAY).table]
    assert "CoreDNS" in names and "Kube DNS" not in names
    into_11 = plan_upgrade(seed, V("1.11.10"), today=TODAY).steps[1]
    assert into_11.target.minor == 11
    assert [n for n in into_11.notes if "CoreDNS" in n and "--feature-gates=CoreDNS=false" in n]
    assert not [n for n in plan_upgrade(seed, V("1.11.10"), today=TODAY).steps[0].notes if "CoreDNS" in n]


def test_flowcontrol_v1beta1_moves_to_v1beta2() -> None:
    """Deprecation guide, v1.26 "Flow control resources": "Migrate manifests and API clients to use the
    flowcontrol.apiserver.k8s.io/v1beta2 API version"; v1.29: v1 is "available since v1.29"."""
    _, rows = removed_apis()
    by = {(r.api, r.kind): r for r in rows}
    for kind in ("FlowSchema", "PriorityLevelConfiguration"):
        row = by[("flowcontrol.apiserver.k8s.io/v1beta1", kind)]
        assert row.removed_in == V("1.26") and row.replacement.startswith("flowcontrol.apiserver.k8s.io/v1beta2 ")
        assert "from 1.29 flowcontrol.apiserver.k8s.io/v1" in row.replacement


def test_drain_and_uncordon_run_on_a_control_plane_node() -> None:
    """kubernetes/website content/en/docs/tasks/administer-cluster/kubeadm/upgrading-linux-nodes.md, "Drain the
    node" and "Uncordon the node": "# execute this command on a control plane node"; the package upgrade and
    `systemctl restart kubelet` run on the node itself."""
    current = components_from_mapping({"apiserver": "1.30.14", "kubelets": {"1.30.14": 5}})
    for manager in ("apt", "dnf"):
        lines = plan_upgrade(current, V("1.31.14"), today=TODAY).steps[0].commands[manager]
        assert "kubectl uncordon <node>   # on a control-plane node" in lines
        assert [line for line in lines if line.startswith("kubectl drain <node>") and "on a control-plane node" in line]
        restart = [line for line in lines if "systemctl restart kubelet" in line]
        assert restart == ["systemctl daemon-reload && systemctl restart kubelet   # on <node>"]
        assert all("   # " in line for line in lines if line.startswith(("kubeadm ", "kubectl ", "systemctl ")))


# Each rule of https://kubernetes.io/releases/version-skew-policy/ (kubernetes/website content/en/releases/
# version-skew-policy.md), one state that breaks it alone and the rule it breaks. A mutation round (stop 57) changed
# nine of check_skew's comparisons one at a time and no test failed: these states tell each apart.
SKEW_CASES = [
    # "In highly-available (HA) clusters, the newest and oldest kube-apiserver instances must be within one minor
    # version." Two minors apart: broken; the oldest is 1.28, so 1.27 kubelets are fine.
    ({"apiserver": ["1.30.1", "1.28.1"], "kubelets": {"1.28.1": 2}, "kubectl": "1.29.1",
      "controller_manager": "1.29.1", "scheduler": "1.29.1", "kube_proxy": "1.28.1"},
     {"kube-apiserver instances within one minor", "kube-controller-manager not newer than kube-apiserver",
      "kube-scheduler not newer than kube-apiserver"}),
    # "kubelet must not be newer than kube-apiserver": against the oldest instance ("kube-apiserver instances
    # are at 1.32 and 1.31: kubelet is supported at 1.31, 1.30, 1.29 and 1.28"), so 1.32 beside a 1.31 one is not.
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.32.1": 1}, "kube_proxy": "1.31.1", "kubectl": "1.31.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"},
     {"kubelet not newer than kube-apiserver"}),
    # "kubelet may be up to three minor versions older than kube-apiserver" (1.28 on; two before), counted from the
    # newest instance: kubelets at 1.28 are four behind a 1.32 instance, though three behind the oldest (1.31).
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.28.1": 1}, "kube_proxy": "1.31.1", "kubectl": "1.31.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"},
     {"kubelet at most 3 minors older than kube-apiserver"}),
    # kube-proxy "must not be newer than kube-apiserver" and "may be up to three minor versions older" (1.28 on),
    # each as the kubelet's, against the oldest and the newest instance.
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.31.1": 1}, "kube_proxy": "1.32.1", "kubectl": "1.31.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"},
     {"kube-proxy not newer than kube-apiserver"}),
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.29.1": 1}, "kube_proxy": "1.28.1", "kubectl": "1.31.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"},
     {"kube-proxy at most 3 minors older than kube-apiserver"}),
    # "kube-proxy may be up to three minor versions older or newer than the kubelet instance it runs alongside"
    # (kube-proxy 1.25 on): three older than one kubelet is allowed, four older is not, whichever way it points.
    ({"apiserver": "1.32.1", "kubelets": {"1.29.1": 1, "1.32.1": 1}, "kube_proxy": "1.29.1"}, set()),
    ({"apiserver": "1.32.1", "kubelets": {"1.32.1": 1}, "kube_proxy": "1.28.1"},
     {"kube-proxy at most 3 minors older than kube-apiserver",
      "kube-proxy within 3 minor(s) of the kubelet beside it"}),
    # kube-controller-manager and kube-scheduler "must not be newer than the kube-apiserver instances they
    # communicate with" (kubeadm: the one on their own node), and "may be up to one minor version older": 1.31
    # controllers on both nodes, with instances at 1.32 and 1.31, are newer than none and older than 1.32 by one.
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.31.1": 1}, "kube_proxy": "1.31.1", "kubectl": "1.31.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"}, set()),
    # ... and 1.30 ones are two behind the newest instance, though one behind their own node's 1.31.
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.31.1": 1}, "kube_proxy": "1.31.1", "kubectl": "1.31.1",
      "controller_manager": "1.30.1", "scheduler": "1.31.1"},
     {"kube-controller-manager at most 1 minor older than kube-apiserver"}),
    # "kubectl is supported within one minor version (older or newer) of kube-apiserver": of every instance, so a
    # 1.33 kubectl, one newer than the 1.32 instance, is two newer than the 1.31 one.
    ({"apiserver": ["1.32.1", "1.31.1"], "kubelets": {"1.31.1": 1}, "kube_proxy": "1.31.1", "kubectl": "1.33.1",
      "controller_manager": "1.31.1", "scheduler": "1.31.1"},
     {"kubectl within ±1 minor of kube-apiserver"}),
    ({"apiserver": "1.31.1", "kubelets": {"1.31.1": 1}, "kubectl": "1.33.1"},
     {"kubectl within ±1 minor of kube-apiserver"}),
    # Before 1.28, two minors: a 1.24 kubelet is three behind a 1.27 instance.
    ({"apiserver": "1.27.1", "kubelets": {"1.24.1": 1}, "kube_proxy": "1.25.1"},
     {"kubelet at most 2 minors older than kube-apiserver"}),
]


@pytest.mark.parametrize(("observed", "broken"), SKEW_CASES)
def test_each_skew_rule_on_its_own(observed: dict[str, object], broken: set[str]) -> None:
    checks = check_skew(components_from_mapping(observed), release_data().skew)
    assert {c.rule for c in checks if not c.ok} == broken


def test_controllers_are_held_to_the_newest_kube_apiserver_instance() -> None:
    """The policy's own example: "kube-apiserver instances are at 1.32 and 1.31: kube-controller-manager,
    kube-scheduler, and cloud-controller-manager are supported at 1.31". A 1.30 controller manager on the 1.31 node
    is one minor behind its own API server and two behind the 1.32 instance, which it may reach behind a load
    balancer: not supported."""
    nodes = (ControlPlaneNode("cp-1", V("1.32.1"), V("1.32.1"), V("1.32.1")),
             ControlPlaneNode("cp-2", V("1.31.1"), V("1.30.1"), V("1.31.1")))
    observed = Components(nodes, ((V("1.31.1"), 2),), V("1.31.1"), V("1.31.1"), V("1.31.1"))
    broken = {c.rule for c in check_skew(observed, release_data().skew) if not c.ok}
    assert broken == {"kube-controller-manager at most 1 minor older than kube-apiserver"}
