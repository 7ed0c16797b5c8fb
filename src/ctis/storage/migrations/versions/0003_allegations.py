"""allegation register: allegations, their investigation log and evidence links

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allegations",
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("source_detail", sa.String(length=200), nullable=True),
        sa.Column("alleged_on", sa.Date(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=True),
        sa.Column("province", sa.String(length=8), nullable=True),
        sa.Column("people_alleged", sa.Text(), nullable=True),
        sa.Column("facts_alleged", sa.Text(), nullable=True),
        sa.Column("finding", sa.String(length=30), nullable=False),
        sa.Column("finding_summary", sa.Text(), nullable=True),
        sa.Column("finding_on", sa.Date(), nullable=True),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_allegations_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["province"], ["provinces.code"], name=op.f("fk_allegations_province_provinces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allegations")),
        sa.UniqueConstraint("external_id", name=op.f("uq_allegations_external_id")),
    )
    with op.batch_alter_table("allegations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allegations_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_allegations_alleged_on"), ["alleged_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_allegations_finding"), ["finding"], unique=False)

    op.create_table(
        "allegation_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allegation_id", sa.Integer(), nullable=False),
        sa.Column("entry_on", sa.Date(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["allegation_id"],
            ["allegations.id"],
            name=op.f("fk_allegation_log_allegation_id_allegations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allegation_log")),
    )
    with op.batch_alter_table("allegation_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allegation_log_allegation_id"), ["allegation_id"], unique=False)

    op.create_table(
        "allegation_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allegation_id", sa.Integer(), nullable=False),
        sa.Column("evidence_type", sa.String(length=10), nullable=False),
        sa.Column("record_kind", sa.String(length=20), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("metric_key", sa.String(length=60), nullable=True),
        sa.Column("period", sa.String(length=40), nullable=True),
        sa.Column("dimension", sa.String(length=40), nullable=True),
        sa.Column("dimension_value", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["allegation_id"],
            ["allegations.id"],
            name=op.f("fk_allegation_evidence_allegation_id_allegations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allegation_evidence")),
    )
    with op.batch_alter_table("allegation_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allegation_evidence_allegation_id"), ["allegation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("allegation_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allegation_evidence_allegation_id"))
    op.drop_table("allegation_evidence")
    with op.batch_alter_table("allegation_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allegation_log_allegation_id"))
    op.drop_table("allegation_log")
    with op.batch_alter_table("allegations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allegations_finding"))
        batch_op.drop_index(batch_op.f("ix_allegations_alleged_on"))
        batch_op.drop_index(batch_op.f("ix_allegations_agency_id"))
    op.drop_table("allegations")
