"""The review database: its one door, the batch writes, schema, migrations and named SQL."""
