"""People, accounts, actor roles, lifecycle rules and allocations (seed §2, §4–6)."""

from enclave.accounts.models import Account, AccountKind, AccountStatus, Membership, Person, RoleGrant

__all__ = ["Account", "AccountKind", "AccountStatus", "Membership", "Person", "RoleGrant"]
