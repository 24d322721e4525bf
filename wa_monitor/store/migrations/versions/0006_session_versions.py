"""Session versions: signing out, a new password, a new role or disabling ends sessions.

Revision ID: 0006
Revises: 0005

Sessions are signed cookies, so the server keeps nothing per session to delete. Instead
each user has a `session_version`, copied into the cookie at sign-in and compared on every
request: signing out, `users set-password`, a role change and disabling a user add one,
and every cookie issued before no longer matches, in every process at once (the users
table notifies the dashboards, see 0005). Cookies issued before this revision carry no
version and are refused: everyone signs in once after the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
