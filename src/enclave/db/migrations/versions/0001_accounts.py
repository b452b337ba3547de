"""accounts, access and journal: people, accounts, role grants, namespace members, tokens, journal.

Revision ids are the file names (NNNN_<concept>); each new revision names the previous file as its
down_revision, so the chain stays one straight line.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enclave.db import UTCDateTime

revision = "0001_accounts"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("email", name="uq_people_email"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("person_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("uid", sa.Integer, nullable=False),
        sa.Column("gid", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("home_path", sa.String(255), nullable=False),
        sa.Column("workspace_path", sa.String(255), nullable=False),
        sa.Column("quota_gib", sa.Float, nullable=False),
        sa.Column("allocation_id", sa.String(64), nullable=True),
        sa.Column("allocation_quota_gib", sa.Float, nullable=True),
        sa.Column("allocation_expires", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("replaced_by", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_accounts_person_id_people"),
        sa.ForeignKeyConstraint(["replaced_by"], ["accounts.id"], name="fk_accounts_replaced_by_accounts"),
        sa.UniqueConstraint("username", name="uq_accounts_username"),
        sa.UniqueConstraint("uid", name="uq_accounts_uid"),
        sa.UniqueConstraint("home_path", name="uq_accounts_home_path"),
    )
    op.create_index("ix_accounts_person_id", "accounts", ["person_id"])
    op.create_index("ix_accounts_status", "accounts", ["status"])
    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("person_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_role_grants"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_role_grants_person_id_people"),
        sa.UniqueConstraint("person_id", "role", name="uq_role_grants_person_role"),
    )
    op.create_index("ix_role_grants_person_id", "role_grants", ["person_id"])
    op.create_table(
        "namespace_members",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_namespace_members"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_namespace_members_account_id_accounts"),
        sa.UniqueConstraint("account_id", "namespace", name="uq_namespace_members_account_ns"),
    )
    op.create_index("ix_namespace_members_account_id", "namespace_members", ["account_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_tokens_account_id_accounts"),
        sa.UniqueConstraint("key", name="uq_tokens_key"),
    )
    op.create_index("ix_tokens_account_id", "tokens", ["account_id"])
    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("before", sa.Text, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_journal_entries"),
    )
    for column in ("at", "actor", "action", "target"):
        op.create_index(f"ix_journal_entries_{column}", "journal_entries", [column])
    head = op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_head"),
    )
    # The head row exists from the start, so the first writers already have a row to lock and queue on.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    for table in ("journal_head", "journal_entries", "tokens", "namespace_members", "role_grants", "accounts",
                  "people"):
        op.drop_table(table)
