"""HTCondor's hierarchical group quotas as the negotiator allocates them, for enclave's flat tree: every pool's
accounting group a child of the root group ``<none>``, each with GROUP_QUOTA_DYNAMIC (its guaranteed share) and
GROUP_ACCEPT_SURPLUS, as ``enclave.batch.render`` writes them. From htcondor/htcondor 7491a14,
src/condor_negotiator.V6/GroupEntry.cpp:

- ``hgq_assign_quotas``: a group's quota is its dynamic quota times the pool's total slot weight, the dynamic
  quotas scaled down when they sum past 1; the root keeps what is left (nobody submits to it here, so all of it
  is surplus).
- ``hgq_fairshare``: each group is first allocated the smaller of what it requests (its submitters' weighted
  running plus weighted idle jobs, ``hgq_prepare_for_matchmaking``) and its quota; what quotas leave unallocated
  is surplus.
- ``hgq_allocate_surplus``: enough surplus for every remaining request gives each group all of it; otherwise
  ``hgq_allocate_surplus_loop`` hands it out in proportion to quota among the groups still asking, each capped at
  what it asks, round after round until it is spent, then evenly among groups of zero quota.
- ``hgq_negotiate_with_all_groups``: each group negotiates up to ``max(allocated, quota)`` less its usage; a
  group allocated nothing is skipped. After a round, a group that used less than it was allocated asks for no
  more than it uses and the allocation is made again, up to GROUP_QUOTA_MAX_ALLOCATION_ROUNDS (3) rounds, until
  every allocation is used.

There is no ceiling but the pool: a group may take all the surplus the others do not ask for.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_ALLOCATION_ROUNDS = 3
"""GROUP_QUOTA_MAX_ALLOCATION_ROUNDS' default (``param_integer("GROUP_QUOTA_MAX_ALLOCATION_ROUNDS", 3, 1, ...)``
in ``hgq_negotiate_with_all_groups``)."""


def quotas(shares: Mapping[str, float], total: float) -> tuple[dict[str, float], float]:
    """(each group's quota, the root's) from the dynamic quotas ``shares`` of a pool of slot weight ``total``
    (``hgq_assign_quotas``: ``Zd = max(dqsum, 1)``; the root's quota is the pool less its children's)."""
    scale = max(sum(shares.values()), 1.0)
    each = {g: max(0.0, share) * total / scale for g, share in shares.items()}
    return each, max(0.0, total - sum(each.values()))


def allocate(quota: Mapping[str, float], requested: Mapping[str, float], root_quota: float) -> dict[str, float]:
    """What each group is allocated this round (``hgq_fairshare`` with ``hgq_allocate_surplus`` at the root)."""
    allocated = {g: min(requested.get(g, 0.0), q) for g, q in quota.items()}
    wants = {g: requested.get(g, 0.0) - allocated[g] for g in quota}
    surplus = root_quota + sum(q - allocated[g] for g, q in quota.items())
    asked = sum(w for w in wants.values() if w > 0)
    if surplus <= 0 or asked <= 0:
        return allocated
    if surplus >= asked:  # "Cornucopia! Give everybody what they asked for."
        return {g: a + max(0.0, wants[g]) for g, a in allocated.items()}
    surplus = _share_out(surplus, wants, allocated, {g: q for g, q in quota.items() if q > 0})
    _share_out(surplus, wants, allocated, dict.fromkeys((g for g, q in quota.items() if q <= 0), 1.0))
    return allocated


def _share_out(surplus: float, wants: dict[str, float], allocated: dict[str, float],
               weights: Mapping[str, float]) -> float:
    """``hgq_allocate_surplus_loop`` over the groups in ``weights`` (their quotas, or 1 each): returns the surplus
    left. Each pass gives every group still asking ``surplus * weight / Z``, capped at what it asks; a pass in
    which no group hit its cap spent everything."""
    while surplus > 0:
        z = sum(w for g, w in weights.items() if wants[g] > 0)
        if z <= 0:
            break
        never_capped = True
        spent = 0.0
        for g, w in weights.items():
            if wants[g] > 0:
                a = surplus * w / z
                if a > wants[g]:
                    a = wants[g]
                    never_capped = False
                allocated[g] += a
                wants[g] -= a
                spent += a
        surplus -= spent
        if never_capped or surplus < 0:
            surplus = 0.0  # the upstream loop's rounding of the remainder to zero
    return surplus


def next_requests(requested: Mapping[str, float], allocated: Mapping[str, float],
                  usage: Mapping[str, float]) -> dict[str, float] | None:
    """After a round: the requests of the next (a group that used less than its allocation asks for what it uses;
    the others for what they asked), or None when every allocation was used and no round follows."""
    if sum(min(usage[g], a) for g, a in allocated.items()) >= sum(allocated.values()):
        return None
    return {g: usage[g] if usage[g] < allocated[g] else requested[g] for g in allocated}
