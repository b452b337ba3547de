"""What `enclave serve --demo` adds to a fresh database so every dashboard page and API endpoint has something
to show: staff holding each role a procedure needs, a few science users, and the spec's notebook images vetted.

Every step goes through the same services and rules as a person's would (permission checks, the two-person
image rule of seed §10, the journal), so the demo journal reads like a real first day. Running it again adds
nothing: accounts that exist are left alone and images already vetted are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.errors import NotFound
from enclave.ops.images import ImageStatus
from enclave.services.factory import Factory
from enclave.spec.models import Role

REASON = "enclave serve --demo"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    name: str
    kind: AccountKind
    roles: tuple[Role, ...] = ()
    why: str = ""


STAFF = (
    # A manual BCS procedure moves both HTCondor and Kubernetes capacity: it needs both roles (broker.execute).
    DemoAccount("condor-admin", "HTCondor Administrator", AccountKind.STAFF,
                (Role.HTCONDOR_ADMIN, Role.K8S_SERVICE_ADMIN), "runs the manual BCS procedures"),
    DemoAccount("svc-admin", "Service Administrator", AccountKind.STAFF, (Role.K8S_SERVICE_ADMIN,),
                "submits images for vetting"),
    DemoAccount("security", "Security Officer", AccountKind.STAFF, (Role.SECURITY,),
                "vets images (not the submitter: two-person rule)"),
)
SCIENCE = (
    DemoAccount("alice", "Alice Astronomer", AccountKind.SCIENCE, why="science user"),
    DemoAccount("bob", "Bob Observer", AccountKind.SCIENCE, why="science user"),
)


def demo_digest(image: str) -> str:
    """A stand-in digest for a demo image: the twin pulls nothing, so any well-formed sha256 will do; derived
    from the name so reruns find the same one."""
    return f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def seed(factory: Factory, admin: str, *, ttl_seconds: int = 7 * 86400) -> dict[str, str]:
    """Onboard the demo accounts (by ``admin``), vet the spec's notebook images, and return a token per demo
    account that was created now (accounts that existed keep their tokens)."""
    created: list[str] = []
    for who in (*STAFF, *SCIENCE):
        try:
            factory.accounts.show(admin, who.username)
        except NotFound:
            allocation = Allocation(proposal_id="DEMO-1") if who.kind == AccountKind.SCIENCE else None
            factory.accounts.onboard(admin, who.username, name=who.name, email=f"{who.username}@enclave.local",
                                     kind=who.kind, reason=f"{REASON}: {who.why}", roles=list(who.roles) or None,
                                     allocation=allocation)
            created.append(who.username)
    done = {i.digest for i in factory.images.listing() if i.status == ImageStatus.APPROVED}
    for image in factory.spec.notebooks.images:
        pinned = demo_digest(image)
        if pinned.rsplit("@", 1)[1] in done:
            continue
        factory.images.submit("svc-admin", pinned, reason=REASON)
        factory.images.approve("security", pinned, reason=f"{REASON}: demo image, nothing to scan")
    return {u: factory.tokens.issue(admin, u, ["*"], ttl_seconds, reason=REASON).token for u in created}
