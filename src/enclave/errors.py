"""Typed errors for enclave.

Every error carries a message a person can act on: what is wrong, where, and how to fix it.
The mapping from error type to CLI exit code and HTTP status lives here and nowhere else, so the
CLI and the API always agree on how a failure is reported.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, what is wrong, and how to fix it."""

    where: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} — fix: {self.fix}" if self.fix else text


class EnclaveError(Exception):
    """Base of every error enclave reports to a person."""

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.problem = Problem(where=where, what=what, fix=fix)
        super().__init__(str(self.problem))

    @property
    def problems(self) -> list[Problem]:
        return [self.problem]


class InputError(EnclaveError):
    """A file or argument is malformed or fails validation; may carry several problems at once."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("InputError needs at least one problem")
        self._problems = list(problems)
        first = problems[0]
        super().__init__(first.what, where=first.where, fix=first.fix)
        self.args = ("\n".join(str(p) for p in problems),)

    @property
    def problems(self) -> list[Problem]:
        return list(self._problems)


class SpecError(InputError):
    """The enclave spec (YAML) is malformed or inconsistent."""


class NotFound(EnclaveError):
    """A named thing (account, node, pool, image, file) does not exist."""


class PermissionDenied(EnclaveError):
    """The acting account's roles do not allow the action."""


class Unauthenticated(EnclaveError):
    """No valid credential was presented (missing, malformed, expired or revoked token)."""


class InvalidTransition(EnclaveError):
    """A lifecycle or state change is not allowed from the current state."""


class Conflict(EnclaveError):
    """The action clashes with existing state (duplicate name, concurrent change)."""


class IntegrityError(EnclaveError):
    """Stored data failed a check (tampered journal, damaged backup archive)."""


class ExternalError(EnclaveError):
    """A system enclave talks to (Kubernetes, HTCondor, etcd, database) failed or is unreachable."""


# One table: error type → (CLI exit code, HTTP status). Subclasses inherit their parent's row.
_CODES: dict[type[EnclaveError], tuple[int, int]] = {
    InputError: (1, 422),
    SpecError: (1, 422),
    NotFound: (3, 404),
    PermissionDenied: (4, 403),
    Unauthenticated: (4, 401),
    InvalidTransition: (5, 409),
    Conflict: (5, 409),
    IntegrityError: (6, 422),
    ExternalError: (7, 502),
    EnclaveError: (2, 400),
}


def _row(error: EnclaveError) -> tuple[int, int]:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return _CODES[EnclaveError]


def exit_code(error: EnclaveError) -> int:
    """The CLI exit code for an error."""
    return _row(error)[0]


def http_status(error: EnclaveError) -> int:
    """The HTTP status for an error."""
    return _row(error)[1]
