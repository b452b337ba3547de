"""Malformed and random requests generated from the OpenAPI schema (schemathesis): never a 500, and every
error in enclave's one error shape.

Bounded: a few examples per operation, schema-conforming and schema-violating, sent as the bootstrap admin
(the caller allowed the most, so bodies reach the service functions instead of stopping at a role check).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.api.conftest import ADMIN, World

SKIP = {("POST", "/api/v1/twin/runs")}  # starts simulations in the background; covered in test_twin_runs


def test_no_server_errors_on_generated_requests(world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.client.app)
    headers = {"Authorization": f"Bearer {world.tokens[ADMIN]}"}
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=4, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(headers=headers)
                assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                                    response.text[:500])
                if response.status_code >= 400 and response.status_code != 405:
                    body = response.json()
                    assert body["error"] and body["problems"], body

            try:
                check()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (no parameters, no body): nothing to try.
                assert mode == GenerationMode.NEGATIVE, operation.path
                continue
            tried += 1
    assert tried > 40
