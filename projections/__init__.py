"""Read models folded from the event log, the runner that keeps them current, and their queries."""
