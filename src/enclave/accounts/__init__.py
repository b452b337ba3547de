"""People, accounts, actor roles, lifecycle rules, allocations and API tokens (seed §2, §4–6)."""
