"""The enclave spec: one declarative YAML file from which everything else is derived."""

from enclave.spec.load import dump, load, parse
from enclave.spec.models import (
    ROLE_DESCRIPTIONS,
    EnclaveSpec,
    NodeGroup,
    NodeRole,
    NotebookSize,
    Pool,
    Role,
)

__all__ = [
    "ROLE_DESCRIPTIONS",
    "EnclaveSpec",
    "NodeGroup",
    "NodeRole",
    "NotebookSize",
    "Pool",
    "Role",
    "dump",
    "load",
    "parse",
]
