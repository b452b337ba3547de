"""accounts: each token records the token it was issued with and who, if not its holder, started its chain
(audit of identity and trust, finding 1: a token issued on someone's behalf minted the holder an "own" one).

Tokens issued before this revision have no parent; one whose issuer was not its holder was issued on the holder's
behalf, so it is marked as such here, as ``TokenService`` used to derive it on every request.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_token_parents"
down_revision = "0004_observing_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("delegated_by", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_tokens_parent_id_tokens", "tokens", ["parent_id"], ["id"])
        batch.create_index("ix_tokens_parent_id", ["parent_id"])
    op.execute("UPDATE tokens SET delegated_by = issued_by WHERE issued_by <> "
               "(SELECT username FROM accounts WHERE accounts.id = tokens.account_id)")


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_parent_id")
        batch.drop_constraint("fk_tokens_parent_id_tokens", type_="foreignkey")
        batch.drop_column("delegated_by")
        batch.drop_column("parent_id")
