"""A scenario's YAML boolean is never read as a number (the twin's Strict base shares the spec's rule)."""

from __future__ import annotations

import pytest

from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse

WANTED = "a boolean where a number is wanted"

BAD = """name: x
prompt: {nights: true, visit_gap_s: [33, false], runtime: {low: false}}
notebooks: {peak_concurrent: true}
htcondor: {negotiator_interval_s: false}
node_groups:
  - {name: master, role: control-plane, count: 1, cores: 4, memory_gib: 16, local_disk_gib: 100}
  - {name: worker, role: worker, count: true, cores: 8, memory_gib: 32, local_disk_gib: 100}
"""


def test_a_boolean_for_a_number_is_refused_at_its_line_and_key(ldf: EnclaveSpec) -> None:
    with pytest.raises(InputError) as exc:
        parse(BAD, "b.yaml", spec=ldf)
    found = {str(p) for p in exc.value.problems}
    assert found == {
        f"b.yaml:2: prompt.nights: {WANTED}: write the number (true would be read as 1)",
        f"b.yaml:2: prompt.visit_gap_s: {WANTED} at [1]: write the number (false would be read as 0)",
        f"b.yaml:2: prompt.runtime.low: {WANTED}: write the number (false would be read as 0)",
        f"b.yaml:3: notebooks.peak_concurrent: {WANTED}: write the number (true would be read as 1)",
        f"b.yaml:4: htcondor.negotiator_interval_s: {WANTED}: write the number (false would be read as 0)",
        f"b.yaml:7: node_groups[1].count: {WANTED}: write the number (true would be read as 1)",
    }, found


def test_night_start_takes_a_number_or_twilight_but_no_boolean(ldf: EnclaveSpec) -> None:
    with pytest.raises(InputError) as exc:
        parse("name: x\nprompt: {night_start_h: true}\n", "n.yaml", spec=ldf)
    assert [str(p) for p in exc.value.problems] == [
        f"n.yaml:2: prompt.night_start_h: {WANTED}: write the number (true would be read as 1)"]
    loaded = parse("name: x\nprompt: {night_start_h: twilight}\n", "n.yaml", spec=ldf)
    assert loaded.scenario.prompt is not None and loaded.scenario.prompt.night_start_h == "twilight"


@pytest.mark.parametrize("flag", [True, False])
def test_real_boolean_keys_still_take_true_and_false(ldf: EnclaveSpec, flag: bool) -> None:
    word = "true" if flag else "false"
    text = f"name: x\nhtcondor: {{consumption_policy: {word}}}\nkubernetes: {{images_cached_at_start: {word}}}\n"
    sc = parse(text, "ok.yaml", spec=ldf).scenario
    assert sc.htcondor.consumption_policy is flag and sc.kubernetes.images_cached_at_start is flag


def test_the_knative_settings_take_no_boolean_for_a_number(ldf: EnclaveSpec) -> None:
    # Knative's autoscaler settings are numbers (https://knative.dev/docs/serving/autoscaling/scale-bounds/):
    # `min-scale: true` is no 1.
    with pytest.raises(InputError) as exc:
        parse("name: x\nknative: {min_scale: true}\n", "k.yaml", spec=ldf)
    assert [str(p) for p in exc.value.problems] == [
        f"k.yaml:2: knative.min_scale: {WANTED}: write the number (true would be read as 1)"]
