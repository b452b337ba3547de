from tests.cluster.conftest import kube, server, spec  # noqa: F401  the strict API server fake and its adapter
