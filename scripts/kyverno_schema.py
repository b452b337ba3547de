"""Restate the part of Kyverno's ClusterPolicy CRD that enclave renders, one JSON schema per Kyverno minor.

    git -C kyverno show v1.13.0:config/crds/kyverno/kyverno.io_clusterpolicies.yaml > crd-1.13.yaml
    (1.10, 1.11: config/crds/kyverno.io_clusterpolicies.yaml)
    python scripts/kyverno_schema.py 1.13 crd-1.13.yaml v1.13.0 \
        > src/enclave/ops/data/schemas/kyverno-clusterpolicy-1.13.json

Every kept field is copied from the CRD's openAPIV3Schema (types, enums); objects keep only the fields in
KEEP and refuse others, so a field a Kyverno version lacks (``admission`` before 1.11, rule-level
``validate.failureAction`` before 1.13) fails validation for that version. The CRD leaves deny conditions
open (x-kubernetes-preserve-unknown-fields); their shape comes from Kyverno's Go type ``Condition``
(api/kyverno/v1/common_types.go: key, operator, value, message; ConditionOperator values).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

RESOURCES = {"kinds": None, "namespaces": None, "names": None, "operations": None}
FILTERS = {"any": {"resources": RESOURCES}, "all": {"resources": RESOURCES}}
KEEP: dict[str, Any] = {
    "background": None, "admission": None, "validationFailureAction": None, "failurePolicy": None,
    "webhookTimeoutSeconds": None, "webhookConfiguration": {"failurePolicy": None, "timeoutSeconds": None},
    "rules": {
        "name": None, "match": FILTERS, "exclude": FILTERS,
        "validate": {"message": None, "failureAction": None, "deny": {"conditions": "conditions"},
                     "foreach": {"list": None, "deny": {"conditions": "conditions"}}},
    },
}
OPERATORS = ["Equals", "NotEquals", "In", "AnyIn", "AllIn", "NotIn", "AnyNotIn", "AllNotIn",
             "GreaterThanOrEquals", "GreaterThan", "LessThanOrEquals", "LessThan", "DurationGreaterThanOrEquals",
             "DurationGreaterThan", "DurationLessThanOrEquals", "DurationLessThan"]
CONDITION = {"type": "object", "required": ["key", "operator"], "additionalProperties": False,
             "properties": {"key": {}, "operator": {"type": "string", "enum": OPERATORS}, "value": {},
                            "message": {"type": "string"}}}
CONDITIONS = {"type": "object", "additionalProperties": False,
              "properties": {"any": {"type": "array", "items": {"$ref": "#/definitions/condition"}},
                             "all": {"type": "array", "items": {"$ref": "#/definitions/condition"}}}}
METADATA = {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                    "maxLength": 63},
                           "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                           "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}


def prune(schema: dict[str, Any], keep: Any) -> dict[str, Any]:
    if keep == "conditions":
        return {"$ref": "#/definitions/anyAllConditions"}
    if keep is None:
        return {k: v for k, v in schema.items() if k in ("type", "enum", "format", "items", "maxLength")}
    if schema.get("type") == "array":
        return {"type": "array", "items": prune(schema["items"], keep)}
    props = schema.get("properties", {})
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {k: prune(props[k], sub) for k, sub in keep.items() if k in props}}
    required = [r for r in schema.get("required", []) if r in out["properties"]]
    if required:
        out["required"] = required
    return out


def subset(crd: dict[str, Any], minor: str, tag: str) -> dict[str, Any]:
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    pruned = prune(spec, KEEP)
    pruned["required"] = ["rules"]
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"kyverno.io/v1 ClusterPolicy as Kyverno {tag} defines it (its CRD kyverno.io_clusterpolicies."
                    f"yaml), restricted to the fields enclave renders by scripts/kyverno_schema.py; fields not "
                    f"listed are refused.",
        "title": f"Kyverno {minor} ClusterPolicy (enclave subset)",
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
        "properties": {"apiVersion": {"const": "kyverno.io/v1"}, "kind": {"const": "ClusterPolicy"},
                       "metadata": METADATA, "spec": pruned},
        "definitions": {"condition": CONDITION, "anyAllConditions": CONDITIONS},
    }


if __name__ == "__main__":
    minor, path, tag = sys.argv[1:4]
    with open(path) as f:
        print(json.dumps(subset(yaml.safe_load(f), minor, tag), indent=1))
