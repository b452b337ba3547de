"""accounts: OS users of the server host mapped to the accounts they may act as in local mode (issue 16)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enclave.db import UTCDateTime

revision = "0003_local_identities"
down_revision = "0002_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_identities",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("os_user", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("mapped_by", sa.String(64), nullable=False),
        sa.Column("mapped_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_local_identities"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_local_identities_account_id_accounts"),
        sa.UniqueConstraint("os_user", "account_id", name="uq_local_identities_os_user_account"),
    )
    op.create_index("ix_local_identities_os_user", "local_identities", ["os_user"])
    op.create_index("ix_local_identities_account_id", "local_identities", ["account_id"])


def downgrade() -> None:
    op.drop_table("local_identities")
