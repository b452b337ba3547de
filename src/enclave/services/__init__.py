"""Services: one per concept. A service method checks the actor's permission, owns the transaction, journals
through the rules it applies, and returns domain models. The CLI, the API and the broker loop build them through
``enclave.services.factory.Factory``."""
