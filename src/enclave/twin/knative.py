"""Settings of prompt processing as Knative service workers (``knative:`` in a scenario; the ``service`` policy).

Rubin runs Prompt Processing as long-lived Kubernetes service workers: the ``prompt-proto-service`` Knative
Service (lsst-dm/prompt_processing ``doc/playbook.rst``: "kubectl get serving summarizes the state of the service,
including which revision(s) are currently handling messages. A revision with 0 replicas is inactive"; design in
DMTN-219 and DMTN-260, named by the package's README.rst). ``next_visit`` is fanned out as one request per
detector, and the request reserves a worker for the whole visit: the worker preloads calibrations, templates and
APDB data, waits for the image, then processes it (DMTN-219). The chart runs one request per container
(``containerConcurrency: 1``, phalanx ``charts/prompt-proto-service/README.md``); each worker requests 1 CPU and
2 GiB (phalanx prompt-keda-lsstcam ``values.yaml``; /work/shared/facts/lsst-workload.md §1.3–1.4).

Autoscaler defaults are Knative Serving's (KPA), from knative.dev/docs/serving/autoscaling/: concurrency
(``container-concurrency-target-percentage`` 70), kpa-specific (``stable-window`` 60 s, ``panic-window-percentage``
10, ``panic-threshold-percentage`` 200), scale-bounds (``min-scale`` 0 with scale-to-zero under the KPA,
``max-scale`` 0 = no limit), scale-to-zero ("the last Replica will only be removed after there has not been any
traffic to the Revision for the entire duration of the stable window"); the autoscaler's 2 s ``tick-interval`` and
``max-scale-down-rate`` 2 ("N to N/2 … but at least N to N-1" per tick) from knative/serving
``config/core/configmaps/autoscaler.yaml`` (0d68a7b).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from enclave.spec.models import refuse_bool_as_number


class Knative(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _no_bool_as_number = field_validator("*", mode="before")(refuse_bool_as_number)  # `min_scale: true` is no 1

    container_concurrency: int = Field(default=1, ge=1, le=1000, description="containerConcurrency: requests a "
                                       "worker serves at once (prompt-proto-service: 1).")
    target_utilization: float = Field(default=0.7, gt=0, le=1, description="container-concurrency-target-"
                                      "percentage / 100: the autoscaler aims at this share of the hard limit.")
    stable_window_s: float = Field(default=60.0, ge=6, le=3600, description="stable-window.")
    panic_window_pct: float = Field(default=10.0, ge=1, le=100, description="panic-window-percentage.")
    panic_threshold_pct: float = Field(default=200.0, gt=100, le=1000, description="panic-threshold-percentage.")
    tick_s: float = Field(default=2.0, gt=0, le=60, description="The autoscaler's tick-interval.")
    max_scale_down_rate: float = Field(default=2.0, ge=1, description="max-scale-down-rate: at most 1/rate of the "
                                       "pods go per tick.")
    min_scale: int = Field(default=0, ge=0, le=100_000, description="min-scale (0: scale to zero).")
    max_scale: int = Field(default=0, ge=0, le=100_000, description="max-scale (0: no limit but the cluster).")
    cpu: float = Field(default=1.0, gt=0, description="Worker CPU request (phalanx prompt service: 1).")
    memory_gib: float = Field(default=2.0, gt=0, description="Worker memory request (phalanx: 2Gi).")
    startup_s: float = Field(default=30.0, ge=0, description="Estimate: container start until the worker is ready "
                             "(after scheduling and any image pull, as for HTCondor pods).")
    next_visit_lead_s: float = Field(default=20.0, ge=0, description="next_visit comes at least this long before "
                                     "the first exposure (LSE-72 OCS-DM-COM-ICD-0031, via DMTN-219).")
    exposure_s: float = Field(default=33.0, ge=0, description="First exposure's start to readout's end: 30 s "
                              "exposure + 1 s shutter + 2 s readout (DMTN-135's minimum visit length).")
    preload_s: float = Field(default=20.0, ge=0, description="Estimate: a worker's preload (calibrations, "
                             "templates, APDB) after it takes the request; processing starts after it and the "
                             "image, whichever is later.")
