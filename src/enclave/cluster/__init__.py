"""The live Kubernetes adapter (nodes, labels, cordon/drain, HTCondor worker pods) and the live backend."""
