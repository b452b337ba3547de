"""The fuzz layer of issue 20: hypothesis-generated specs, cohort CSVs, WebDAV requests and backup manifests.
Each must end in a clean refusal (an EnclaveError, a 4xx) or a valid result — never another exception, never
a 500 — and a refusal changes nothing.

Bounded in `make test` (``ENCLAVE_FUZZ_EXAMPLES``, default 25 per test); the longer run documented in
docs/hardening.md is ``ENCLAVE_FUZZ_EXAMPLES=2000 .venv/bin/pytest -p no:cacheprovider tests/fuzz``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.accounts.cohort import parse_cohort
from enclave.batch.render import render_all
from enclave.errors import EnclaveError, InputError, IntegrityError
from enclave.notebooks import workspace
from enclave.ops import backup
from enclave.spec import parse
from enclave.spec.defaults import EXAMPLES
from tests.notebooks.conftest import Dav, dav, jhome, raw  # noqa: F401  (dav: the WebDAV server fixture, on jhome)
from tests.ops.test_backup import _rewrite, key, made  # noqa: F401  (module fixtures: one real etcd backup)

EXAMPLES_PER_TEST = int(os.environ.get("ENCLAVE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES_PER_TEST, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
MINIMAL_TEXT = (EXAMPLES / "minimal.yaml").read_text()
MINIMAL: dict[str, Any] = yaml.safe_load(MINIMAL_TEXT)

# Values a hostile or careless author might put anywhere: huge and non-finite numbers, markup, NUL, nesting.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([".inf", "nan", "1e999", "[/bold]", "\x00"]),
    st.text(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                            inner, max_size=3),
                      max_leaves=8)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


SPEC_PATHS = _paths(MINIMAL)[1:]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


@FUZZ
@given(path=st.sampled_from(SPEC_PATHS), value=values)
def test_mutated_specs_are_valid_or_refused(path: tuple[Any, ...], value: Any) -> None:
    text = yaml.safe_dump(_set(MINIMAL, path, value), allow_unicode=True)
    _parse_and_render(text)


@FUZZ
@given(at=st.integers(min_value=0, max_value=len(MINIMAL_TEXT)),
       junk=st.one_of(st.text(max_size=40), st.sampled_from(["&a [*a, *a]", "*x", "[[[[[[", "a: 1\na: 2",
                                                                ": .inf", "!!python/object:os.system x"])))
def test_spliced_spec_text_is_valid_or_refused(at: int, junk: str) -> None:
    _parse_and_render(MINIMAL_TEXT[:at] + junk + MINIMAL_TEXT[at:])


def _parse_and_render(text: str) -> None:
    try:
        spec = parse(text, "fuzz.yaml")
    except InputError:
        return
    with contextlib.suppress(EnclaveError):
        render_all(spec)  # whatever validation accepts renders: a bad value is caught there, not later


CSV_HEADER = "username,name,email,kind,roles,namespaces,proposal,quota_gib,expires,uid\n"
fields = st.one_of(st.text(max_size=12), st.sampled_from(["inf", "nan", "1e999", "-1", "99999999999999999999",
                                                          "science", "staff", '"', "\x00", "a;b", "2099-01-31"]))


@FUZZ
@given(rows=st.lists(st.lists(fields, min_size=0, max_size=12), max_size=4), raw_text=st.text(max_size=80))
def test_cohort_csvs_are_parsed_or_refused(rows: list[list[str]], raw_text: str) -> None:
    for text in (CSV_HEADER + "\n".join(",".join(r) for r in rows), raw_text, CSV_HEADER + raw_text):
        try:
            parsed = parse_cohort(text, "fuzz.csv")
        except InputError:
            continue
        for new in parsed:  # what is accepted is well-formed enough for the lifecycle's own checks
            assert isinstance(new.username, str) and (new.uid is None or isinstance(new.uid, int))


METHODS = ["GET", "HEAD", "PUT", "DELETE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
           "OPTIONS", "POST"]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)


@pytest.fixture()
def fuzz_dav(dav: Dav) -> Dav:  # noqa: F811
    alice = dav.add("alice", 1001)
    bob = dav.add("bob", 1002)
    Path(bob.workspace_path, "secret.txt").write_text("bob's")
    Path(alice.home_path, "notes.txt").write_text("home")
    return dav


def _outside(server: Dav) -> dict[str, bytes]:
    """Every file outside alice's workspace: what no request of alice's may change. Not the servers' quota ledger
    beside the homes (workspace.LEDGER_DIR): her uploads and copies enter and leave it by design."""
    ws = Path(server.accounts["alice"].workspace_path)
    ledger = server.jhome / workspace.LEDGER_DIR
    return {str(p): p.read_bytes() for p in server.jhome.rglob("*")
            if p.is_file() and ws not in p.parents and ledger not in p.parents}


@FUZZ
@given(method=st.sampled_from(METHODS), segments=st.lists(st.binary(max_size=6) | st.sampled_from(
    [b"..", b".", b"%2e%2e", b"bob", b"\xff", b"\x00"]), max_size=4),
       headers=st.dictionaries(st.sampled_from(["Destination", "Depth", "If", "Overwrite", "Content-Type",
                                                "Lock-Token", "Timeout", "X-Other"]), header_text, max_size=3),
       body=st.binary(max_size=64), authenticated=st.booleans())
def test_webdav_requests_are_answered_below_500(fuzz_dav: Dav, method: str, segments: list[bytes],
                                                headers: dict[str, str], body: bytes, authenticated: bool) -> None:
    before = _outside(fuzz_dav)
    path = "/alice/" + "/".join(quote(s, safe="") for s in segments)
    status, text = raw(fuzz_dav.url, method, path, "alice", "tok-alice" if authenticated else "nope",
                       body=body if method in ("PUT", "PROPFIND", "PROPPATCH", "LOCK") else None, headers=headers)
    assert status < 500, (method, path, headers, status, text[:300])
    assert _outside(fuzz_dav) == before


Made = tuple[Path, dict[bytes, bytes], Path]
manifest_values = st.one_of(values, st.integers(min_value=-(2**64), max_value=2**64),
                            st.sampled_from(["../x", "/etc/passwd", "MANIFEST.sig", "a" * 64, 0o6777, 0o777]))


@FUZZ
@given(entry=st.integers(min_value=-1, max_value=20),
       field=st.sampled_from(["path", "sha256", "size", "mode", "etcd", "created", "cluster", "files", "format"]),
       value=manifest_values)
def test_signed_but_hostile_manifests_are_refused(key: Path, made: Made, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
                                                  entry: int, field: str, value: Any) -> None:
    archive, _, _ = made
    with tarfile.open(archive, "r:gz") as t:
        f = t.extractfile(backup.MANIFEST)
        assert f is not None
        manifest = json.loads(f.read())
    files = manifest["files"]
    if entry >= 0 and field in ("path", "sha256", "size", "mode"):
        files[entry % len(files)][field] = value
    else:
        manifest[field] = value
    out = tmp_path_factory.mktemp("fuzz") / "m.tar.gz"
    # Signed with the real key: the manifest's own checks must hold even against the key's holder.
    _rewrite(archive, out, {backup.MANIFEST: json.dumps(manifest).encode()}, sign_with=key)
    try:
        checked = backup.verify(out, key=key)
    except IntegrityError:
        return
    for e in checked.files:  # whatever verify accepts is safe to restore as root
        assert 0 <= e.mode <= 0o777 and not e.mode & backup.FORBIDDEN_MODE
