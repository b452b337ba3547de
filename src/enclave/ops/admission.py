"""The admission policy that lets only vetted images run (seed §10): a Kyverno ClusterPolicy.

Pure: it renders from the spec and the approved digests. An empty approval list renders a policy that
refuses every image — vetting fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from enclave.errors import InputError, Problem
from enclave.ops.images import ApprovedImage
from enclave.spec.models import EnclaveSpec

POLICY_NAME = "enclave-vetted-images"
# Control-plane pods come from kubeadm's own images and Kyverno must be able to restart itself.
EXEMPT_NAMESPACES = ("kube-system", "kyverno")


def render_admission(spec: EnclaveSpec, approved: Iterable[ApprovedImage]) -> list[dict[str, Any]]:
    registry = spec.registry.host
    allowed = sorted({a.pinned for a in approved if a.repository.startswith(registry + "/")})
    policy: dict[str, Any] = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "labels": {"app.kubernetes.io/managed-by": "enclave"},
            "annotations": {
                "policies.kyverno.io/title": "Vetted images only",
                "policies.kyverno.io/description":
                    f"Every container must run an image from {registry} by a digest security staff approved "
                    "(`enclave images list --status approved`).",
                "enclave.lsst.io/approved-digests": str(len(allowed)),
            },
        },
        "spec": {
            "validationFailureAction": "Enforce" if spec.registry.vetting_required else "Audit",
            "background": True,
            "failurePolicy": "Fail",
            "rules": [{
                "name": "vetted-digest",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "exclude": {"any": [{"resources": {"namespaces": list(EXEMPT_NAMESPACES)}}]},
                "validate": {
                    "message": f"image {{{{ element.image }}}} is not an approved digest from {registry}; "
                               "ask security to vet it (enclave images submit/approve) and refer to it as "
                               "repository@sha256:<digest>",
                    "foreach": [{
                        "list": "request.object.spec.[ephemeralContainers, initContainers, containers][]",
                        "deny": {"conditions": {"all": [
                            {"key": "{{ element.image }}", "operator": "AnyNotIn", "value": allowed},
                        ]}},
                    }],
                },
            }],
        },
    }
    return [policy]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    text = resources.files("enclave.ops").joinpath("data/schemas/kyverno-clusterpolicy-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_policy(obj: Mapping[str, Any]) -> None:
    """Check a rendered policy against the shipped Kyverno ClusterPolicy schema."""
    errors = sorted(jsonschema.Draft7Validator(_schema()).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError([Problem("/".join(str(p) for p in e.absolute_path) or "(root)", e.message,
                                  "fix the admission renderer") for e in errors])


def allows(policy: Mapping[str, Any], image: str) -> bool:
    """What the policy decides for one container image (the deny condition, evaluated as Kyverno does)."""
    rule = policy["spec"]["rules"][0]
    cond = rule["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]
    return image in cond["value"]
