"""The digital twin: a fast discrete-event model of the enclave, and its embedded default backend.

Entry points: ``enclave.twin.backend.TwinBackend`` (the Backend protocol), ``enclave.twin.run.simulate``
(one scenario under one policy → simulator and metrics), and the ``enclave twin`` CLI.
"""
