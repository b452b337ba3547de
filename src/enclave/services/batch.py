"""The HTCondor pool as it is now, read through the bindings (``enclave.batch.live``)."""

from __future__ import annotations

from dataclasses import dataclass

from enclave.batch.live import HTCondorBatch
from enclave.domain.capacity import PoolDemand, Startd
from enclave.spec.models import EnclaveSpec


@dataclass
class BatchService:
    spec: EnclaveSpec

    def startds(self) -> tuple[Startd, ...]:
        """Every startd the collector knows, with the pool its ClassAd carries."""
        return HTCondorBatch(self.spec).startds()

    def pools_now(self) -> tuple[tuple[Startd, ...], dict[str, PoolDemand]]:
        """The startds and each pool's queue, from one connection to the collector and the schedds."""
        adapter = HTCondorBatch(self.spec)
        return adapter.startds(), adapter.demand()
