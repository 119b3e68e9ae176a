"""The incident list: ListStatusPageIncidents and ShowStatusPageIncident, and the one mapping from an
`Incident` to incident.io's wire shape (StatusPageIncidentV2) that the write path answers with too."""

from __future__ import annotations

import msgspec

from domain.incident import Incident
from domain.notice import Update
from infra.clock import format_timestamp
from infra.ids import uuid_to_ulid
from projections.notice_list import AffectedComponent, NoticeList, component_statuses_view, timestamp

TABLE = "incident_list"


class StatusPageIncidentUpdate(msgspec.Struct):
    id: str
    status_page_incident_id: str
    published_at: str
    message: str
    incident_status: str
    component_statuses: list[AffectedComponent]


class StatusPageIncidentComponentImpact(msgspec.Struct, omit_defaults=True):
    component_id: str
    component_status: str
    start_at: str
    end_at: str | None = None


class StatusPageIncident(msgspec.Struct):
    id: str
    status_page_id: str
    name: str
    published_at: str
    incident_status: str
    updates: list[StatusPageIncidentUpdate]
    component_impacts: list[StatusPageIncidentComponentImpact]


def update_view(incident_id: str, update: Update) -> StatusPageIncidentUpdate:
    return StatusPageIncidentUpdate(
        id=update.id,
        status_page_incident_id=incident_id,
        published_at=format_timestamp(update.published_at),
        message=update.message,
        incident_status=update.status,
        component_statuses=component_statuses_view(update),
    )


def incident_view(incident: Incident) -> StatusPageIncident:
    """The incident as incident.io shows it: updates oldest first, impacts by start."""
    incident_id = uuid_to_ulid(incident.id)
    return StatusPageIncident(
        id=incident_id,
        status_page_id=incident.status_page_id,
        name=incident.name,
        published_at=format_timestamp(incident.published_at),
        incident_status=incident.status,
        updates=[update_view(incident_id, update) for update in incident.updates],
        component_impacts=[
            StatusPageIncidentComponentImpact(
                component_id=impact.component_id,
                component_status=impact.component_status.value,
                start_at=format_timestamp(impact.start_at),
                end_at=timestamp(impact.end_at),
            )
            for impact in incident.component_impacts
        ],
    )


def incident_list() -> NoticeList:
    """The `incident_list` projection."""
    return NoticeList(
        name="incident_list",
        table=TABLE,
        stream_type=Incident.STREAM_TYPE,
        notice_class=Incident,
        render=incident_view,
    )
