"""The htcondor2 stand-ins (conftest) refuse what the real bindings refuse, with the same errors: a fake that accepts
more would let the adapter pass tests with calls that fail against a real pool. Each refusal here is checked against
the real function too, where it is raised before anything is sent."""

from __future__ import annotations

from typing import Any

import htcondor2
import pytest
from classad2 import ClassAd

from .conftest import Daemons


# htcondor2.send_command maps the ad's MyType to an ad type, then to a daemon type, refusing either miss with a
# ValueError before it sends (.venv/lib/python3.11/site-packages/htcondor2/_loose_functions.py:84-92). A slot's
# "Machine" maps to AdType.Slot (htcondor2/_ad_type.py:88-110: the later of Startd's and Slot's "Machine"), no daemon.
@pytest.mark.parametrize(("my_type", "refusal"), [
    ("Job", "Unknown daemon type."),
    ("Machine", "Failed to convert ad type to daemon type."),
    ("Submitter", "Failed to convert ad type to daemon type."),
])
def test_send_command_refuses_an_ad_of_no_daemon_type(daemons: Daemons, my_type: str, refusal: str) -> None:
    fs = daemons.startds["condor-001"]
    ad = ClassAd({"MyType": my_type, "MyAddress": fs.address})
    for send in (daemons.send_command, htcondor2.send_command):
        with pytest.raises(ValueError, match=f"^{refusal}$"):
            send(ad, htcondor2.DaemonCommand.Reconfig)
    assert not daemons.calls  # refused before anything was sent


def test_send_command_still_reaches_a_master(daemons: Daemons) -> None:
    fs = daemons.startds["condor-001"]
    daemons.send_command(daemons.master_ad("condor-001", fs), htcondor2.DaemonCommand.Reconfig)
    assert daemons.calls == [("command", daemons.master_address(fs), htcondor2.DaemonType.Master,
                              htcondor2.DaemonCommand.Reconfig)]


# RemoteParam.__setitem__ checks the key's and the value's type before it caches or sends the assignment
# (.venv/lib/python3.11/site-packages/htcondor2/_remote_param.py:56-60).
@pytest.mark.parametrize(("key", "value", "refusal"), [
    (1, "prompt", "key must be a string"),
    ("ENCLAVE_POOL_SINCE", 1_800_000_000, "value must be a string"),
    ("ENCLAVE_POOL", None, "value must be a string"),
])
def test_remote_param_takes_strings_only(daemons: Daemons, key: Any, value: Any, refusal: str) -> None:
    fs = daemons.startds["condor-001"]
    fake = daemons.bindings.remote_param(daemons.slot_ad(fs))
    unconnected = object.__new__(htcondor2.RemoteParam)  # the real checks run before the daemon is asked
    for param in (fake, unconnected):
        with pytest.raises(TypeError, match=f"^{refusal}$"):
            param[key] = value
    assert not daemons.calls and not fs.pending
