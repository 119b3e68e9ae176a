"""The words a reader sees for a status, one mapping for every place Beacon writes them in prose: the public
pages and feeds, and notification mails. The same update must read the same on the page and in the mail."""

from __future__ import annotations

from collections.abc import Mapping

STATUS_WORDS: Mapping[str, str] = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "full_outage": "Full outage",
    "major_outage": "Full outage",  # Statuspage's name for it, in rows mapped for its JSON
    "under_maintenance": "Under maintenance",
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "maintenance_scheduled": "Scheduled",
    "maintenance_in_progress": "In progress",
    "maintenance_complete": "Completed",
    "no_data": "No data",
}


def status_word(status: str) -> str:
    """`partial_outage` → `Partial outage`; an unknown status reads as itself, spaced and capitalised."""
    return STATUS_WORDS.get(status, status.replace("_", " ").capitalize())
