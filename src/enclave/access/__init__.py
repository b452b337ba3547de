"""Who may do what: role → permission, API tokens, data access rules, rendered Kubernetes access."""
