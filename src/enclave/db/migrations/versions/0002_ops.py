"""ops: the image vetting table (seed §10)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enclave.db import UTCDateTime

revision = "0002_ops"
down_revision = "0001_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_images",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=True),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ops_images"),
        sa.UniqueConstraint("repository", "digest", name="uq_ops_images_repository_digest"),
        sa.CheckConstraint("status IN ('submitted', 'approved', 'rejected')", name="ck_ops_images_status"),
    )
    op.create_index("ix_ops_images_status", "ops_images", ["status"])


def downgrade() -> None:
    op.drop_index("ix_ops_images_status", table_name="ops_images")
    op.drop_table("ops_images")
