"""The maintenance list: ListStatusPageMaintenances and ShowStatusPageMaintenance, and the one mapping
from a `Maintenance` to incident.io's wire shape (StatusPageMaintenanceV2, plus Beacon's `start_at` and
`end_at` of the window) that the write path answers with too. A deleted window leaves the list."""

from __future__ import annotations

import msgspec

from domain.maintenance import Maintenance
from domain.notice import Update
from infra.clock import format_timestamp
from infra.ids import uuid_to_ulid
from projections.notice_list import AffectedComponent, NoticeList, component_statuses_view, timestamp

TABLE = "maintenance_list"


class StatusPageMaintenanceUpdate(msgspec.Struct):
    id: str
    status_page_maintenance_id: str
    published_at: str
    message: str
    maintenance_status: str
    component_statuses: list[AffectedComponent]


class StatusPageMaintenancePeriod(msgspec.Struct, omit_defaults=True):
    component_id: str
    start_at: str
    end_at: str | None = None


class StatusPageMaintenance(msgspec.Struct):
    id: str
    status_page_id: str
    name: str
    published_at: str
    maintenance_status: str
    automate_maintenance_status: bool
    updates: list[StatusPageMaintenanceUpdate]
    component_maintenance_periods: list[StatusPageMaintenancePeriod]
    start_at: str
    end_at: str


def update_view(maintenance_id: str, update: Update) -> StatusPageMaintenanceUpdate:
    return StatusPageMaintenanceUpdate(
        id=update.id,
        status_page_maintenance_id=maintenance_id,
        published_at=format_timestamp(update.published_at),
        message=update.message,
        maintenance_status=update.status,
        component_statuses=component_statuses_view(update),
    )


def maintenance_view(maintenance: Maintenance) -> StatusPageMaintenance:
    maintenance_id = uuid_to_ulid(maintenance.id)
    return StatusPageMaintenance(
        id=maintenance_id,
        status_page_id=maintenance.status_page_id,
        name=maintenance.name,
        published_at=format_timestamp(maintenance.published_at),
        maintenance_status=maintenance.status,
        automate_maintenance_status=maintenance.automate_maintenance_status,
        updates=[update_view(maintenance_id, update) for update in maintenance.updates],
        component_maintenance_periods=[
            StatusPageMaintenancePeriod(
                component_id=period.component_id,
                start_at=format_timestamp(period.start_at),
                end_at=timestamp(period.end_at),
            )
            for period in maintenance.component_maintenance_periods
        ],
        start_at=format_timestamp(maintenance.start_at),
        end_at=format_timestamp(maintenance.end_at),
    )


def _is_deleted(maintenance: Maintenance) -> bool:
    return maintenance.deleted


def maintenance_list() -> NoticeList:
    """The `maintenance_list` projection."""
    return NoticeList(
        name="maintenance_list",
        table=TABLE,
        stream_type=Maintenance.STREAM_TYPE,
        notice_class=Maintenance,
        render=maintenance_view,
        is_gone=_is_deleted,
    )
