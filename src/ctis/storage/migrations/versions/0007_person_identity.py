"""person identity: person_id on victims and suspects, link runs, review decisions, review queue

Revision ID: 0007
Revises: 0006

``person_id`` is the id of the representative record (the smallest row id) of
the person's cluster; NULL means the record was never linked and is its own
person.  Reports count ``coalesce(person_id, id)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("victims", "suspects"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        op.create_index(op.f(f"ix_{table}_person_id"), table, ["person_id"], unique=False)
    op.create_table(
        "link_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("engine", sa.String(length=20), nullable=False),
        sa.Column("trained", sa.Boolean(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("match_threshold", sa.Float(), nullable=False),
        sa.Column("review_threshold", sa.Float(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("linked_records", sa.Integer(), nullable=False),
        sa.Column("review_pairs", sa.Integer(), nullable=False),
        sa.Column("unlinkable", sa.Text(), nullable=False),
        sa.Column("pairs_scored", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("started_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_runs")),
    )
    op.create_index(op.f("ix_link_runs_kind"), "link_runs", ["kind"], unique=False)
    op.create_table(
        "link_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("record_id_l", sa.Integer(), nullable=False),
        sa.Column("record_id_r", sa.Integer(), nullable=False),
        sa.Column("same", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_decisions")),
        sa.UniqueConstraint("kind", "record_id_l", "record_id_r", name="uq_link_decisions_pair"),
    )
    op.create_table(
        "link_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("record_id_l", sa.Integer(), nullable=False),
        sa.Column("record_id_r", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["link_runs.id"], name=op.f("fk_link_review_run_id_link_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_review")),
    )
    op.create_index(op.f("ix_link_review_run_id"), "link_review", ["run_id"], unique=False)
    op.create_index(op.f("ix_link_review_kind"), "link_review", ["kind"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_link_review_kind"), table_name="link_review")
    op.drop_index(op.f("ix_link_review_run_id"), table_name="link_review")
    op.drop_table("link_review")
    op.drop_table("link_decisions")
    op.drop_index(op.f("ix_link_runs_kind"), table_name="link_runs")
    op.drop_table("link_runs")
    for table in ("suspects", "victims"):
        op.drop_index(op.f(f"ix_{table}_person_id"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("person_id")
