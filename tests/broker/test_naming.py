"""``enclave.broker.naming.pod_names``: the lowest numbers not in use, whatever collection holds the names in use."""

from __future__ import annotations

from enclave.broker.naming import pod_names


def test_first_pods_of_a_worker_take_the_lowest_numbers() -> None:
    assert pod_names("kub-001", 3, set()) == ("htcondor-kub-001-1", "htcondor-kub-001-2", "htcondor-kub-001-3")
    assert pod_names("kub-001", 0, set()) == ()
    many = pod_names("w", 100, set())  # more than the numbers written ahead (64)
    assert many == tuple(f"htcondor-w-{i}" for i in range(1, 101))


def test_names_in_use_are_skipped_the_same_for_a_set_a_dict_and_a_tuple() -> None:
    # htcondor-kub-001-2 is taken: the three lowest free numbers are 1, 3 and 4. Another worker's names (kub-00)
    # and the worker's own name do not count.
    taken = ["htcondor-kub-001-2", "htcondor-kub-00-1", "kub-001"]
    expected = ("htcondor-kub-001-1", "htcondor-kub-001-3", "htcondor-kub-001-4")
    assert pod_names("kub-001", 3, set(taken)) == expected
    assert pod_names("kub-001", 3, frozenset(taken)) == expected
    assert pod_names("kub-001", 3, dict.fromkeys(taken)) == expected
    assert pod_names("kub-001", 3, tuple(taken)) == expected


def test_a_name_with_a_line_break_is_not_cut_where_the_names_are_joined() -> None:
    # The names are built by joining them with line breaks and splitting them again; a node name that holds one
    # (not a DNS-1123 name, but pod_names takes any string) must still give `count` names of the one rule.
    assert pod_names("a\nb", 2, set()) == ("htcondor-a\nb-1", "htcondor-a\nb-2")
    assert pod_names("kub-001", 1, set()) == ("htcondor-kub-001-1",)


def test_the_numbers_written_ahead_end_where_counting_takes_over() -> None:
    # 64 numbers are written ahead; 64 and 65 names are the same rule either side of that edge; no count below 1
    # names a pod.
    assert pod_names("w", 64, set()) == tuple(f"htcondor-w-{i}" for i in range(1, 65))
    assert pod_names("w", 65, set()) == tuple(f"htcondor-w-{i}" for i in range(1, 66))
    assert pod_names("w", -1, set()) == ()
