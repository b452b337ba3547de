"""enclave: control plane for a shared science computing enclave."""
