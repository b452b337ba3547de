"""Forcing one interleaving of two transactions, for the tests of the rules that take the journal's head lock.

``race`` runs ``first`` in a thread until it returns from a named function (its check), holds it there, runs
``second`` meanwhile, and lets ``first`` go on once ``second`` has finished — or after ``HOLD_S``, when ``second``
is (rightly) waiting for ``first``'s lock. Unserialized on PostgreSQL (READ COMMITTED), ``second`` commits between
``first``'s check and its write; serialized, it waits and then sees ``first``'s result. Nothing is timed: ``HOLD_S``
only bounds how long ``first`` waits for a ``second`` that cannot finish before it, and the tests assert outcomes.
On SQLite every transaction begins IMMEDIATE, so ``second`` always waits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

HOLD_S = 2.0
"""How long ``first`` stays held while ``second`` cannot finish (it waits for ``first``'s lock)."""


def race(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, first: Callable[[], Any],
         second: Callable[[], Any]) -> dict[str, Any]:
    """Run ``first`` and hold it right after its first return from ``module.name``; run ``second`` meanwhile.
    Returns ``{"first": result or exception, "second": result or exception}``."""
    reached, second_done = threading.Event(), threading.Event()
    original = getattr(module, name)
    held: list[bool] = []

    def holding(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if threading.current_thread().name == "first" and not held:
            held.append(True)
            reached.set()
            second_done.wait(HOLD_S)
        return result

    monkeypatch.setattr(module, name, holding)
    out: dict[str, Any] = {}

    def run(label: str, fn: Callable[[], Any]) -> None:
        try:
            out[label] = fn()
        except BaseException as exc:  # noqa: BLE001 - a refusal may be the expected outcome: the test checks it
            out[label] = exc
        finally:
            if label == "second":
                second_done.set()
            reached.set()  # first never reached the hold (it failed before): let the second run anyway

    one = threading.Thread(target=run, args=("first", first), name="first")
    one.start()
    assert reached.wait(timeout=60), f"the first transaction never reached {name}"
    two = threading.Thread(target=run, args=("second", second), name="second")
    two.start()
    one.join(timeout=120)
    two.join(timeout=120)
    assert not one.is_alive() and not two.is_alive(), "a transaction never finished"
    assert held, f"the first transaction never returned from {name}: {out.get('first')!r}"
    return out
