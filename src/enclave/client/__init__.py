"""The enclave API client: contexts (``config``), typed HTTP calls (``http``) and remote services with the methods
of the local ones (``remote``), so a CLI command runs the same code whether it acts locally or through the API."""
