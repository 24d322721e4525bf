"""The lookup the monitor's batch makes in the projects' drop lists (see store/drop_lists).

Apart from store/drop_lists so that review_store, which runs it inside the batch's first
statement, and drop_lists, which works through a ReviewStore, need not import each other.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core.reviews import Key

# The keys of a batch whose project has a list that lacks the drop, per dialect: one
# statement for 1 key or 5,000 (:rows = [{project, drop_number}]), two primary-key probes
# per key. review_store runs it in the same statement as the batch's existing reviews.
UNLISTED_SQL = {
    "postgresql": """
    SELECT k.project, k.drop_number
    FROM json_to_recordset(CAST(:rows AS json)) AS k(project text, drop_number text)
    WHERE EXISTS (SELECT 1 FROM drop_lists AS l WHERE l.project = k.project)
      AND NOT EXISTS (
        SELECT 1 FROM drop_lists AS l
        WHERE l.project = k.project AND l.drop_number = k.drop_number
      )
    """,
    "sqlite": """
    SELECT k.project, k.drop_number
    FROM (
        SELECT json_extract(value, '$.project') AS project,
               json_extract(value, '$.drop_number') AS drop_number
        FROM json_each(:rows)
    ) AS k
    WHERE EXISTS (SELECT 1 FROM drop_lists AS l WHERE l.project = k.project)
      AND NOT EXISTS (
        SELECT 1 FROM drop_lists AS l
        WHERE l.project = k.project AND l.drop_number = k.drop_number
      )
    """,
}
_UNLISTED = {dialect: sa.text(text) for dialect, text in UNLISTED_SQL.items()}


def unlisted(conn: Connection, keys: Collection[Key]) -> set[Key]:
    """The (project, drop) keys whose project has a list that lacks the drop."""
    if not keys:
        return set()
    rows = json.dumps([{"project": p, "drop_number": d} for p, d in sorted(keys)])
    query = _UNLISTED["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    return {(p, d) for p, d in conn.execute(query, {"rows": rows})}
