"""Process managers (docs/architecture.md#layers): components that turn events and time into commands, as
Beacon's own `system` actor. They read the read models that tell them what is due and decide nothing
themselves: the aggregate's rules decide. Today the maintenance scheduler; they run in the background worker
(`api/processes.py`), never in a projection's transaction."""
