"""What the tests share: builders, the given/when/then of aggregates, polling, HTTP helpers, databases and
live servers. Tests import from here, never from one another (conftest files hold only fixtures)."""
