"""Every projection Beacon runs, in one list: the runner, rebuilds and replay checks all start here."""

from __future__ import annotations

from projections.component_availability import ComponentAvailability
from projections.incident_list import incident_list
from projections.maintenance_list import maintenance_list
from projections.maintenance_schedule import MaintenanceSchedule
from projections.notification_outbox import NotificationOutbox
from projections.public_hosts import PublicHosts
from projections.public_site import PublicSite
from projections.public_widget import PublicWidget
from projections.runner import Projection
from projections.site_history import SiteHistory
from projections.status_page_catalog import StatusPageCatalog
from projections.subscriber_list import SubscriberList
from projections.widget_history import WidgetHistory


def all_projections() -> list[Projection]:
    return [
        StatusPageCatalog(),
        MaintenanceSchedule(),
        PublicWidget(),
        incident_list(),
        maintenance_list(),
        ComponentAvailability(),
        WidgetHistory(),
        SiteHistory(),
        NotificationOutbox(),
        SubscriberList(),
        PublicSite(),
        PublicHosts(),
    ]
