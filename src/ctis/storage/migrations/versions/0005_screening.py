"""screening: recruitment posts, their networks and contact points

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_posts",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("posted_at", sa.DateTime(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("indicators", sa.Text(), nullable=False),
        sa.Column("entities", sa.Text(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("network_id", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("first_ingested", sa.DateTime(), nullable=False),
        sa.Column("last_ingested", sa.DateTime(), nullable=False),
        sa.Column("ingested_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_posts")),
    )
    op.create_index(op.f("ix_screening_posts_posted_at"), "screening_posts", ["posted_at"], unique=False)
    op.create_index(op.f("ix_screening_posts_flagged"), "screening_posts", ["flagged"], unique=False)
    op.create_index(op.f("ix_screening_posts_network_id"), "screening_posts", ["network_id"], unique=False)
    op.create_table(
        "screening_networks",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("languages", sa.Text(), nullable=False),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("merged_into", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_networks")),
    )
    op.create_table(
        "screening_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["screening_posts.id"],
            name=op.f("fk_screening_contacts_post_id_screening_posts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_contacts")),
    )
    op.create_index(op.f("ix_screening_contacts_post_id"), "screening_contacts", ["post_id"], unique=False)
    op.create_index(op.f("ix_screening_contacts_contact"), "screening_contacts", ["contact"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_screening_contacts_contact"), table_name="screening_contacts")
    op.drop_index(op.f("ix_screening_contacts_post_id"), table_name="screening_contacts")
    op.drop_table("screening_contacts")
    op.drop_table("screening_networks")
    op.drop_index(op.f("ix_screening_posts_network_id"), table_name="screening_posts")
    op.drop_index(op.f("ix_screening_posts_flagged"), table_name="screening_posts")
    op.drop_index(op.f("ix_screening_posts_posted_at"), table_name="screening_posts")
    op.drop_table("screening_posts")
