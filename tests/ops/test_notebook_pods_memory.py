"""The memory of a notebook pod as KubeSpawner itself gives it: the values' "2048M" is a KubeSpawner byte string
(JupyterHub's ByteSpecification, M = 2^20 bytes), converted by the spawner's mem_limit / mem_guarantee traits before
``make_pod`` (kubespawner/spawner.py), not a Kubernetes quantity (M = 10^6 bytes)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.utils import parse_quantity
from kubespawner import KubeSpawner

from enclave.errors import InputError
from enclave.notebooks.profiles import z2jh_values
from enclave.ops.notebook_pods import notebook_pods
from enclave.spec import load
from enclave.spec.defaults import EXAMPLES
from tests.ops.test_notebook_pods import VALUES

MiB = 2**20


def kubespawner_bytes(value: Any, trait: str = "mem_limit") -> int:
    """What KubeSpawner's own trait (JupyterHub's Spawner.mem_limit / mem_guarantee) makes of ``value``."""
    return int(KubeSpawner.class_traits()[trait].validate(None, value))


def memory(pod: dict[str, Any]) -> tuple[int, int]:
    """(request, limit) in bytes, read as Kubernetes reads the pod's quantities."""
    resources = pod["spec"]["containers"][0]["resources"]
    return int(parse_quantity(resources["requests"]["memory"])), int(parse_quantity(resources["limits"]["memory"]))


def test_byte_strings_become_what_kubespawner_asks() -> None:
    pods = dict(notebook_pods(VALUES, "values.yaml#0", "jupyter-lsst"))
    by_label = {where.split("profile ")[-1].rstrip(")"): pod for where, pod in pods.items()}
    # singleuser.memory guarantee "2048M"; small's limit "2048M", large's "8192M" (tests/ops/test_notebook_pods.py).
    assert memory(by_label["small-weekly"]) == (2048 * MiB, 2048 * MiB) == (2147483648, 2147483648)
    assert memory(by_label["large"]) == (2048 * MiB, 8192 * MiB)
    assert memory(by_label["large"]) == (kubespawner_bytes("2048M", "mem_guarantee"), kubespawner_bytes("8192M"))
    assert memory(by_label["large"])[1] != 8192 * 10**6  # the quantity "8192M" the values would be if passed as is
    for pod in pods.values():
        kubernetes_validate.validate(pod, "1.37.0", strict=True)


def test_the_rendered_values_keep_the_specs_mebibytes() -> None:
    """examples/lsst-ldf.yaml's sizes are in MiB; the pods ask exactly that (profiles.mem writes "<MiB>M")."""
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    values = z2jh_values(spec, vetted=lambda image: True)
    sizes = spec.notebooks.sizes
    for where, pod in notebook_pods(values, "values.yaml", spec.notebooks.namespace):
        size = sizes[where.split("profile ")[-1].split("-", 1)[0]]
        assert memory(pod) == (size.memory_request_mib * MiB, size.memory_limit_mib * MiB), where


@pytest.mark.parametrize(("given", "expected"), [("512K", 512 * 1024), ("1.5G", int(1.5 * 2**30)), ("1T", 2**40),
                                                 (3000000000, 3000000000)])
def test_every_suffix_and_plain_bytes(given: Any, expected: int) -> None:
    values = copy.deepcopy(VALUES)
    values["singleuser"]["profileList"] = []
    values["singleuser"]["memory"] = {"guarantee": given, "limit": given}
    [(_, pod)] = notebook_pods(values, "values.yaml#0", "jupyter-lsst")
    assert memory(pod) == (expected, expected) == (kubespawner_bytes(given),) * 2


def test_a_setting_kubespawner_refuses_is_reported_where_it_is() -> None:
    """"2Gi" is a Kubernetes quantity, not a KubeSpawner byte string: KubeSpawner's trait refuses it."""
    values = copy.deepcopy(VALUES)
    values["singleuser"]["profileList"][1]["kubespawner_override"]["mem_limit"] = "2Gi"
    with pytest.raises(InputError) as refused:
        notebook_pods(values, "values.yaml#0", "jupyter-lsst")
    assert "values.yaml#0 profile large: mem_limit" in str(refused.value)
    assert "2Gi is not a valid memory specification" in str(refused.value)
