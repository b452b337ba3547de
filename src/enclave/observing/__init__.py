"""The observing schedule the enclave keeps for the broker: pushed from a file or over the API, stored, journaled."""
