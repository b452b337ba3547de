"""Image vetting (seed §10): security staff vet every container image in the local registry.

Someone who deploys (service or cluster administrator, or security staff) submits an image digest;
a security actor other than the submitter approves or rejects it. Only approved digests are offered to
notebooks (``vetter``/``approved``) and allowed by the rendered admission policy. Every decision is
checked against the actor's role and journaled in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from enclave import journal
from enclave.access.permissions import Permission
from enclave.accounts.authorize import find_account, permissions_of, require
from enclave.accounts.models import Account
from enclave.clock import utcnow
from enclave.db.core import delegated_by
from enclave.errors import Conflict, InputError, InvalidTransition, NotFound, PermissionDenied, Problem
from enclave.journal.models import JournalEntry
from enclave.ops import storage
from enclave.ops.storage import VettedImage
from enclave.spec import reference
from enclave.spec.models import EnclaveSpec

SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")
"""The digests enclave vets: sha256, as the registry's manifests are addressed (the grammar takes other algorithms)."""
SUBMITTERS = (Permission.SERVICES_DEPLOY, Permission.CLUSTER_SYSTEM, Permission.IMAGES_VET)


class ImageStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ImageRef:
    repository: str
    registry: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> str | None:
        return f"{self.repository}@{self.digest}" if self.digest else None


def _ref(image: str) -> reference.Reference | None:
    """The reference, by the runtime's grammar (``enclave.spec.reference``), with a sha256 digest if any."""
    ref = reference.parse(image.strip())
    return ref if ref is not None and (ref.digest is None or SHA256.match(ref.digest)) else None


def parse_ref(image: str, *, where: str = "image") -> ImageRef:
    ref = _ref(image)
    if ref is None:
        raise InputError([Problem(where, f"{image!r} is not an image reference",
                                  "write registry/repository[:tag]@sha256:<64 hex> (a registry host contains "
                                  "a dot or a port, or is localhost)")])
    return ImageRef(ref.repository, ref.registry, ref.tag, ref.digest)


@dataclass(frozen=True)
class ApprovedImage:
    repository: str
    tag: str | None
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def _find(session: Session, ref: ImageRef) -> VettedImage | None:
    assert ref.digest is not None
    return storage.find(session, ref.repository, ref.digest)


def _journal_target_length() -> int:
    column = JournalEntry.__table__.c.target.type
    assert isinstance(column, sa.String) and column.length is not None, "journal_entries.target has a length"
    return column.length


JOURNAL_TARGET_LENGTH = _journal_target_length()
"""The longest journal target (the column's own length, read from the model: one copy of the limit). Every vetting
step is journaled with the pinned reference ``<repository>@<digest>`` as its target, so no longer one can be vetted."""


def _fits_journal(repository: str, digest: str) -> None:
    """Refuse a reference whose journal target would not fit its column: PostgreSQL refuses the value (VARCHAR) and
    SQLite would store it whole, so the same submission would succeed on one and fail on the other."""
    pinned = f"{repository}@{digest}"
    if len(pinned) > JOURNAL_TARGET_LENGTH:
        most = JOURNAL_TARGET_LENGTH - len(digest) - 1
        raise InputError([Problem("image", f"the repository {repository[:40]}… is {len(repository)} characters; "
                                  f"with its digest that is {len(pinned)}, over the {JOURNAL_TARGET_LENGTH} the "
                                  "journal keeps for a target",
                                  f"use a repository of at most {most} characters (registry host and path, "
                                  f"before @{digest.split(':', 1)[0]}:…), e.g. a shorter path in the registry")])


def submit(session: Session, spec: EnclaveSpec, actor: str, image: str, *, reason: str = "") -> VettedImage:
    """Ask security to vet one digest. The image must come from the local registry and carry its digest."""
    ref = parse_ref(image)
    if ref.digest is None:
        raise InputError([Problem("image", f"{image!r} has no digest; a tag can be moved after vetting",
                                  "append @sha256:<digest> (`skopeo inspect` or the registry shows it)")])
    _fits_journal(ref.repository, ref.digest)
    if spec.registry.vetting_required and ref.registry != spec.registry.host:
        raise InputError([Problem("image", f"{ref.registry} is not the local registry {spec.registry.host}",
                                  f"mirror the image into {spec.registry.host} first (seed §10)")])
    granted = permissions_of(session, actor)
    if not granted & set(SUBMITTERS):
        find_account(session, actor)
        raise PermissionDenied(f"{actor!r} may not submit images for vetting",
                               where=f"--as {actor}",
                               fix="submit as a service administrator, cluster administrator or security staff")
    row = _find(session, ref)
    before = row.state() if row else None
    if row is not None and row.status != ImageStatus.REJECTED:
        raise Conflict(f"{row.pinned} is already {row.status}", where="image",
                       fix="nothing to do" if row.status == ImageStatus.APPROVED else "wait for security's decision")
    now = utcnow()
    # A submission through a token issued on the actor's behalf is its issuer's act too (``_second_pair_of_eyes``).
    issuer = delegated_by(session)
    if row is None:
        row = VettedImage(repository=ref.repository, tag=ref.tag, digest=ref.digest, status=ImageStatus.SUBMITTED,
                          submitted_by=actor, submitted_at=now, submitted_delegated_by=issuer, reason=reason)
        storage.add(session, row)
    else:  # a rejected digest may be submitted again, e.g. after the finding was explained
        row.status, row.submitted_by, row.submitted_at = ImageStatus.SUBMITTED, actor, now
        row.submitted_delegated_by = issuer
        row.decided_by = row.decided_at = None
        row.tag, row.reason = ref.tag or row.tag, reason
    session.flush()
    journal.record(session, actor=actor, action="images.submit", target=row.pinned, reason=reason or "submitted",
                   before=before, after=row.state())
    return row


def _second_pair_of_eyes(session: Session, row: VettedImage, approver: Account) -> None:
    """The two-person rule (seed §10) compares people, not usernames: one person may have held several
    accounts (a science account, later a staff one), and roles belong to the person. A token someone else
    issued on the approver's behalf (``enclave.db.core.delegated_by``) is not the approver's own act, so it cannot
    be the second pair of eyes either: otherwise one sysadmin could issue tokens for two people and push an image
    through both steps alone. For the same reason a submission made through a token issued on the submitter's
    behalf was its issuer's act too, and the issuer may not approve it (audit of identity and trust, finding 2)."""
    issuer = delegated_by(session)
    if issuer is not None:
        raise PermissionDenied(f"this token was issued for {approver.username!r} by {issuer!r}; a token "
                               "issued on someone's behalf cannot approve an image", where="Authorization",
                               fix=f"{approver.username!r} approves with a token they issued themselves")
    # accounts are never deleted (usernames never reused)
    for name in filter(None, (row.submitted_by, row.submitted_delegated_by)):
        submitter = find_account(session, name)
        if submitter.person_id != approver.person_id:
            continue
        how = "" if name == row.submitted_by else f" through a token issued for {row.submitted_by!r}"
        same = "" if submitter.id == approver.id else \
            f" ({name!r} and {approver.username!r} are both {approver.person.email})"
        raise PermissionDenied(f"{approver.username!r} submitted {row.pinned}{how}{same} and may not approve it too",
                               where=f"--as {approver.username}",
                               fix="another person of security staff must approve it")


def _decide(session: Session, actor: str, image: str, status: ImageStatus, reason: str) -> VettedImage:
    approver = require(session, actor, Permission.IMAGES_VET)
    if not reason.strip():
        raise InputError([Problem("--reason", "a vetting decision needs a reason",
                                  "say what was checked (scan report, base image, provenance)")])
    ref = parse_ref(image)
    if ref.digest is None:
        raise InputError([Problem("image", "decisions are about digests, not tags", "give image@sha256:<digest>")])
    row = _find(session, ref)
    if row is None:
        raise NotFound(f"{ref.pinned} was never submitted", where="image", fix="`enclave images submit` it first")
    allowed = {ImageStatus.APPROVED: {ImageStatus.SUBMITTED},
               ImageStatus.REJECTED: {ImageStatus.SUBMITTED, ImageStatus.APPROVED}}[status]
    if row.status not in allowed:
        raise InvalidTransition(f"{row.pinned} is {row.status}; it cannot become {status}", where="image",
                                fix="a rejected image must be submitted again before it can be approved"
                                if row.status == ImageStatus.REJECTED else "it already is")
    if status == ImageStatus.APPROVED:
        _second_pair_of_eyes(session, row, approver)
    before = row.state()
    row.status, row.decided_by, row.decided_at, row.reason = status, actor, utcnow(), reason
    session.flush()
    journal.record(session, actor=actor, action=f"images.{'approve' if status == ImageStatus.APPROVED else 'reject'}",
                   target=row.pinned, reason=reason, before=before, after=row.state())
    return row


def approve(session: Session, actor: str, image: str, *, reason: str) -> VettedImage:
    """Approve a submitted digest: never through a token issued on the actor's behalf, never by a person who
    submitted it (``_second_pair_of_eyes``)."""
    return _decide(session, actor, image, ImageStatus.APPROVED, reason)


def reject(session: Session, actor: str, image: str, *, reason: str) -> VettedImage:
    """Reject a submitted digest, or withdraw an approval (the admission policy then refuses it)."""
    return _decide(session, actor, image, ImageStatus.REJECTED, reason)


def listing(session: Session, status: ImageStatus | None = None) -> list[VettedImage]:
    return storage.listing(session, status)


def approved(session: Session, registry: str | None = None) -> list[ApprovedImage]:
    """Approved digests, optionally of one registry: what notebooks may offer and admission may allow."""
    rows = listing(session, ImageStatus.APPROVED)
    out = [ApprovedImage(r.repository, r.tag, r.digest) for r in rows]
    if registry is not None:
        out = [a for a in out if a.repository.startswith(registry + "/")]
    return out


def approved_digests(session: Session, registry: str | None = None) -> list[str]:
    """``repository@sha256:…`` of every approved image — the list the notebook spawner offers."""
    return [a.pinned for a in approved(session, registry)]


def vetter(session: Session, registry: str | None = None) -> Callable[[str], bool]:
    """An ImageVetter for enclave.notebooks: True for an image whose digest is approved, or whose tag was
    approved with a digest (the spawner should then launch ``pin(image)``). Reads the table once. With
    ``registry``, only images from it count: the admission policy admits no other (``render_admission``)."""
    rows = approved(session, registry)
    digests = {(a.repository, a.digest) for a in rows}
    tags = {(a.repository, a.tag) for a in rows if a.tag}

    def vetted(image: str) -> bool:
        ref = _ref(image)
        if ref is None:
            return False
        if ref.digest:
            return (ref.repository, ref.digest) in digests
        return (ref.repository, ref.tag) in tags

    return vetted


def pinner(rows: list[ApprovedImage]) -> Callable[[str], str | None]:
    """Pure: the approved ``repository@digest`` for an image reference, or None when it is not vetted."""
    by_digest = {(a.repository, a.digest): a.pinned for a in rows}
    by_tag = {(a.repository, a.tag): a.pinned for a in rows if a.tag}  # later approvals win

    def pinned(image: str) -> str | None:
        ref = _ref(image)
        if ref is None:
            return None
        if ref.digest:
            return by_digest.get((ref.repository, ref.digest))
        return by_tag.get((ref.repository, ref.tag)) if ref.tag else None

    return pinned


def pin(session: Session, image: str, registry: str | None = None) -> str:
    """The approved ``repository@digest`` an image reference stands for (newest approval of a tag); with
    ``registry``, only one from it (the admission policy admits no other)."""
    ref = parse_ref(image)
    if registry is not None and not ref.repository.startswith(registry + "/"):
        raise NotFound(f"{image} is not from {registry}", where="image",
                       fix=f"push it to {registry} and have security approve its digest there")
    if ref.digest:
        row = _find(session, ref)
        if row is None or row.status != ImageStatus.APPROVED:
            raise NotFound(f"{ref.pinned} is not approved", where="image", fix="ask security to vet it")
        return row.pinned
    hit = [a for a in approved(session) if a.repository == ref.repository and a.tag == ref.tag]
    if not hit:
        raise NotFound(f"no approved digest for {image}", where="image",
                       fix="submit the digest this tag points to and have security approve it")
    return hit[-1].pinned
