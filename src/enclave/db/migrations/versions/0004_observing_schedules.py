"""observing: the pushed observing schedules the broker pre-warms for (issue 15 item 6)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enclave.db import UTCDateTime

revision = "0004_observing_schedules"
down_revision = "0003_local_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observing_schedules",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("pushed_by", sa.String(64), nullable=False),
        sa.Column("pushed_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_observing_schedules"),
    )


def downgrade() -> None:
    op.drop_table("observing_schedules")
