"""The names and labels `enclave render access` gives a user's RoleBindings are one per username.

Usernames are ``[a-z][a-z0-9_-]{0,31}`` (``accounts.lifecycle.USERNAME``). An object name may not hold '_' (RFC 1123
subdomain: lowercase letters, digits, '-' and '.', each dot-separated part alphanumeric at both ends; Kubernetes
docs, "Object Names and IDs"), a label value is ``[A-Za-z0-9._-]``, at most 63, alphanumeric at both ends
(apimachinery ``IsValidLabelValue``; "Labels and Selectors", "Syntax and character set"). Earlier, 'a_b' became
'a-b-<8 hex of sha256>', the very name and label of the valid username 'a-b-648fa9b3': applying the files kept one
of the two bindings, and departing 'a_b' deleted the other user's (the control plane deletes by that label).
"""

from __future__ import annotations

import hashlib
import itertools
import re

from enclave.access.render import binding_name, is_label_value, legacy_user_labels, object_name, user_label
from enclave.accounts.lifecycle import USERNAME

from .test_render import DNS_SUBDOMAIN

HASHED = "a-b-" + hashlib.sha256(b"a_b").hexdigest()[:8]  # 'a-b-648fa9b3': what 'a_b' rendered as before


def usernames(alphabet: str, longest: int) -> list[str]:
    """Every valid username over ``alphabet`` up to ``longest`` characters."""
    every = ("".join(t) for n in range(1, longest + 1) for t in itertools.product(alphabet, repeat=n))
    return [u for u in every if USERNAME.fullmatch(u)]


ADVERSARIAL = [
    ("a_b", HASHED), ("a_b", "a-b"), ("bob-", "bob-" + hashlib.sha256(b"bob-").hexdigest()[:8]),
    ("bob_", "bob--" + hashlib.sha256(b"bob_").hexdigest()[:8]), ("bob_", "bob-"), ("bob_-", "bob_"),
    ("bob-_", "bob_-"), ("a__", "a-_"), ("a" + "_" * 31, "a" + "-" * 31), ("a" + "_" * 30 + "-", "a" + "_" * 31),
    ("a_b_", "a-b_"), ("dev_ops", "dev-ops"), ("dev_ops", "dev-ops-" + hashlib.sha256(b"dev_ops").hexdigest()[:8]),
]
# Every username of up to 7 characters over a, b, 0, '_' and '-' (39,062 of them): all the ways '_' and '-' mix,
# at the start, middle and end, which is all the encoding distinguishes.
SMALL = usernames("ab0_-", 7)
LONG = ["a" * 32, "a" + "_" * 31, "a" + "-" * 31, "a" + "_-" * 15 + "_", "z9" + "_" * 29 + "x"]


def test_adversarial_pairs_get_distinct_names_and_labels() -> None:
    for a, b in ADVERSARIAL:
        assert USERNAME.fullmatch(a) and USERNAME.fullmatch(b), (a, b)
        assert object_name(a) != object_name(b) and user_label(a) != user_label(b), (a, b)
        assert binding_name(a, "edit") != binding_name(b, "edit")
    # The reviewer's pair: 'a_b' is coded with '.', which no username holds; the other user keeps their name.
    assert binding_name("a_b", "edit") == "enclave-a-b.00000002-edit" and user_label("a_b") == "a-b.00000002"
    assert binding_name(HASHED, "edit") == f"enclave-{HASHED}-edit" and user_label(HASHED) == HASHED


def test_names_and_labels_are_injective_and_valid() -> None:
    every = SMALL + LONG + [u for pair in ADVERSARIAL for u in pair]
    names = {u: object_name(u) for u in every}
    labels = {u: user_label(u) for u in every}
    assert len(set(names.values())) == len(names) and len(set(labels.values())) == len(labels)
    for u in every:
        for role in ("view", "edit", "admin"):
            name = binding_name(u, role)
            assert DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253, name
        assert is_label_value(labels[u]), (u, labels[u])
        # A username unchanged has no '.'; a coded one has: the two never meet.
        assert (names[u] == u) is ("." not in names[u]) and (labels[u] == u) is ("." not in labels[u])


def test_names_without_underscore_are_kept() -> None:
    """Renaming a binding is a delete and a create on a live cluster: only names with '_' change."""
    for u in SMALL + LONG:
        if "_" not in u:
            assert object_name(u) == u
            assert user_label(u) == u or u.endswith("-")  # a label value may not end in '-', so those were hashed


def test_legacy_labels_never_name_the_current_label() -> None:
    for u in SMALL:
        old = legacy_user_labels(u)
        assert user_label(u) not in old and all(is_label_value(v) for v in old)
    assert legacy_user_labels("a_b") == {"a_b", HASHED}  # HASHED is another user's: the subject decides
    assert legacy_user_labels("alice") == set()
    assert all(re.fullmatch(r"[a-z0-9.-]+", object_name(u)) for u in SMALL)
