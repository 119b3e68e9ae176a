"""The public site's HTML (docs/architecture.md#public-site): views (projections/public_site_view.py) in, whole
documents out as bytes, through the Jinja2 templates in projections/public_site_templates/ (autoescaped).

What every page keeps to, and how:

- Complete without JavaScript: there is none. Groups fold with `<details>`, the subscribe form is a plain
  `POST`, the 90-day bars are a list whose every cell carries its day as text (visually hidden, and as a
  tooltip), so a screen reader or a text browser reads the same facts the colours show.
- No request to another host: the stylesheet is inline, the icons are inline SVG, the favicon is a `data:` URL,
  fonts are the system's. A Content-Security-Policy `<meta>` says so to the browser as well: nothing but
  this page's own style (by hash), `data:` images and forms posted to Beacon.
- Update messages are Markdown, rendered as everywhere else (projections/markdown.py: no raw HTML, no
  images, sanitised by nh3).
- Times are `<time datetime="…Z">` (UTC) around the view's text in the page's zone, which names the zone.
- The error pages the public routes answer to browsers (404, 503, and whatever a subscription request
  answers) use the same look: `render_message_page`.

No clock, no I/O: a document is a function of its view, so a rebuild renders the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape

from projections.markdown import render_markdown
from projections.public_site_view import ComponentView, HistoryView, IndexView, NoticePageView, PageView

CONTENT_TYPE = "text/html; charset=utf-8"

_TEMPLATES = "public_site_templates"


@dataclass(frozen=True)
class MessageForm:
    """A one-button form on a message page: how a link from a mail (confirm, unsubscribe) changes state only
    on `POST`, since link scanners prefetch every `GET`."""

    action: str
    button: str
    fields: tuple[tuple[str, str], ...] = field(default=())
    """Hidden inputs (`("token", "…")`)."""


def render_index(view: IndexView) -> bytes:
    """`GET /{slug}`: the banner, ongoing notices, components with their bars, past incidents, the form."""
    tone = "maintenance" if view.banner.maintenance else view.banner.indicator
    return _render("index.html", view.page, view=view, brand_heading=True, favicon=_favicon(tone))


def render_history(view: HistoryView) -> bytes:
    """`GET /{slug}/history` and `/{slug}/history/{YYYY-MM}`."""
    return _render("history.html", view.page, view=view)


def render_notice(view: NoticePageView) -> bytes:
    """`GET /{slug}/incidents/{id}` and `/{slug}/maintenances/{id}`: the whole timeline."""
    return _render("notice.html", view.page, notice=view.notice)


def render_message_page(
    *,
    status_code: int,
    title: str,
    paragraphs: Sequence[str] = (),
    page_name: str | None = None,
    home: str | None = None,
    form: MessageForm | None = None,
) -> bytes:
    """A short page that says one thing — an error, "check your inbox", "you are unsubscribed" — with the
    status code the response carries, the page's name and a link back to it when known, and optionally one
    button that posts (`form`)."""
    return _render(
        "message.html",
        None,
        status_code=status_code,
        title=title,
        paragraphs=tuple(paragraphs),
        form=form,
        brand_name=page_name or "Status",
        brand_home=home,
        form_origins=_origins([form.action] if form else []),
    )


@cache
def not_found_page() -> bytes:
    """The 404 a browser gets for a public URL with no document (an unknown page, notice or month)."""
    return render_message_page(
        status_code=404,
        title="Page not found",
        paragraphs=("There is no status page, incident or month at this address. Check the link, or ask the "
                    "company whose status you are looking for where their page is.",),
    )


@cache
def unavailable_page() -> bytes:
    """The static 503 while a document that is not kept in memory cannot be read (the database is down)."""
    return render_message_page(
        status_code=503,
        title="Temporarily unavailable",
        paragraphs=("This part of the status page cannot be shown right now. The page's current status is still "
                    "available on its front page; please try this one again in a minute.",),
    )


# Rendering


def _render(template: str, page: PageView | None, **context: Any) -> bytes:
    if page is not None:
        context.setdefault("brand_name", page.name)
        context.setdefault("brand_home", page.links.home)
        origins = _origins([page.links.subscribe_action])
    else:
        origins = context.pop("form_origins", ())
    context.setdefault("brand_heading", False)
    css = _stylesheet()
    text = _environment().get_template(template).render(
        page=page,
        css=Markup(css),
        csp=_content_security_policy(css, origins),
        **{"favicon": _favicon("none"), **context},
    )
    return text.encode()


def _origins(urls: Iterable[str]) -> tuple[str, ...]:
    """Origins of absolute form targets (a page with a canonical URL posts there), for `form-action`."""
    found = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            found.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(sorted(set(found)))


@cache
def _content_security_policy(css: str, form_origins: tuple[str, ...]) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src 'sha256-{digest}'",
            "img-src data:",
            " ".join(("form-action 'self'", *form_origins)),
            "base-uri 'none'",
        )
    )


@cache
def _stylesheet() -> str:
    """The stylesheet, its indentation dropped (it is sent inline with every page)."""
    text = resources.files("projections").joinpath(_TEMPLATES, "style.css").read_text()
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


_FAVICON_COLOURS = {
    "none": "1b7a43",
    "minor": "e3a51a",
    "major": "f07a22",
    "critical": "de3a45",
    "maintenance": "4a8af4",
}


@cache
def _favicon(tone: str) -> str:
    """A small round mark in the colour of the page's status, as a `data:` URL: a tab shows the status at a
    glance, and the browser asks no host (not even Beacon) for /favicon.ico."""
    colour = _FAVICON_COLOURS.get(tone, _FAVICON_COLOURS["none"])
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
        f"<circle cx='8' cy='8' r='7' fill='%23{colour}'/><circle cx='8' cy='8' r='3' fill='white'/></svg>"
    )
    return "data:image/svg+xml," + svg.replace("<", "%3C").replace(">", "%3E")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("projections", _TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the code: no stat of the file on every render
    )
    env.filters["markdown"] = _markdown
    env.filters["utc"] = _utc
    env.filters["impact_text"] = _impact_text
    env.filters["leaves"] = _leaves
    # Called for every time and status shown; Python is several times cheaper than a Jinja macro call.
    env.globals["time"] = _time
    env.globals["tone"] = _tone
    env.globals["icon"] = _icon
    return env


def _time(at: datetime, local: str) -> Markup:
    """`<time datetime="…Z">` (UTC) around the text in the page's zone."""
    return Markup(f'<time datetime="{_utc(at)}">{escape(local)}</time>')


def _tone(notice: Any) -> Markup:
    """The colour and icon of a notice: its impact while open, a check once resolved or completed."""
    return escape("operational" if notice.ended_at else notice.impact)


@cache
def _icon(kind: str) -> Markup:
    """The status icon (macros.html's `icon_svg`), rendered once per kind."""
    return Markup(_environment().get_template("macros.html").module.icon_svg(kind))  # type: ignore[attr-defined]


# Filters

def _markdown(message: str) -> Markup:
    return Markup(render_markdown(message))


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_IMPACT_TEXT = {
    "none": "No impact",
    "minor": "Minor impact",
    "major": "Major impact",
    "critical": "Critical impact",
    "maintenance": "Maintenance",
}


def _impact_text(impact: str) -> str:
    return _IMPACT_TEXT.get(impact, impact.replace("_", " ").capitalize())


def _leaves(rows: Iterable[ComponentView]) -> list[ComponentView]:
    """The components a subscriber can choose (groups stand for their children)."""
    return [leaf for row in rows for leaf in (row.children or (row,))]
