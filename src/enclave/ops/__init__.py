"""Operations: upgrade planning, control-plane backup/restore, security benchmark, image vetting."""
