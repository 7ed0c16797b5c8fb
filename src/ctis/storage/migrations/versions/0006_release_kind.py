"""release kind: a transparency release, or the protected tables of a standard export

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every release made before exports were recorded was a transparency release
    with op.batch_alter_table("releases") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=40), nullable=False, server_default="transparency")
        )


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("kind")
