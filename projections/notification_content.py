"""What a notification says, fixed as of the update that caused it (docs/architecture.md#notifications).

Pure functions from the outbox's folded state (a page, a notice up to one update, the component names)
to the `content` document of one `beacon_notification_messages` row: the subject, the text and HTML
parts, and the Statuspage webhook body. Nothing here is per subscriber: links carrying a subscriber's
token, `List-Unsubscribe`, `Message-ID` and `meta.unsubscribe` are added at send time by the dispatcher,
from this content and the subscriber's id, so every retry of a delivery is byte-identical.

Markdown in update messages is rendered with raw HTML disabled and the result sanitised again, so an
update can never put markup of its own into a subscriber's mailbox.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nh3
from markdown_it import MarkdownIt

from infra.clock import format_timestamp

STATUS_WORDS: Mapping[str, str] = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "maintenance_scheduled": "Scheduled",
    "maintenance_in_progress": "In progress",
    "maintenance_complete": "Completed",
}

COMPONENT_STATUS_WORDS: Mapping[str, str] = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "full_outage": "Full outage",
    "under_maintenance": "Under maintenance",
}

DOCUMENTATION_URL = "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/"
"""`meta.documentation` of every webhook body: the body is Statuspage's, so is its documentation."""

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False})


@dataclass(frozen=True)
class PageFacts:
    """A status page as the outbox knows it at one log position."""

    id: str
    name: str
    slug: str
    url: str | None
    """The page's canonical public URL, None while neither a public URL nor a base URL is known."""
    time_zone: str = "UTC"
    status_indicator: str = "none"
    status_description: str = "All Systems Operational"


@dataclass(frozen=True)
class UpdateFacts:
    """One published update of a notice."""

    id: str
    published_at: datetime
    message: str
    status: str
    component_statuses: Mapping[str, str]


@dataclass(frozen=True)
class NoticeFacts:
    """An incident or maintenance window as of one of its updates (`updates` oldest first, ending there)."""

    id: str
    kind: str
    """"incident" or "maintenance"."""
    name: str
    created_at: datetime
    updates: Sequence[UpdateFacts]
    component_statuses: Mapping[str, str]
    """The current status of every component the notice has named so far, in the order first named."""
    start_at: datetime | None = None
    end_at: datetime | None = None
    component_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def update(self) -> UpdateFacts:
        return self.updates[-1]


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status.replace("_", " ").capitalize())


def notice_url(page_url: str | None, kind: str, notice_id: str) -> str | None:
    """The notice on the public page: `{page URL}/incidents/{id}` or `/maintenances/{id}`."""
    if page_url is None:
        return None
    return f"{page_url.rstrip('/')}/{'incidents' if kind == 'incident' else 'maintenances'}/{notice_id}"


def page_host(page_url: str | None) -> str | None:
    return urlsplit(page_url).hostname if page_url else None


def render_markdown(message: str) -> str:
    """An update's message as safe HTML: no raw HTML, no scripts, links kept and marked nofollow."""
    return nh3.clean(_MARKDOWN.render(message), link_rel="nofollow noopener noreferrer")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_times(instant: datetime, time_zone: str) -> str:
    """`2026-01-28 10:00 UTC (11:00 CET)`; the page's zone only when it is not UTC."""
    utc = instant.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M UTC")
    if time_zone in ("UTC", "Etc/UTC"):
        return text
    local = instant.astimezone(_zone(time_zone))
    day = "" if local.date() == utc.date() else local.strftime("%Y-%m-%d ")
    return f"{text} ({day}{local.strftime('%H:%M')} {local.tzname() or time_zone})"


def update_content(page: PageFacts, notice: NoticeFacts) -> dict[str, Any]:
    """The `content` of an update's message: everything the mail and the webhook need, nothing per
    subscriber (see the module docstring)."""
    update = notice.update
    word = status_word(update.status)
    link = notice_url(page.url, notice.kind, notice.id)
    components = [
        {
            "id": cid,
            "name": notice.component_names.get(cid, cid),
            "status": status,
            "status_word": COMPONENT_STATUS_WORDS.get(status, status),
        }
        for cid, status in notice.component_statuses.items()
    ]
    subject = f"[{page.name}] {notice.name} — {word}"
    return {
        "subject": subject,
        "status": update.status,
        "status_word": word,
        "page": {
            "id": page.id,
            "name": page.name,
            "slug": page.slug,
            "url": page.url,
            "host": page_host(page.url),
            "time_zone": page.time_zone,
        },
        "notice": {"id": notice.id, "kind": notice.kind, "name": notice.name, "url": link},
        "update": {
            "id": update.id,
            "published_at": format_timestamp(update.published_at),
            "message": update.message,
        },
        "components": components,
        "text": _text(page, notice, word, components, link),
        "html": _html(page, notice, word, components, link),
        "webhook": webhook_body(page, notice),
    }


def _window(notice: NoticeFacts, time_zone: str) -> str | None:
    if notice.start_at is None or notice.end_at is None:
        return None
    return f"{format_times(notice.start_at, time_zone)} to {format_times(notice.end_at, time_zone)}"


def _text(
    page: PageFacts, notice: NoticeFacts, word: str, components: Sequence[Mapping[str, str]], link: str | None
) -> str:
    update = notice.update
    lines = [f"{notice.name} — {word}", "", update.message.strip(), ""]
    lines.append(f"Posted {format_times(update.published_at, page.time_zone)}")
    window = _window(notice, page.time_zone)
    if window is not None:
        lines.append(f"Scheduled {window}")
    if components:
        lines += ["", "Affected components:"]
        lines += [f"- {c['name']}: {c['status_word']}" for c in components]
    if link is not None:
        lines += ["", f"Details: {link}"]
    return "\n".join(lines) + "\n"


def _html(
    page: PageFacts, notice: NoticeFacts, word: str, components: Sequence[Mapping[str, str]], link: str | None
) -> str:
    update = notice.update
    escape = html.escape
    parts = [
        f"<h1>{escape(notice.name)} — {escape(word)}</h1>",
        render_markdown(update.message),
        f"<p>Posted {escape(format_times(update.published_at, page.time_zone))}</p>",
    ]
    window = _window(notice, page.time_zone)
    if window is not None:
        parts.append(f"<p>Scheduled {escape(window)}</p>")
    if components:
        items = "".join(f"<li>{escape(c['name'])}: {escape(c['status_word'])}</li>" for c in components)
        parts.append(f"<p>Affected components:</p><ul>{items}</ul>")
    if link is not None:
        parts.append(f'<p><a href="{escape(link)}">View this {_kind_word(notice.kind)} on {escape(page.name)}</a></p>')
    return "\n".join(parts) + "\n"


def _kind_word(kind: str) -> str:
    return "incident" if kind == "incident" else "maintenance"


def confirmation_content(page: PageFacts, *, sub_page_name: str | None = None) -> dict[str, Any]:
    """A confirmation mail's fixed part; the dispatcher adds the subscriber's confirm link."""
    scope = f"{page.name} — {sub_page_name}" if sub_page_name else page.name
    subject = f"[{page.name}] Confirm your subscription"
    text = (
        f"Someone (hopefully you) asked to be told by email about incidents and maintenance on {scope}.\n"
        "Confirm with the link below; if it was not you, ignore this mail and nothing will be sent.\n"
    )
    return {
        "subject": subject,
        "page": {"id": page.id, "name": page.name, "slug": page.slug, "url": page.url, "host": page_host(page.url)},
        "text": text,
        "html": "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines()) + "\n",
    }


def webhook_disabled_content(page: PageFacts, *, reason: str) -> dict[str, Any]:
    """A "your webhook was disabled" notice to the webhook's contact address (if it has one)."""
    subject = f"[{page.name}] Your webhook was disabled"
    text = (
        f"Beacon stopped delivering notifications of {page.name} to your webhook: {reason}.\n"
        "An administrator of the page can enable it again once the receiver works.\n"
    )
    return {
        "subject": subject,
        "reason": reason,
        "page": {"id": page.id, "name": page.name, "slug": page.slug, "url": page.url, "host": page_host(page.url)},
        "text": text,
        "html": "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines()) + "\n",
    }


# The Statuspage webhook body. The incident object is Statuspage's (maintenance sent as Statuspage sends
# scheduled maintenance: an incident with scheduled_for / scheduled_until).

_STATUSPAGE_STATUS = {
    "maintenance_scheduled": "scheduled",
    "maintenance_in_progress": "in_progress",
    "maintenance_complete": "completed",
}
_STATUSPAGE_COMPONENT_STATUS = {"full_outage": "major_outage"}
_IMPACT = {
    "degraded_performance": "minor",
    "partial_outage": "major",
    "full_outage": "critical",
    "under_maintenance": "maintenance",
}
_IMPACT_ORDER = ("none", "maintenance", "minor", "major", "critical")


def statuspage_status(status: str) -> str:
    return _STATUSPAGE_STATUS.get(status, status)


def statuspage_component_status(status: str) -> str:
    return _STATUSPAGE_COMPONENT_STATUS.get(status, status)


def _impact(statuses: Sequence[str]) -> str:
    impacts = [_IMPACT.get(status, "none") for status in statuses]
    return max(impacts, key=_IMPACT_ORDER.index, default="none")


PAGE_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}


def page_status(open_component_statuses: Sequence[str]) -> tuple[str, str]:
    """Statuspage's page `status_indicator` and `status_description` from the current component
    statuses of the page's open notices."""
    indicator = _impact(open_component_statuses)
    return indicator, PAGE_DESCRIPTIONS[indicator]


def statuspage_incident(page: PageFacts, notice: NoticeFacts) -> dict[str, Any]:
    """Statuspage's incident object for the notice as of its last update, updates newest first."""
    first = notice.updates[0]
    last = notice.update
    is_maintenance = notice.kind == "maintenance"

    def at(status: str) -> str | None:
        for update in notice.updates:
            if update.status == status:
                return format_timestamp(update.published_at)
        return None

    updates = []
    previous: dict[str, str] = {}
    history = []
    for update in notice.updates:
        affected = [
            {
                "code": cid,
                "name": notice.component_names.get(cid, cid),
                "old_status": statuspage_component_status(previous.get(cid, "operational")),
                "new_status": statuspage_component_status(status),
            }
            for cid, status in update.component_statuses.items()
        ]
        previous.update(update.component_statuses)
        published = format_timestamp(update.published_at)
        history.append(
            {
                "id": update.id,
                "incident_id": notice.id,
                "status": statuspage_status(update.status),
                "body": update.message,
                "created_at": published,
                "updated_at": published,
                "display_at": published,
                "affected_components": affected,
                "deliver_notifications": True,
            }
        )
    updates = list(reversed(history))
    resolved_status = "maintenance_complete" if is_maintenance else "resolved"
    return {
        "id": notice.id,
        "name": notice.name,
        "status": statuspage_status(last.status),
        "impact": _impact(list(notice.component_statuses.values()) or []) if not is_maintenance else "maintenance",
        "created_at": format_timestamp(notice.created_at),
        "updated_at": format_timestamp(last.published_at),
        "started_at": format_timestamp(first.published_at),
        "monitoring_at": None if is_maintenance else at("monitoring"),
        "resolved_at": at(resolved_status),
        "shortlink": notice_url(page.url, notice.kind, notice.id),
        "page_id": page.id,
        "scheduled_for": format_timestamp(notice.start_at) if is_maintenance and notice.start_at else None,
        "scheduled_until": format_timestamp(notice.end_at) if is_maintenance and notice.end_at else None,
        "components": [
            {
                "id": cid,
                "name": notice.component_names.get(cid, cid),
                "status": statuspage_component_status(status),
                "page_id": page.id,
            }
            for cid, status in notice.component_statuses.items()
        ],
        "incident_updates": updates,
    }


def webhook_body(page: PageFacts, notice: NoticeFacts) -> dict[str, Any]:
    """Statuspage's subscriber webhook body; the dispatcher adds `meta.unsubscribe` per subscriber."""
    return {
        "meta": {
            "documentation": DOCUMENTATION_URL,
            "generated_at": format_timestamp(notice.update.published_at),
        },
        "page": {
            "id": page.id,
            "status_indicator": page.status_indicator,
            "status_description": page.status_description,
        },
        "incident": statuspage_incident(page, notice),
    }
