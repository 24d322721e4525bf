"""Change notifications: PostgreSQL tells the dashboard when what it serves has changed.

Revision ID: 0005
Revises: 0004

A statement-level trigger on each table the dashboard's answers are read from sends
`NOTIFY wa_monitor_changes, '<table>'` when a statement changes it, whoever runs the
statement (the monitor, a dashboard, a `wa-monitor users` command, an administrator's
SQL). PostgreSQL delivers notifications when the transaction commits, once per table and
transaction, and drops those of a rolled-back one. `wa-monitor serve` listens (see
wa_monitor/web/changes.py) and keeps its answers in memory until a notification says
they are stale. SQLite has no notifications: nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHANNEL = "wa_monitor_changes"
TABLES = ("qa_photo_reviews", "feedback_outbox", "users", "api_tokens")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION wa_monitor_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_change "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION wa_monitor_notify_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    op.execute("DROP FUNCTION IF EXISTS wa_monitor_notify_change()")
