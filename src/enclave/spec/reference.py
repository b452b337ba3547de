"""Container image references as the runtime reads them: the grammar of distribution/reference v0.6.0
(regexp.go, normalize.go, reference.go), which containerd and the kubelet's pull follow. One copy, for the spec's
registry host and for the images enclave vets (``enclave.ops.images``). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# regexp.go: the pieces of ReferenceRegexp, restated.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>(?:{DOMAIN}/)?{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$",
                        re.ASCII)  # Go's \w is ASCII
_DOMAIN = re.compile(rf"^{DOMAIN}$", re.ASCII)

NAME_MAX = 255
"""reference.go RepositoryNameTotalLengthMax: the most characters of a repository's path (without its domain)."""
DEFAULT_DOMAIN = "docker.io"


def is_domain(first: str) -> bool:
    """Whether a reference's first component names a registry (normalize.go splitDockerDomain): "localhost", or
    one containing "." or ":", or one with upper case. Any other first component is a path on Docker Hub, so
    ``harbor/lab`` is pulled from docker.io/harbor/lab, not from a registry called harbor."""
    return first == "localhost" or any(c in first for c in ".:") or first.lower() != first


def is_registry_host(host: str) -> bool:
    """A registry host that references can name: the domain grammar (DomainRegexp) and read as a domain."""
    return _DOMAIN.match(host) is not None and is_domain(host)


@dataclass(frozen=True)
class Reference:
    registry: str
    """The domain the runtime pulls from (``DEFAULT_DOMAIN`` when the reference names none)."""
    repository: str
    """The name as written (its domain included when it names one)."""
    tag: str | None
    digest: str | None


def parse(image: str) -> Reference | None:
    """The reference ``image`` is, or None when the grammar refuses it (ReferenceRegexp, and the path at most
    ``NAME_MAX`` characters)."""
    m = _REFERENCE.match(image)
    if m is None:
        return None
    name = m.group("name")
    first, _, rest = name.partition("/")
    registry, path = (first, rest) if rest and is_domain(first) else (DEFAULT_DOMAIN, name)
    if len(path) > NAME_MAX:
        return None
    return Reference(registry, name, m.group("tag"), m.group("digest"))
