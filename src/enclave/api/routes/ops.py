"""Operations: the Kubernetes upgrade plan, image vetting and the security benchmark (seed §9, §10, §14).

Image decisions call ``enclave.ops.images`` exactly as ``enclave images`` does."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field, StringConstraints

from enclave.access.permissions import Permission
from enclave.api.auth import Principal, api_principal
from enclave.api.plain import plain
from enclave.api.routes.bodies import Body, Reason
from enclave.api.service import Service, get_service
from enclave.errors import PermissionDenied
from enclave.ops import images
from enclave.ops.images import ImageStatus
from enclave.ops.upgrade import components_from_spec, plan_upgrade
from enclave.ops.versions import Version

router = APIRouter(prefix="/ops", tags=["operations"])


@router.get("/upgrade-plan", summary="Kubernetes upgrade steps from the spec's version, one minor at a time")
def upgrade_plan(target: str | None = Query(None, max_length=32, description="e.g. 1.31 or 1.31.4"),
                 principal: Principal = Depends(api_principal),  # noqa: B008
                 service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    to = Version.parse(target, where="target") if target else None
    result: dict[str, Any] = plain(plan_upgrade(components_from_spec(service.spec), to))
    return result


Image = Annotated[str, StringConstraints(min_length=3, max_length=512)]


class ImageBody(Body):
    image: Image = Field(description="registry/repository[:tag]@sha256:<digest>")
    reason: Reason


def _image_view(row: Any) -> dict[str, Any]:
    state: dict[str, Any] = plain(row.state())
    return {**state, "submitted_at": row.submitted_at.isoformat(),
            "decided_at": row.decided_at.isoformat() if row.decided_at else None}


@router.get("/images", summary="Container images and their vetting state")
def list_images(status: ImageStatus | None = None, principal: Principal = Depends(api_principal),  # noqa: B008
                service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    with service.db.session() as session:
        return [_image_view(r) for r in images.listing(session, status)]


@router.post("/images", status_code=201, summary="Submit an image digest for vetting (service or cluster "
             "administrators, security)")
def submit_image(body: ImageBody, principal: Principal = Depends(api_principal),  # noqa: B008
                 service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    if "*" not in principal.scopes and not principal.scopes & {p.value for p in images.SUBMITTERS}:
        raise PermissionDenied("this token's scopes allow no image submission", where="Authorization",
                               fix="use a token with scope services.deploy, cluster.system, images.vet or *")
    with service.db.session() as session:
        return _image_view(images.submit(session, service.spec, principal.username, body.image,
                                         reason=body.reason))


@router.post("/images/approve", summary="Approve a submitted digest (security; not the submitter)")
def approve_image(body: ImageBody, principal: Principal = Depends(api_principal),  # noqa: B008
                  service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    principal.need_scope(Permission.IMAGES_VET)
    with service.db.session() as session:
        return _image_view(images.approve(session, principal.username, body.image, reason=body.reason))


@router.post("/images/reject", summary="Reject a digest, or withdraw its approval (security)")
def reject_image(body: ImageBody, principal: Principal = Depends(api_principal),  # noqa: B008
                 service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    principal.need_scope(Permission.IMAGES_VET)
    with service.db.session() as session:
        return _image_view(images.reject(session, principal.username, body.image, reason=body.reason))


_REPORT_TTL = 300.0
_report_lock = threading.Lock()
_reports: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}


@router.get("/security-report", summary="The security benchmark (kube-bench style checks) on enclave's own "
            "rendered objects")
def security_report(principal: Principal = Depends(api_principal),  # noqa: B008
                    service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    """What ``enclave security check --rendered`` prints, as JSON. Rendering everything takes seconds, and the
    objects depend only on the spec and on which images are approved, so a report is kept for five minutes
    per (spec, approvals) and computed by one request at a time."""
    from enclave.cli import render
    from enclave.ops import security
    from enclave.ops.cli import security_params
    from enclave.ops.render_all import rendered_objects
    from enclave.spec.defaults import default_spec_path

    spec_path = service.spec_path or default_spec_path()
    with service.db.session() as session:
        approvals = tuple(sorted(images.approved_digests(session)))
    key = (str(spec_path.resolve()), approvals)
    with _report_lock:
        cached = _reports.get(key)
        if cached is not None and time.monotonic() - cached[0] < _REPORT_TTL:
            return cached[1]
        # The renderers open the database named by $ENCLAVE_DB (they are CLI commands); point it at this
        # service's database while they run, so the report reflects this enclave's approvals.
        previous = os.environ.get("ENCLAVE_DB")
        os.environ["ENCLAVE_DB"] = service.db.url
        try:
            skipped: list[str] = []
            version, defs = security.shipped_checks()
            with rendered_objects(render, spec_path, skipped) as (objects, results):
                report = security.run(defs, objects=objects, params=security_params(service.spec),
                                      data_version=version)
                notes = [f"render {r.name} did not run: {r.detail}" for r in results if not r.ok] + skipped
        finally:
            if previous is None:
                os.environ.pop("ENCLAVE_DB", None)
            else:
                os.environ["ENCLAVE_DB"] = previous
        result: dict[str, Any] = {**json.loads(security.to_json(report)), "notes": notes}
        _reports[key] = (time.monotonic(), result)
        return result
