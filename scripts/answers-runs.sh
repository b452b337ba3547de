#!/usr/bin/env bash
# The twin runs behind docs/answers.md, one section at a time, each the command printed above its table.
# Usage (from the repository root, with `enclave` and the `python` it runs on PATH):
#   scripts/answers-runs.sh OUT_DIR [SECTION ...]
# Sections, in the order the page's answers were refreshed: answer1 experiment answer2 baselines prompt
# prompt-settings answer3 others one-week grace instant. Runs one at a time; seeds are fixed in the
# scenarios, so every figure reproduces exactly. `+schedd` scenarios are the shipped ones with prompt on a
# schedd of its own polled every 20 s (`htcondor: {dedicated_schedds: [prompt], schedd_interval_s: 20}`, as the
# shipped issue-15 scenarios set it: a 26.x schedd at the default SCHEDD_INTERVAL 300 reschedules few visits),
# `+schedd-300` ones the same at HTCondor's 300 s, `+instant` ones with frictionless matching
# (`htcondor: {matching: instant}`), written into OUT_DIR/scenarios/. Sweeps over `dedicated_schedds` set
# `schedd_interval` too (on a shared schedd, whose DRP backlog keeps its idle count above 0, it is how long a visit's
# jobs wait unseen: the negotiator skips submitters whose last ad shows no idle job).
set -euo pipefail
out=${1:?usage: scripts/answers-runs.sh OUT_DIR [SECTION ...]}
shift
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(answer1 experiment answer2 baselines prompt prompt-settings answer3 others one-week grace instant)
shipped=src/enclave/examples/scenarios
mkdir -p "$out/scenarios"

variant() {  # NAME SUFFIX HTCONDOR: write NAME+SUFFIX.yaml, the shipped scenario with `htcondor: HTCONDOR`; print its path
    local f="$out/scenarios/$1+$2.yaml"
    sed -e "s/^name: .*/name: $1+$2/" -e "/^htcondor:/d" "$shipped/$1.yaml" > "$f"
    echo "htcondor: $3" >> "$f"
    echo "$f"
}
schedd() { variant "$1" schedd "{dedicated_schedds: [prompt], schedd_interval_s: 20}"; }
schedd300() { variant "$1" schedd-300 "{dedicated_schedds: [prompt]}"; }  # HTCondor's SCHEDD_INTERVAL, 300 s
instant() { variant "$1" instant "{matching: instant}"; }

run() { echo "== $*" >&2; enclave twin "$@"; }

for section in "${sections[@]}"; do
    case $section in
    answer1)
        run sweep pods-standalone --param negotiator_interval=10,60 --param dedicated_schedds=none,prompt --param schedd_interval=300,20 \
            -p static -p quotas --out-dir "$out/standalone"
        run sweep pods-8 --param negotiator_interval=10,60 --param dedicated_schedds=none,prompt --param schedd_interval=300,20 \
            -p static -p quotas --out-dir "$out/pods8" ;;
    experiment)
        run compare "$(schedd pods-standalone)" "$(schedd pods-node)" "$(schedd pods-16)" "$(schedd pods-8)" "$(schedd pods-4)" \
            -p static -p quotas -p broker --out-dir "$out/sp-schedd"
        run compare pods-standalone pods-node pods-16 pods-8 pods-4 -p static -p quotas -p broker --out-dir "$out/sp" ;;
    answer2)
        run sweep pods-8 --param pod_cores=4,8,16,0 --param negotiator_interval=10,60 --param dedicated_schedds=prompt --param schedd_interval=20 -p static -p quotas --out-dir "$out/pod-size" ;;
    baselines)  # also the static / quotas / broker figures of "HTCondor for prompt" for these four scenarios
        for s in one-night-prompt-schedd "$(schedd300 one-night)" one-night-instant one-night-reschedule one-night \
                 "$(schedd node-failure-storm)" "$(schedd notebook-peak)" "$(schedd drp-campaign)" one-week; do
            run compare "$s" -p static -p quotas -p quotas-mem -p quotas-preempt -p quotas-preempt-mem \
                -p quotas-reserved -p cohorts -p broker --out-dir "$out/b/$(basename "$s" .yaml)"
        done ;;
    prompt)
        for s in one-night-negotiate-20s one-night-negotiate-60s one-night-negotiate-60s-no-claims; do
            run compare $s -p static -p quotas -p broker --out-dir "$out/prompt/$s"
        done ;;
    prompt-settings)
        run sweep one-night --param negotiator_interval=5,10,20,60 --param dedicated_schedds=none,prompt --param schedd_interval=300,20 \
            -p static -p quotas -p broker --out-dir "$out/prompt-settings"
        run sweep one-night-prompt-schedd --param schedd_interval=300,60,40,30,25,20,15,10,5 -p static -p quotas --out-dir "$out/schedd-interval"
        run sweep one-night-prompt-8g --param schedd_interval=300,60,30,20,10 -p quotas -p broker --out-dir "$out/schedd-interval-8g"
        run sweep one-night-prompt-schedd --param negotiator_interval=10,20,60 --param negotiator_cycle_delay=5,20 -p static --out-dir "$out/interval-delay"
        run sweep one-night-prompt-schedd --param negotiator_cycle_delay=5,20,40 -p static --out-dir "$out/cycle-delay"
        run sweep one-night-prompt-schedd --param claim_worklife=0,60,300,1200 -p static -p quotas --out-dir "$out/claim-worklife"
        run sweep one-night-prompt-schedd --param job_start_delay=0,1 -p static --out-dir "$out/start-throttle" ;;
    answer3)
        run compare one-night-prompt-schedd -p static -p broker -p service --out-dir "$out/cmp"
        run sweep one-night-prompt-schedd --param negotiator_interval=5,20,60 -p static -p service --out-dir "$out/s1"
        run sweep one-night --param knative.max_scale=300,400,500,0 -p service --out-dir "$out/s2"
        run sweep one-night --param knative.target_utilization=0.7,1.0 -p service --out-dir "$out/s3" ;;
    others)  # out of the box: prompt on DRP's schedd (the +schedd rows are in baselines)
        run compare node-failure-storm notebook-peak drp-campaign -p static -p quotas -p broker --out-dir "$out/others" ;;
    one-week)
        run compare one-week -p static -p quotas -p broker --out-dir "$out/one-week" ;;
    grace)  # quotas-preempt-mem with MaxJobRetirementTime R (no policy name of its own: the Python API)
        for s in one-night-prompt-schedd "$(schedd node-failure-storm)"; do
            for r in 0 10 60 600; do
                echo "== grace $s R=$r" >&2
                python -c 'import sys
from enclave.twin.metrics import compute
from enclave.twin.preempt import QuotasPreemptMemory
from enclave.twin.scenario import load_scenario
from enclave.twin.sim import Sim
sim = Sim(load_scenario(sys.argv[1]), QuotasPreemptMemory(retirement_s=float(sys.argv[2])))
sim.run(None)
m = compute(sim)
print(sys.argv[1], "R =", sys.argv[2], "s: visits within 60 s", m["prompt"]["visits_within_deadline"],
      "preempted", m["moves"]["preempted_jobs"], "lost core-h", m["moves"]["preempted_core_hours"])' "$s" "$r"
            done
        done ;;
    instant)  # frictionless matching, for the "Frictionless matching" tables
        run compare "$(instant pods-standalone)" "$(instant pods-node)" "$(instant pods-16)" "$(instant pods-8)" "$(instant pods-4)" \
            -p static -p quotas -p broker --out-dir "$out/sp-instant"
        run compare one-night-instant "$(instant node-failure-storm)" "$(instant notebook-peak)" "$(instant drp-campaign)" \
            "$(instant one-week)" -p static -p quotas -p broker --out-dir "$out/night-instant" ;;
    *) echo "unknown section '$section'" >&2; exit 2 ;;
    esac
done
