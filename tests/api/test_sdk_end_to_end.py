"""The official `incident-io` SDK against a running Beacon (a real `beacon serve` process): a client
written for incident.io works by changing only the base URL and the key, and every response parses
with the SDK's own result models — its errors included (SDK 2.29 raises `KeyError` on an error
`source` without `pointer` or a `rate_limit` without `name`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import httpx
from incident_io.api.status_pages_v2 import (
    status_pages_v2_create_status_page_incident as create_incident,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_create_status_page_incident_update as create_incident_update,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_create_status_page_maintenance as create_maintenance,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_create_status_page_maintenance_update as create_maintenance_update,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_create_status_page_retrospective_incident as create_retrospective,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_delete_status_page_maintenance as delete_maintenance,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_list_status_page_incidents as list_incidents,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_list_status_page_maintenances as list_maintenances,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_show_status_page_component_availability as show_availability,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_show_status_page_incident as show_incident,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_show_status_page_maintenance as show_maintenance,
)
from incident_io.api.status_pages_v2 import (
    status_pages_v2_update_status_page_incident as update_incident,
)
from incident_io.client import AuthenticatedClient
from incident_io.models.error_response import ErrorResponse
from incident_io.models.error_response_type import ErrorResponseType
from incident_io.models.error_source import ErrorSource
from incident_io.models.status_page_incident_affected_component_v2 import StatusPageIncidentAffectedComponentV2
from incident_io.models.status_page_incident_affected_component_v2_component_status import (
    StatusPageIncidentAffectedComponentV2ComponentStatus as ComponentStatus,
)
from incident_io.models.status_page_retrospective_incident_update_v2 import StatusPageRetrospectiveIncidentUpdateV2
from incident_io.models.status_page_retrospective_incident_update_v2_incident_status import (
    StatusPageRetrospectiveIncidentUpdateV2IncidentStatus as RetrospectiveStatus,
)
from incident_io.models.status_pages_create_status_page_incident_payload_v2 import (
    StatusPagesCreateStatusPageIncidentPayloadV2,
)
from incident_io.models.status_pages_create_status_page_incident_payload_v2_incident_status import (
    StatusPagesCreateStatusPageIncidentPayloadV2IncidentStatus as CreateStatus,
)
from incident_io.models.status_pages_create_status_page_incident_result_v2 import (
    StatusPagesCreateStatusPageIncidentResultV2,
)
from incident_io.models.status_pages_create_status_page_incident_update_payload_v2 import (
    StatusPagesCreateStatusPageIncidentUpdatePayloadV2,
)
from incident_io.models.status_pages_create_status_page_incident_update_payload_v2_incident_status import (
    StatusPagesCreateStatusPageIncidentUpdatePayloadV2IncidentStatus as UpdateStatus,
)
from incident_io.models.status_pages_create_status_page_incident_update_result_v2 import (
    StatusPagesCreateStatusPageIncidentUpdateResultV2,
)
from incident_io.models.status_pages_create_status_page_maintenance_payload_v2 import (
    StatusPagesCreateStatusPageMaintenancePayloadV2,
)
from incident_io.models.status_pages_create_status_page_maintenance_payload_v2_maintenance_status import (
    StatusPagesCreateStatusPageMaintenancePayloadV2MaintenanceStatus as MaintenanceCreateStatus,
)
from incident_io.models.status_pages_create_status_page_maintenance_result_v2 import (
    StatusPagesCreateStatusPageMaintenanceResultV2,
)
from incident_io.models.status_pages_create_status_page_maintenance_update_payload_v2 import (
    StatusPagesCreateStatusPageMaintenanceUpdatePayloadV2,
)
from incident_io.models.status_pages_create_status_page_maintenance_update_payload_v2_maintenance_status import (
    StatusPagesCreateStatusPageMaintenanceUpdatePayloadV2MaintenanceStatus as MaintenanceUpdateStatus,
)
from incident_io.models.status_pages_create_status_page_maintenance_update_result_v2 import (
    StatusPagesCreateStatusPageMaintenanceUpdateResultV2,
)
from incident_io.models.status_pages_create_status_page_retrospective_incident_payload_v2 import (
    StatusPagesCreateStatusPageRetrospectiveIncidentPayloadV2,
)
from incident_io.models.status_pages_create_status_page_retrospective_incident_result_v2 import (
    StatusPagesCreateStatusPageRetrospectiveIncidentResultV2,
)
from incident_io.models.status_pages_list_status_page_incidents_result_v2 import (
    StatusPagesListStatusPageIncidentsResultV2,
)
from incident_io.models.status_pages_list_status_page_maintenances_result_v2 import (
    StatusPagesListStatusPageMaintenancesResultV2,
)
from incident_io.models.status_pages_show_status_page_component_availability_result_v2 import (
    StatusPagesShowStatusPageComponentAvailabilityResultV2,
)
from incident_io.models.status_pages_show_status_page_incident_result_v2 import (
    StatusPagesShowStatusPageIncidentResultV2,
)
from incident_io.models.status_pages_show_status_page_maintenance_result_v2 import (
    StatusPagesShowStatusPageMaintenanceResultV2,
)
from incident_io.models.status_pages_update_status_page_incident_payload_v2 import (
    StatusPagesUpdateStatusPageIncidentPayloadV2,
)
from incident_io.models.status_pages_update_status_page_incident_result_v2 import (
    StatusPagesUpdateStatusPageIncidentResultV2,
)
from incident_io.types import UNSET, Response, Unset

from infra.api_keys import ADMIN, PUBLISH
from tests.support.live_server import create_key, live_server

T = TypeVar("T")


def parsed(response: Response[Any], status: HTTPStatus, model: type[T]) -> T:
    """The SDK's parsed result, after checking the status and that the SDK chose the result model."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, model), response.content
    return response.parsed


def present(value: T | Unset) -> T:
    assert not isinstance(value, Unset)
    return value


def affected(component_id: str, status: str) -> StatusPageIncidentAffectedComponentV2:
    return StatusPageIncidentAffectedComponentV2(component_id=component_id, component_status=ComponentStatus(status))


def setup_page(base_url: str, admin: str) -> tuple[str, str, str, str]:
    """Beacon's management endpoints (incident.io does this in its dashboard): page, components, structure."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin}"}) as http:
        page = http.post("/v2/status_pages", json={"name": "Acme", "slug": "acme"})
        assert page.status_code == 201, page.text
        page_id = page.json()["status_page"]["id"]
        ids = []
        for name in ("API", "Database"):
            component = http.post("/v2/status_page_components", json={"name": name})
            assert component.status_code == 201, component.text
            ids.append(component.json()["status_page_component"]["id"])
        items = [
            {"component": {"component_id": ids[0]}},
            {"group": {"name": "Backend", "components": [{"component_id": ids[1]}]}},
        ]
        structure = http.put(f"/v2/status_page_structures/{page_id}", json={"items": items})
        assert structure.status_code == 200, structure.text
        group_id = structure.json()["current_structure"]["items"][1]["group"]["id"]
    return page_id, ids[0], ids[1], group_id


def test_an_incident_io_client_drives_beacon_end_to_end(database_url: str, tmp_path: Path) -> None:
    admin = create_key(database_url, "admin", ADMIN)
    publisher = create_key(database_url, "automation", PUBLISH)
    with live_server(database_url, tmp_path) as server:
        page_id, api, db, backend = setup_page(server.url, admin)
        client = AuthenticatedClient(base_url=server.url, token=publisher)

        # Create an incident with components, then replay it with the same idempotency key.
        payload = StatusPagesCreateStatusPageIncidentPayloadV2(
            idempotency_key="alert-1",
            status_page_id=page_id,
            name="Login failing",
            message="We are investigating.",
            incident_status=CreateStatus.INVESTIGATING,
            notify_subscribers=False,
            component_statuses=[affected(api, "partial_outage")],
        )
        first = create_incident.sync_detailed(client=client, body=payload)
        incident = present(
            parsed(first, HTTPStatus.CREATED, StatusPagesCreateStatusPageIncidentResultV2).status_page_incident
        )
        assert [impact.component_id for impact in incident.component_impacts] == [api]
        replay = create_incident.sync_detailed(client=client, body=payload)
        replayed = parsed(replay, HTTPStatus.CREATED, StatusPagesCreateStatusPageIncidentResultV2)
        assert present(replayed.status_page_incident).id == incident.id
        assert replay.headers["Idempotent-Replayed"] == "true"

        # Post updates (partial component statuses), rename, resolve.
        update = create_incident_update.sync_detailed(
            client=client,
            body=StatusPagesCreateStatusPageIncidentUpdatePayloadV2(
                status_page_incident_id=incident.id,
                message="Database is down.",
                notify_subscribers=False,
                incident_status=UpdateStatus.IDENTIFIED,
                component_statuses=[affected(db, "full_outage")],
            ),
        )
        posted = parsed(update, HTTPStatus.CREATED, StatusPagesCreateStatusPageIncidentUpdateResultV2)
        assert present(posted.status_page_incident_update).incident_status.value == "identified"
        renamed = update_incident.sync_detailed(
            incident.id, client=client, body=StatusPagesUpdateStatusPageIncidentPayloadV2(name="Database outage")
        )
        assert present(
            parsed(renamed, HTTPStatus.OK, StatusPagesUpdateStatusPageIncidentResultV2).status_page_incident
        ).name == ("Database outage")
        resolved = create_incident_update.sync_detailed(
            client=client,
            body=StatusPagesCreateStatusPageIncidentUpdatePayloadV2(
                status_page_incident_id=incident.id,
                message="Fixed.",
                notify_subscribers=False,
                incident_status=UpdateStatus.RESOLVED,
            ),
        )
        parsed(resolved, HTTPStatus.CREATED, StatusPagesCreateStatusPageIncidentUpdateResultV2)
        shown = present(
            parsed(
                show_incident.sync_detailed(incident.id, client=client),
                HTTPStatus.OK,
                StatusPagesShowStatusPageIncidentResultV2,
            ).status_page_incident
        )
        assert (shown.name, shown.incident_status.value, len(shown.updates)) == ("Database outage", "resolved", 3)
        assert all(not isinstance(impact.end_at, Unset) for impact in shown.component_impacts)

        # A second incident, on `api` only; list with filters and pagination.
        other = create_incident.sync_detailed(
            client=client,
            body=StatusPagesCreateStatusPageIncidentPayloadV2(
                idempotency_key="alert-2",
                status_page_id=page_id,
                name="API slow",
                message="Slow.",
                incident_status=CreateStatus.INVESTIGATING,
                notify_subscribers=False,
                component_statuses=[affected(api, "degraded_performance")],
            ),
        )
        second = present(
            parsed(other, HTTPStatus.CREATED, StatusPagesCreateStatusPageIncidentResultV2).status_page_incident
        )
        first_page = parsed(
            list_incidents.sync_detailed(client=client, status_page_id=page_id, page_size=1),
            HTTPStatus.OK,
            StatusPagesListStatusPageIncidentsResultV2,
        )
        assert [i.id for i in first_page.status_page_incidents] == [second.id]
        assert first_page.pagination_meta.after == second.id
        next_page = parsed(
            list_incidents.sync_detailed(client=client, status_page_id=page_id, page_size=1, after=second.id),
            HTTPStatus.OK,
            StatusPagesListStatusPageIncidentsResultV2,
        )
        assert [i.id for i in next_page.status_page_incidents] == [incident.id]
        assert next_page.pagination_meta.after is UNSET
        in_group = parsed(
            list_incidents.sync_detailed(client=client, status_page_id=page_id, group_id=backend),
            HTTPStatus.OK,
            StatusPagesListStatusPageIncidentsResultV2,
        )
        assert [i.id for i in in_group.status_page_incidents] == [incident.id]
        since = parsed(
            list_incidents.sync_detailed(client=client, status_page_id=page_id, start_at=second.published_at),
            HTTPStatus.OK,
            StatusPagesListStatusPageIncidentsResultV2,
        )
        assert [i.id for i in since.status_page_incidents] == [second.id]

        # A maintenance window: scheduled → in progress → complete → deleted.
        start = datetime.now(UTC) + timedelta(days=30)
        window = present(
            parsed(
                create_maintenance.sync_detailed(
                    client=client,
                    body=StatusPagesCreateStatusPageMaintenancePayloadV2(
                        idempotency_key="upgrade-1",
                        status_page_id=page_id,
                        name="Database upgrade",
                        message="Scheduled.",
                        maintenance_status=MaintenanceCreateStatus.MAINTENANCE_SCHEDULED,
                        start_at=start,
                        end_at=start + timedelta(hours=2),
                        affected_component_ids=[db],
                        notify_subscribers=False,
                        automate_maintenance_status=False,
                    ),
                ),
                HTTPStatus.CREATED,
                StatusPagesCreateStatusPageMaintenanceResultV2,
            ).status_page_maintenance
        )
        assert window.maintenance_status.value == "maintenance_scheduled"
        for status in (MaintenanceUpdateStatus.MAINTENANCE_IN_PROGRESS, MaintenanceUpdateStatus.MAINTENANCE_COMPLETE):
            moved = create_maintenance_update.sync_detailed(
                client=client,
                body=StatusPagesCreateStatusPageMaintenanceUpdatePayloadV2(
                    status_page_maintenance_id=window.id,
                    message=f"Now {status.value}.",
                    notify_subscribers=False,
                    maintenance_status=status,
                ),
            )
            result = parsed(moved, HTTPStatus.CREATED, StatusPagesCreateStatusPageMaintenanceUpdateResultV2)
            assert present(result.status_page_maintenance_update).maintenance_status.value == status.value
        done = present(
            parsed(
                show_maintenance.sync_detailed(window.id, client=client),
                HTTPStatus.OK,
                StatusPagesShowStatusPageMaintenanceResultV2,
            ).status_page_maintenance
        )
        assert done.maintenance_status.value == "maintenance_complete"
        [period] = done.component_maintenance_periods
        assert period.component_id == db and not isinstance(period.end_at, Unset)
        listed = parsed(
            list_maintenances.sync_detailed(client=client, status_page_id=page_id),
            HTTPStatus.OK,
            StatusPagesListStatusPageMaintenancesResultV2,
        )
        assert [m.id for m in listed.status_page_maintenances] == [window.id]
        deleted = delete_maintenance.sync_detailed(window.id, client=client)
        assert deleted.status_code == HTTPStatus.NO_CONTENT
        gone = show_maintenance.sync_detailed(window.id, client=client)
        assert gone.status_code == HTTPStatus.NOT_FOUND and isinstance(gone.parsed, ErrorResponse)
        empty = parsed(
            list_maintenances.sync_detailed(client=client, status_page_id=page_id),
            HTTPStatus.OK,
            StatusPagesListStatusPageMaintenancesResultV2,
        )
        assert empty.status_page_maintenances == []

        # A retrospective incident.
        past = datetime.now(UTC) - timedelta(days=3)
        retrospective = present(
            parsed(
                create_retrospective.sync_detailed(
                    client=client,
                    body=StatusPagesCreateStatusPageRetrospectiveIncidentPayloadV2(
                        idempotency_key="postmortem-1",
                        status_page_id=page_id,
                        name="Last week's outage",
                        updates=[
                            StatusPageRetrospectiveIncidentUpdateV2(
                                incident_status=RetrospectiveStatus.INVESTIGATING,
                                message="Down.",
                                published_at=past,
                                component_statuses=[affected(api, "full_outage")],
                            ),
                            StatusPageRetrospectiveIncidentUpdateV2(
                                incident_status=RetrospectiveStatus.RESOLVED,
                                message="Up.",
                                published_at=past + timedelta(hours=1),
                            ),
                        ],
                    ),
                ),
                HTTPStatus.CREATED,
                StatusPagesCreateStatusPageRetrospectiveIncidentResultV2,
            ).status_page_incident
        )
        assert retrospective.incident_status.value == "resolved" and len(retrospective.updates) == 2

        # Availability of the database over the last day: it was in a full outage for part of it.
        now = datetime.now(UTC)
        availability = parsed(
            show_availability.sync_detailed(
                page_id, db, client=client, start_at=now - timedelta(days=1), end_at=now + timedelta(minutes=1)
            ),
            HTTPStatus.OK,
            StatusPagesShowStatusPageComponentAvailabilityResultV2,
        ).availability
        assert (availability.status_page_id, availability.component_id) == (page_id, db)
        percent = present(availability.availability_percent)
        assert 0 <= float(percent) < 100 and len(percent.partition(".")[2]) <= 4


def error(response: Response[Any], status: HTTPStatus, error_type: ErrorResponseType) -> ErrorResponse:
    """The SDK's parsed `ErrorResponse` (`sync_detailed` raises instead if the body lacks what it reads)."""
    result = parsed(response, status, ErrorResponse)
    assert (result.status, result.type_) == (status, error_type)
    assert result.request_id == response.headers["X-Request-Id"] and result.errors
    return result


def source(result: ErrorResponse) -> tuple[str, str, str]:
    """The first error's code and the SDK's `ErrorSource` of it, as (code, field, pointer)."""
    first = result.errors[0]
    assert isinstance(first.source, ErrorSource), first
    return first.code, first.source.field, first.source.pointer


def test_the_sdk_parses_every_error_beacon_answers(database_url: str, tmp_path: Path) -> None:
    admin = create_key(database_url, "admin", ADMIN)
    publisher = create_key(database_url, "automation", PUBLISH)
    limited = create_key(database_url, "busy script")
    # A low limit so a loop reaches it; the other keys stay far below it.
    with live_server(database_url, tmp_path, extra_env={"BEACON_RATE_LIMIT_PER_MINUTE": "60"}) as server:
        page_id, api, _, _ = setup_page(server.url, admin)
        client = AuthenticatedClient(base_url=server.url, token=publisher)
        incident = present(
            parsed(
                create_incident.sync_detailed(
                    client=client,
                    body=StatusPagesCreateStatusPageIncidentPayloadV2(
                        idempotency_key="alert-1",
                        status_page_id=page_id,
                        name="Login failing",
                        message="Investigating.",
                        incident_status=CreateStatus.INVESTIGATING,
                        notify_subscribers=False,
                    ),
                ),
                HTTPStatus.CREATED,
                StatusPagesCreateStatusPageIncidentResultV2,
            ).status_page_incident
        )

        # 422: a misspelt body field, sent as a client with a typo would (the SDK passes unknown keys on).
        typo = StatusPagesCreateStatusPageIncidentPayloadV2(
            idempotency_key="alert-2",
            status_page_id=page_id,
            name="API down",
            message="Down.",
            incident_status=CreateStatus.INVESTIGATING,
            notify_subscribers=False,
        )
        typo.additional_properties["componnet_statuses"] = [{"component_id": api, "component_status": "full_outage"}]
        unknown_field = error(
            create_incident.sync_detailed(client=client, body=typo),
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponseType.VALIDATION_ERROR,
        )
        assert source(unknown_field) == ("unknown_field", "componnet_statuses", "/componnet_statuses")
        assert "did you mean 'component_statuses'?" in unknown_field.errors[0].message

        # 422: a query parameter the list does not take (merged into the SDK's own parameters by httpx).
        with_stray = AuthenticatedClient(
            base_url=server.url, token=publisher, httpx_args={"params": {"componnet_id": api}}
        )
        unknown_parameter = error(
            list_incidents.sync_detailed(client=with_stray, status_page_id=page_id),
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponseType.VALIDATION_ERROR,
        )
        assert source(unknown_parameter) == ("unknown_parameter", "componnet_id", "?componnet_id")

        # 422: a status this SDK does not know (as a newer or older client might send).
        update = StatusPagesCreateStatusPageIncidentUpdatePayloadV2(
            status_page_incident_id=incident.id, message="Worse.", notify_subscribers=False
        )
        update.additional_properties["incident_status"] = "on_fire"
        bad_enum = error(
            create_incident_update.sync_detailed(client=client, body=update),
            HTTPStatus.UNPROCESSABLE_ENTITY,
            ErrorResponseType.VALIDATION_ERROR,
        )
        assert source(bad_enum) == ("invalid_enum", "incident_status", "/incident_status")

        # 404: no such incident.
        missing = error(
            show_incident.sync_detailed("01ARZ3NDEKTSV4RRFFQ69G5FAV", client=client),
            HTTPStatus.NOT_FOUND,
            ErrorResponseType.NOT_FOUND,
        )
        assert missing.errors[0].code == "not_found"

        # 409: no SDK operation reaches a Beacon route that conflicts on demand, so a page with a taken
        # slug (Beacon's own route) is read with the model every SDK operation parses a 409 with.
        taken = AuthenticatedClient(base_url=server.url, token=admin).get_httpx_client().post(
            "/v2/status_pages", json={"name": "Acme again", "slug": "acme"}
        )
        assert taken.status_code == HTTPStatus.CONFLICT, taken.text
        conflict = ErrorResponse.from_dict(taken.json())
        assert (conflict.status, conflict.type_) == (HTTPStatus.CONFLICT, ErrorResponseType.CONFLICT)
        assert source(conflict)[1:] == ("slug", "/slug")

        # 429: a key over its limit, with which limit, when to retry and `Retry-After` in seconds.
        busy = AuthenticatedClient(base_url=server.url, token=limited)
        for _ in range(200):  # the limit is 60 at once, refilled at one a second
            answer = list_incidents.sync_detailed(client=busy, status_page_id=page_id)
            if answer.status_code != HTTPStatus.OK:
                break
        too_many = error(answer, HTTPStatus.TOO_MANY_REQUESTS, ErrorResponseType.TOO_MANY_REQUESTS)
        rate_limit = too_many.rate_limit
        assert not isinstance(rate_limit, Unset)
        assert (rate_limit.name, rate_limit.limit, rate_limit.remaining) == ("api_key", 60, 0)
        retry_at = datetime.fromisoformat(rate_limit.retry_after)
        assert retry_at.tzinfo is not None and rate_limit.retry_after.endswith("Z")
        assert int(answer.headers["Retry-After"]) >= 1
