"""The one naming rule for HTCondor worker pods, shared by the broker, the manual procedures and the twin."""

from __future__ import annotations

from collections.abc import Collection

from enclave.spec.models import WORKER_POD_PREFIX

POD_PREFIX = WORKER_POD_PREFIX
"""What every worker pod's name starts with: a name that does not is never one ``pod_names`` could give."""

_NUMBERS = tuple(map(str, range(1, 65)))  # a worker's first pods' numbers, written once
_FIRST = tuple(_NUMBERS[:count] for count in range(len(_NUMBERS) + 1))  # the first ``count`` of them, sliced once


def pod_names(node: str, count: int, existing: Collection[str]) -> tuple[str, ...]:
    """``count`` new worker pod names on ``node``, ``htcondor-<node>-<n>``, the lowest numbers not in use.

    Deterministic, so deciding twice on the same state names the same pods, and a valid DNS-1123 name for
    every spec node name (lower-case group names, a number)."""
    prefix = f"{POD_PREFIX}{node}-"
    # The lowest numbers, looked up without a Python step per name: a broker decision names thousands.
    numbers = _FIRST[count] if 0 <= count < len(_FIRST) else tuple(map(str, range(1, count + 1)))
    if not numbers:
        return ()
    if "\n" in prefix:  # never in a DNS-1123 name; the split below would cut one
        lowest = tuple([prefix + number for number in numbers])
    else:
        # Every name in two C calls, a join and a split: half the cost of a comprehension adding one at a time.
        lowest = tuple((prefix + ("\n" + prefix).join(numbers)).split("\n"))
    # A set tells for all of them at once; another collection (the twin's startds by name) one by one.
    # One type at a time: half the cost of isinstance with a tuple of types (callgrind), thousands of calls a decision.
    if isinstance(existing, set) or isinstance(existing, frozenset):  # noqa: SIM101
        taken = not existing.isdisjoint(lowest)
    else:
        taken = any(map(existing.__contains__, lowest))
    if not taken:
        return lowest  # none of them in use: a worker's first pods
    names = [name for name in lowest if name not in existing]
    i = count + 1
    while len(names) < count:
        name = f"{prefix}{i}"
        if name not in existing:
            names.append(name)
        i += 1
    return tuple(names)
