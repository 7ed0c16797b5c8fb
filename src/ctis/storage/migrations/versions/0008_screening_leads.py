"""screening leads: a post or network referred to investigators, linked to a case

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_leads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column("post_id", sa.String(length=200), nullable=True),
        sa.Column("network_id", sa.String(length=20), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_screening_leads_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_leads")),
    )
    op.create_index(op.f("ix_screening_leads_post_id"), "screening_leads", ["post_id"], unique=False)
    op.create_index(op.f("ix_screening_leads_network_id"), "screening_leads", ["network_id"], unique=False)
    op.create_index(op.f("ix_screening_leads_case_id"), "screening_leads", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_screening_leads_case_id"), table_name="screening_leads")
    op.drop_index(op.f("ix_screening_leads_network_id"), table_name="screening_leads")
    op.drop_index(op.f("ix_screening_leads_post_id"), table_name="screening_leads")
    op.drop_table("screening_leads")
