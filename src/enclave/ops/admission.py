"""The admission policy that lets only vetted images run (seed §10): a Kyverno ClusterPolicy.

Pure: it renders from the spec and the approved digests, for the Kyverno version the spec names
(``registry.kyverno_version``). Two rules: pods in the notebook namespace, and pods everywhere else (but the
exempt namespaces). Each admits the approved digests plus enclave's own images (``registry.system_images``:
the HTCondor worker the broker starts, the hub, WebDAV), so with nothing approved yet notebook pods are
refused with a message saying how to approve an image and enclave's own pods still run — vetting fails
closed for everything else.
"""

from __future__ import annotations

import json
import re
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
CONTAINERS = "request.object.spec.[ephemeralContainers, initContainers, containers][]"
# Kyverno 1.13 moved the failure action into each validate rule (`validate.failureAction`) and the webhook
# failure policy under `webhookConfiguration`; the policy-level `spec.validationFailureAction` and
# `spec.failurePolicy` are deprecated from 1.13 (their CRD descriptions: "Deprecated, use …").
RULE_LEVEL_FROM = (1, 13)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# The refused image is named in the deny condition's message: Kyverno refuses a policy that names `element` outside
# a foreach (the policy webhook's validateElementInForEach, pkg/engine/variables/vars.go, v1.10.0-v1.16.0: "variable
# … present outside of foreach"), and getDenyMessage (pkg/engine/handlers/validation/validate_resource.go) joins
# the condition's message to the rule's with "; " and substitutes it for each element.
IMAGE = "{{ element.image }}"


def _rule(name: str, match: dict[str, Any], exclude: list[str], allowed: list[str], message: str, refused: str,
          action: str | None) -> dict[str, Any]:
    validate: dict[str, Any] = {"message": message}
    if action is not None:
        validate["failureAction"] = action
    validate["foreach"] = [{"list": CONTAINERS, "deny": {"conditions": {"all": [
        {"key": IMAGE, "operator": "AnyNotIn", "value": allowed, "message": refused}]}}}]
    return {"name": name, "match": {"any": [{"resources": match}]},
            "exclude": {"any": [{"resources": {"namespaces": exclude}}]}, "validate": validate}


def render_admission(spec: EnclaveSpec, approved: Iterable[ApprovedImage]) -> list[dict[str, Any]]:
    registry = spec.registry.host
    version = spec.registry.kyverno_version
    rule_level = _minor(version) >= RULE_LEVEL_FROM
    action = "Enforce" if spec.registry.vetting_required else "Audit"
    mine = [a for a in approved if a.repository.startswith(registry + "/")]
    vetted = sorted({a.pinned for a in mine})
    system = sorted(set(spec.registry.system_images.values()))
    allowed = sorted(set(vetted) | set(system) | {tagged(a.repository, a.digest) for a in mine})
    nb = spec.notebooks.namespace
    how = (f"security staff approve an image with `enclave images submit {registry}/<repository>@sha256:<digest>` "
           "then `enclave images approve … --reason …`, and the policy is rendered again")
    notebook_msg = (f"no notebook image is approved yet: {how}" if not vetted else
                    f"{how}; refer to images as repository@sha256:<digest>")
    notebook_refused = f"image {IMAGE} is not an approved digest from {registry}"
    other_refused = (f"image {IMAGE} is neither an approved digest from {registry} nor one of enclave's own images "
                     "(registry.system_images)")
    spec_body: dict[str, Any] = {"background": True}
    if rule_level:
        spec_body["webhookConfiguration"] = {"failurePolicy": "Fail"}
    else:
        spec_body |= {"validationFailureAction": action, "failurePolicy": "Fail"}
    spec_body["rules"] = [
        _rule("vetted-notebook-images", {"kinds": ["Pod"], "namespaces": [nb]}, list(EXEMPT_NAMESPACES), allowed,
              notebook_msg, notebook_refused, action if rule_level else None),
        _rule("vetted-images", {"kinds": ["Pod"]}, [*EXEMPT_NAMESPACES, nb], allowed, how, other_refused,
              action if rule_level else None),
    ]
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
                    "(`enclave images list --status approved`), or one of enclave's own pinned images.",
                "policies.kyverno.io/minversion": version,
                "enclave.lsst.io/approved-digests": str(len(vetted)),
                "enclave.lsst.io/system-images": str(len(system)),
            },
        },
        "spec": spec_body,
    }
    return [policy]


SUPPORTED_KYVERNO = tuple(f"1.{m}" for m in range(10, 17))


@lru_cache(maxsize=len(SUPPORTED_KYVERNO))
def _schema(version: str) -> dict[str, Any]:
    if version not in SUPPORTED_KYVERNO:
        raise InputError([Problem("registry.kyverno_version", f"Kyverno {version} has no shipped schema",
                                  f"use one of {', '.join(SUPPORTED_KYVERNO)}")])
    text = resources.files("enclave.ops").joinpath(f"data/schemas/kyverno-clusterpolicy-{version}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_policy(obj: Mapping[str, Any], version: str | None = None) -> None:
    """Check a rendered policy against the schema restated from that Kyverno version's CRD (default: the version
    the policy names in policies.kyverno.io/minversion)."""
    version = version or str(((obj.get("metadata") or {}).get("annotations") or {})
                             .get("policies.kyverno.io/minversion", "1.13"))
    errors = sorted(jsonschema.Draft7Validator(_schema(version)).iter_errors(obj),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError([Problem("/".join(str(p) for p in e.absolute_path) or "(root)", e.message,
                                  f"fix the admission renderer for Kyverno {version}") for e in errors])


def tagged(repository: str, digest: str) -> str:
    """The approved digest written with any tag, ``repository:*@digest``: Kubernetes keeps a container's image as
    written and Kyverno compares it as written, and ``name:tag@digest`` is a valid reference (distribution/
    reference regexp.go, ReferenceRegexp) that pulls by the digest, so the form `enclave images submit` takes
    must be admitted too. Kyverno's AnyNotIn matches each value as a wildcard pattern (see ``_listed``)."""
    return f"{repository}:*@{digest}"


def _wildcard(pattern: str, name: str) -> bool:
    """``*`` any run of characters, ``?`` one: the wildcards of github.com/IGLOU-EU/go-wildcard, which Kyverno's
    ext/wildcard.Match wraps (go.mod, v1.10.0-v1.16.0). enclave's values use ``*`` alone."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def _listed(image: str, values: Iterable[str]) -> bool:
    """AnyNotIn's "exists" test for a string key: each value against the key and the key against each value, both
    as wildcard patterns (pkg/engine/variables/operator/anyin.go, anyKeyExistsInArray, v1.13.0)."""
    return any(_wildcard(v, image) or _wildcard(image, v) for v in values)


def allows(policy: Mapping[str, Any], image: str, namespace: str = "default") -> bool:
    """What the policy decides for one container image in a namespace (match, exclude and the deny
    condition, evaluated as Kyverno does: a rule applies when the pod's namespace matches and is not
    excluded; AnyNotIn denies an image the list does not match, ``_listed``)."""
    for rule in policy["spec"]["rules"]:
        match = rule["match"]["any"][0]["resources"]
        excluded = rule.get("exclude", {}).get("any", [{}])[0].get("resources", {}).get("namespaces", [])
        if "namespaces" in match and namespace not in match["namespaces"] or namespace in excluded:
            continue
        cond = rule["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]
        if not _listed(image, cond["value"]):
            return False
    return True


def message_for(policy: Mapping[str, Any], namespace: str, image: str = "<image>") -> str:
    """The message the rule covering ``namespace`` gives a pod refused for ``image``: the rule's message and the
    deny condition's, joined and substituted as getDenyMessage does (see ``IMAGE``)."""
    for rule in policy["spec"]["rules"]:
        match = rule["match"]["any"][0]["resources"]
        if namespace in match.get("namespaces", [namespace]):
            cond = rule["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]
            said = str(cond.get("message", "")).replace(IMAGE, image)
            return "; ".join(m for m in (str(rule["validate"]["message"]), said) if m)
    return ""
