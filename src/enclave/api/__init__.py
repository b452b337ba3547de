"""The control-plane service: REST API, web dashboard, Prometheus metrics and `enclave serve`."""
