"""A page's history as Atom and RSS 2.0 (docs/architecture.md#public-site), the way Statuspage publishes
them: one entry per incident or maintenance window, newest latest update first; entry ids
`urn:beacon:{incident|maintenance}:{id}`, which no host and no edit ever changes; the content is the whole
update timeline as HTML, newest first.

Written with the standard library's XML escaping rather than a feed library: the two formats need a
dozen elements, and the bytes must be a function of the log alone (no generator timestamp, no library
version in the output), so a rebuild is byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape as html_escape
from xml.sax.saxutils import escape, quoteattr

from projections.statuspage import NoticeFacts, notice_status, shortlink, timestamp

_STATUS_WORD = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "scheduled": "Scheduled",
    "in_progress": "In progress",
    "completed": "Completed",
}


def entry_id(notice: NoticeFacts) -> str:
    return f"urn:beacon:{notice.kind}:{notice.id}"


def timeline_html(notice: NoticeFacts) -> str:
    """The update timeline, newest first, as escaped HTML paragraphs (the message is shown as written)."""
    parts = []
    for update in reversed(notice.updates):
        status = notice_status(notice.kind, update.status)
        parts.append(
            f"<p><small>{html_escape(timestamp(update.published_at))}</small><br>"
            f"<strong>{html_escape(_STATUS_WORD.get(status, status))}</strong> - {html_escape(update.message)}</p>"
        )
    return "".join(parts)


def _link(notice: NoticeFacts, base_url: str | None, prefix: str) -> str:
    """The notice's page: absolute on the canonical URL, else its path on Beacon's own host."""
    kind = "incidents" if notice.kind == "incident" else "maintenances"
    return shortlink(base_url, notice.kind, notice.id) or f"{prefix}/{kind}/{notice.id}"


def atom(
    *, page_id: str, title: str, base_url: str | None, prefix: str, updated: datetime, entries: Sequence[NoticeFacts]
) -> bytes:
    """`history.atom`. `updated` is the page's `updated_at` (from the log, never the clock)."""
    home = base_url or prefix
    updated = max([updated, *(notice.updated_at for notice in entries)])
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">',
        f"<id>urn:beacon:page:{escape(page_id)}</id>",
        f"<title>{escape(title)} status history</title>",
        f'<link rel="alternate" type="text/html" href={quoteattr(home)}/>',
        f'<link rel="self" type="application/atom+xml" href={quoteattr(home + "/history.atom")}/>',
        f"<updated>{timestamp(updated)}</updated>",
        f"<author><name>{escape(title)}</name></author>",
    ]
    for notice in entries:
        lines += [
            "<entry>",
            f"<id>{entry_id(notice)}</id>",
            f"<title>{escape(notice.name)}</title>",
            f"<published>{timestamp(notice.created_at)}</published>",
            f"<updated>{timestamp(notice.updated_at)}</updated>",
            f'<link rel="alternate" type="text/html" href={quoteattr(_link(notice, base_url, prefix))}/>',
            f'<content type="html">{escape(timeline_html(notice))}</content>',
            "</entry>",
        ]
    lines.append("</feed>")
    return ("\n".join(lines) + "\n").encode()


def _rfc822(instant: datetime) -> str:
    return format_datetime(instant.astimezone(UTC), usegmt=True)


def rss(*, title: str, base_url: str | None, prefix: str, updated: datetime, entries: Sequence[NoticeFacts]) -> bytes:
    """`history.rss` (RSS 2.0)."""
    home = base_url or prefix
    updated = max([updated, *(notice.updated_at for notice in entries)])
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"<title>{escape(title)} status history</title>",
        f"<link>{escape(home)}</link>",
        f"<description>Incidents and maintenance of {escape(title)}</description>",
        "<language>en</language>",
        f"<lastBuildDate>{_rfc822(updated)}</lastBuildDate>",
        f'<atom:link href={quoteattr(home + "/history.rss")} rel="self" type="application/rss+xml"/>',
    ]
    for notice in entries:
        lines += [
            "<item>",
            f"<title>{escape(notice.name)}</title>",
            f"<link>{escape(_link(notice, base_url, prefix))}</link>",
            f'<guid isPermaLink="false">{entry_id(notice)}</guid>',
            f"<pubDate>{_rfc822(notice.updated_at)}</pubDate>",
            f"<description>{escape(timeline_html(notice))}</description>",
            "</item>",
        ]
    lines += ["</channel>", "</rss>"]
    return ("\n".join(lines) + "\n").encode()
