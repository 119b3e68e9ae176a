"""Beacon's infrastructure: settings, clock, ids, the Postgres event store, migrations, embedded Postgres."""
