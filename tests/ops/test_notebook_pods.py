"""Notebook pods built by KubeSpawner from Zero-to-JupyterHub values, as the security benchmark sees them."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from enclave.ops.images import ApprovedImage, pinner
from enclave.ops.notebook_pods import notebook_pods

LAB = "registry.lsst.local/lsstsqre/sciplat-lab"
D1 = "sha256:" + "c" * 64

VALUES: dict[str, Any] = {
    "hub": {"extraEnv": {"ENCLAVE_NOTEBOOK_NAMESPACE": "jupyter-lsst"}},
    "singleuser": {
        "image": {"name": LAB, "tag": "w_2018_25"},
        "cpu": {"limit": 2.0, "guarantee": 1.0}, "memory": {"limit": "4096M", "guarantee": "2048M"},
        "allowPrivilegeEscalation": False, "nodeSelector": {"lsst.io/commons": "true"},
        "storage": {"type": "none",
                    "extraVolumes": [{"name": "home", "hostPath": {"path": "/jhome/{username}", "type": "Directory"}}],
                    "extraVolumeMounts": [{"name": "home", "mountPath": "/home/{username}"}]},
        "profileList": [
            {"slug": "small", "kubespawner_override": {"cpu_limit": 1.0, "mem_limit": "2048M"},
             "profile_options": {"image": {"choices": {
                 "weekly": {"kubespawner_override": {"image": f"{LAB}:w_2018_25"}},
                 "release": {"kubespawner_override": {"image": f"{LAB}:r16_0"}}}}}},
            {"slug": "large", "kubespawner_override": {"cpu_limit": 4.0, "mem_limit": "8192M"}},
        ],
    },
}


def test_every_profile_and_image_becomes_a_valid_pod() -> None:
    pods = notebook_pods(VALUES, "values.yaml#0", "ignored")
    assert len(pods) == 3
    for _, pod in pods:
        kubernetes_validate.validate(pod, "1.37.0", strict=True)
        assert pod["metadata"]["namespace"] == "jupyter-lsst"
        c = pod["spec"]["containers"][0]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/jhome/example-user"
    limits = sorted(p["spec"]["containers"][0]["resources"]["limits"]["cpu"] for _, p in pods)
    assert limits == [1.0, 1.0, 4.0]


def test_pinning_replaces_tags_and_drops_unvetted_choices() -> None:
    pin = pinner([ApprovedImage(LAB, "w_2018_25", D1)])
    skipped: list[str] = []
    pods = notebook_pods(VALUES, "values.yaml#0", "jupyter-lsst", pin, skipped)
    assert sorted(p["spec"]["containers"][0]["image"] for _, p in pods) == [f"{LAB}@{D1}"] * 2
    assert len(skipped) == 1 and "r16_0 is not vetted" in skipped[0]
    assert pin(f"{LAB}@{D1}") == f"{LAB}@{D1}" and pin(f"{LAB}@sha256:" + "d" * 64) is None and pin("junk") is None
