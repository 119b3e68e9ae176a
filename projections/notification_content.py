"""What a notification says, fixed as of the update that caused it (docs/architecture.md#notification-outbox).

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

from infra.clock import format_timestamp
from projections import statuspage
from projections.markdown import render_markdown
from projections.status_words import status_word

DOCUMENTATION_URL = "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/"
"""`meta.documentation` of every webhook body: the body is Statuspage's, so is its documentation."""

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
    notify_subscribers: bool = True


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
    edited_at: datetime | None = None
    component_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def update(self) -> UpdateFacts:
        return self.updates[-1]


def notice_url(page_url: str | None, kind: str, notice_id: str) -> str | None:
    """The notice on the public page: `{page URL}/incidents/{id}` or `/maintenances/{id}`."""
    return statuspage.shortlink(page_url, kind, notice_id)


def page_host(page_url: str | None) -> str | None:
    return urlsplit(page_url).hostname if page_url else None


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
            "status_word": status_word(status),
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
        # The notice's first notifying update starts the mail thread (its Message-ID is the thread's root).
        "first_update": not any(earlier.notify_subscribers for earlier in notice.updates[:-1]),
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


# The Statuspage webhook body: Statuspage's incident object as projections/statuspage.py maps it, the same
# object the public site's JSON serves.


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
        "incident": statuspage.incident(
            statuspage_notice(notice), page_id=page.id, base_url=page.url, components=_component_rows(notice)
        ),
    }


def statuspage_notice(notice: NoticeFacts) -> statuspage.NoticeFacts:
    """The notice as projections/statuspage.py takes it, as of its last update."""
    updates = []
    before: dict[str, str] = {}
    worst: str | None = None
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    for update in notice.updates:
        changes = statuspage.component_changes(before, list(update.component_statuses.items()), notice.component_names)
        before.update(update.component_statuses)
        if notice.kind == "incident" and update.status != "resolved":
            worst = statuspage.worst_status([*([worst] if worst else []), *update.component_statuses.values()])
        if update.status == "monitoring" and monitoring_at is None:
            monitoring_at = update.published_at
        if update.status in ("resolved", "maintenance_complete"):
            resolved_at = update.published_at
        updates.append(
            statuspage.UpdateFacts(
                id=update.id,
                status=update.status,
                message=update.message,
                published_at=update.published_at,
                notify_subscribers=update.notify_subscribers,
                changes=changes,
            )
        )
    last = notice.update
    return statuspage.NoticeFacts(
        id=notice.id,
        kind=notice.kind,
        name=notice.name,
        status=last.status,
        created_at=notice.created_at,
        updated_at=max(last.published_at, notice.edited_at or last.published_at),
        updates=tuple(updates),
        worst_reached=None if worst in (None, "operational") else worst,
        monitoring_at=monitoring_at,
        resolved_at=resolved_at,
        scheduled_for=notice.start_at,
        scheduled_until=notice.end_at,
        started_at=statuspage.window_started_at((u.status, u.published_at) for u in notice.updates)
        if notice.kind == "maintenance"
        else None,
    )


def _component_rows(notice: NoticeFacts) -> list[statuspage.ComponentFacts]:
    """The components the notice affects, each with the status the notice gives it."""
    rows = []
    for position, (component_id, status) in enumerate(notice.component_statuses.items(), start=1):
        changed = [u.published_at for u in notice.updates if component_id in u.component_statuses]
        rows.append(
            statuspage.ComponentFacts(
                id=component_id,
                name=notice.component_names.get(component_id, ""),
                status=status,
                created_at=changed[0],
                updated_at=changed[-1],
                position=position,
                description=None,
                showcase=True,
                start_date=None,
                group_id=None,
            )
        )
    return rows
