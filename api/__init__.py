"""Beacon's HTTP API (Litestar) and CLI. Nothing else imports this package."""
