"""The live Kubernetes adapter (nodes, labels and taints, drain, HTCondor worker pods) and the live backend."""
