"""Image references as distribution/reference v0.6.0 reads them (regexp.go, normalize.go, reference.go): the
expected results come from its grammar and its domain rule, which containerd's pulls follow."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from enclave.errors import InputError
from enclave.ops.images import parse_ref
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.models import EnclaveSpec
from enclave.spec.reference import DEFAULT_DOMAIN, NAME_MAX, is_registry_host, parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("image", "registry", "repository", "tag"), [
    ("registry.lsst.local/lsstsqre/sciplat-lab:w_2018_25", "registry.lsst.local", "registry.lsst.local/lsstsqre/"
     "sciplat-lab", "w_2018_25"),
    ("registry.lsst.local:5000/a/b", "registry.lsst.local:5000", "registry.lsst.local:5000/a/b", None),
    ("localhost/lab", "localhost", "localhost/lab", None),          # localhost is always a domain
    ("[::1]:5000/lab", "[::1]:5000", "[::1]:5000/lab", None),          # ipv6address
    ("Harbor/lab", "Harbor", "Harbor/lab", None),                     # upper case: not a path, so a domain
    ("harbor/lab:1", DEFAULT_DOMAIN, "harbor/lab", "1"),               # no dot, port or upper case: Docker Hub
    ("registry.lsst.local/a__b/c--d", "registry.lsst.local", "registry.lsst.local/a__b/c--d", None),  # separators
])
def test_what_the_grammar_reads(image: str, registry: str, repository: str, tag: str | None) -> None:
    ref = parse(image)
    assert ref is not None and (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)


@pytest.mark.parametrize("image", [
    "registry..lsst/lab",        # an empty domain component
    "registry-.lsst/lab",        # a component ends in a hyphen (domainNameComponent)
    "registry.lsst.local/Lab",   # upper case in a path component (alphanumeric is [a-z0-9])
    "registry.lsst.local/a___b",  # three underscores (separator: one dot, one or two underscores, dashes)
    "registry.lsst.local/lab:-x",  # a tag starts with a word character
    "registry.lsst.local/lab@sha256:abc",  # a digest's hex is at least 32 characters
    f"registry.lsst.local/{'a' * NAME_MAX}x",  # the path is at most 255 characters (RepositoryNameTotalLengthMax)
])
def test_what_the_grammar_refuses(image: str) -> None:
    assert parse(image) is None


def test_the_path_limit_leaves_out_the_domain() -> None:
    assert parse(f"registry.lsst.local/{'a' * NAME_MAX}") is not None


def test_enclave_vets_sha256_digests_of_that_grammar() -> None:
    ref = parse_ref(f"registry.lsst.local/lsstsqre/sciplat-lab:w_2018_25@{D}")
    assert (ref.registry, ref.tag, ref.digest) == ("registry.lsst.local", "w_2018_25", D)
    assert parse_ref(f"harbor/lab@{D}").registry == DEFAULT_DOMAIN
    with pytest.raises(InputError, match="not an image reference"):
        parse_ref("registry.lsst.local/lab@sha512:" + "a" * 128)  # a valid reference, not a digest enclave vets


@pytest.mark.parametrize(("host", "ok"), [("registry.lsst.local", True), ("registry:5000", True),
                                          ("localhost", True), ("harbor", False), ("registry..lsst", False)])
def test_the_spec_registry_is_one_references_can_name(host: str, ok: bool) -> None:
    assert is_registry_host(host) is ok
    raw = yaml.safe_load(DEFAULT_SPEC.read_text())
    raw["registry"]["host"] = host
    raw["registry"]["system_images"] = {}
    if ok:
        EnclaveSpec.model_validate(raw)
    else:
        with pytest.raises(ValidationError, match="registry.host|is not read as a registry|pattern"):
            EnclaveSpec.model_validate(raw)
