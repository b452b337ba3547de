"""ops: a submitted image records who issued the submitter's token on their behalf, if anyone did (audit of identity
and trust, finding 2: a sysadmin submitted through a service admin's on-behalf token and approved with its own).

Submissions made before this revision record nobody: which token they came with was never stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_image_submission_delegation"
down_revision = "0005_token_parents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ops_images") as batch:
        batch.add_column(sa.Column("submitted_delegated_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ops_images") as batch:
        batch.drop_column("submitted_delegated_by")
