"""Beacon's domain: aggregates, their events, rules and errors, and the handlers that run commands."""
