"""Developers read their services' pod logs (AA2/AA3): ``enclave logs`` and ``GET /namespaces/{ns}/pods/{pod}/log``.

A read is allowed to an account with logs.read in a namespace its RoleBinding reaches
(``enclave.access.render.may_read_logs``: the namespace's developers, Kubernetes service administrators) and only
in the spec's application namespaces. Every read of the live cluster is journaled (``logs.read``: who read which
pod's log, with which options, when) — refused ones too, with why — before a line is read. Reads of the twin are
checked the same way but journal nothing: nothing simulated enters the enclave's journal (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from enclave.access.render import app_namespaces, may_read_logs
from enclave.accounts.authorize import find_account, subject_of
from enclave.db import Database
from enclave.domain.logs import LogRequest, LogSource
from enclave.errors import Conflict, InputError, NotFound, PermissionDenied
from enclave.journal import record
from enclave.spec.models import EnclaveSpec


@dataclass
class LogService:
    db: Database
    spec: EnclaveSpec
    source: LogSource | None
    """The live cluster, the twin, or None where neither is configured."""
    journaled: bool = True
    """False on the twin."""

    def _check(self, actor: str, request: LogRequest) -> None:
        """PermissionDenied or NotFound unless ``actor`` may read logs in ``request.namespace``."""
        namespaces = app_namespaces(self.spec)
        with self.db.session() as session:
            subject = subject_of(find_account(session, actor))
        if request.namespace not in namespaces:
            raise NotFound(f"{request.namespace} is not an application namespace of the spec", where="namespace",
                           fix=f"logs are read in {', '.join(namespaces)}")
        if not may_read_logs(subject, request.namespace, self.spec):
            raise PermissionDenied(
                f"{actor!r} may not read logs in {request.namespace}: that needs logs.read (developer, "
                f"k8s-service-admin) and, for a developer, membership of {request.namespace}", where=f"--as {actor}",
                fix=f"ask an account manager: `enclave accounts join {actor} {request.namespace}`")

    def _record(self, actor: str, request: LogRequest, refused: str | None) -> None:
        if not self.journaled:
            return
        with self.db.session() as session:
            # The journal's actor and target columns hold 64 and 255 characters (journal.models): an unknown --as
            # is cut to fit, a pod name near DNS's 253 too; ``after`` keeps the names whole.
            target = f"pod/{request.namespace}/{request.pod}"
            target = target if len(target) <= 255 else target[:254] + "…"
            record(session, actor=actor[:64], action="logs.read", target=target,
                   reason=f"refused: {refused}" if refused else "developer log read (AA2/AA3)", before=None,
                   after={**request.recorded(), "allowed": refused is None})

    def read(self, actor: str, request: LogRequest, *, token_refusal: PermissionDenied | None = None) -> Iterator[str]:
        """The log's lines, as the cluster (or twin) gives them; errors before the first line. ``token_refusal``:
        the API found the caller's token without the logs.read scope — refused and journaled like any refusal."""
        problems = request.problems()
        if problems:
            raise InputError(problems)
        try:
            if token_refusal is not None:
                raise token_refusal
            self._check(actor, request)
        except (PermissionDenied, NotFound) as exc:
            self._record(actor, request, exc.problem.what)
            raise
        if self.source is None:
            raise Conflict("no cluster is configured here to read logs from", where="logs",
                           fix="pass --live with Kubernetes credentials, or --twin SCENARIO")
        self._record(actor, request, None)
        return self.source.pod_log(request)
