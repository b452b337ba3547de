"""Operations: the Kubernetes upgrade plan, image vetting and the security benchmark (seed §9, §10, §14).
Each route is one call of the service the CLI calls (``enclave upgrade|images|security``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field, StringConstraints

from enclave.access.permissions import Permission
from enclave.api.deps import Caller, Images, Security, Upgrades
from enclave.api.routes.bodies import Body, Reason
from enclave.ops import security
from enclave.ops.images import SUBMITTERS, ImageStatus
from enclave.ops.report import plan_to_dict
from enclave.ops.versions import Version
from enclave.services.images import ImageView

router = APIRouter(prefix="/ops", tags=["operations"])


@router.get("/upgrade-plan", summary="Kubernetes upgrade steps from the spec's version, one minor at a time")
def upgrade_plan(caller: Caller, upgrades: Upgrades,
                 target: str | None = Query(None, max_length=32, description="e.g. 1.31 or 1.31.4")
                 ) -> dict[str, Any]:
    to = Version.parse(target, where="target") if target else None
    plan, findings = upgrades.plan(to=to)
    # The same document `enclave upgrade plan -o json` prints: versions as "1.10.13", dates as ISO 8601.
    return plan_to_dict(plan, findings)


Image = Annotated[str, StringConstraints(min_length=3, max_length=512)]


class ImageBody(Body):
    image: Image = Field(description="registry/repository[:tag]@sha256:<digest>")
    reason: Reason


@router.get("/images", summary="Container images and their vetting state")
def list_images(caller: Caller, images: Images, status: ImageStatus | None = None) -> list[ImageView]:
    return images.listing(status)


@router.post("/images", status_code=201, summary="Submit an image digest for vetting (service or cluster "
             "administrators, security)")
def submit_image(body: ImageBody, caller: Caller, images: Images) -> ImageView:
    caller.need_scope(*SUBMITTERS)
    return images.submit(caller.username, body.image, reason=body.reason)


@router.post("/images/approve", summary="Approve a submitted digest (security; not the submitter)")
def approve_image(body: ImageBody, caller: Caller, images: Images) -> ImageView:
    caller.need_scope(Permission.IMAGES_VET)
    return images.approve(caller.username, body.image, reason=body.reason)


@router.post("/images/reject", summary="Reject a digest, or withdraw its approval (security)")
def reject_image(body: ImageBody, caller: Caller, images: Images) -> ImageView:
    caller.need_scope(Permission.IMAGES_VET)
    return images.reject(caller.username, body.image, reason=body.reason)


@router.get("/security-report", summary="The security benchmark (kube-bench style checks) on enclave's own "
            "rendered objects")
def security_report(caller: Caller, checks: Security) -> dict[str, Any]:
    """What ``enclave security check --rendered`` prints, as JSON (kept five minutes per set of approvals)."""
    report, notes = checks.report()
    result: dict[str, Any] = {**json.loads(security.to_json(report)), "notes": notes}
    return result
