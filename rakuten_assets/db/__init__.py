"""Database logic with no Dagster import: schema, migrations, the audited loader, snapshots."""
