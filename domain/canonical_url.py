"""A status page's canonical URL (docs/architecture.md#canonical-urls-and-custom-domains): the one base
every public link of the page starts with — the widget's `page_url` and notice links, the Statuspage
JSON's `page.url` and `shortlink`, feed links, and the links in mails and webhooks.

Pure functions of values the log holds (the page's settings and the last `PublicBaseUrlConfigured`), so
whatever renders a link is a function of the log, never of the environment it runs in.
"""

from __future__ import annotations


def canonical_url(*, public_url: str | None, custom_domain: str | None, base_url: str | None, slug: str) -> str | None:
    """The page's own `public_url` if it has one, else `https://{custom_domain}`, else the page under
    Beacon's public base URL; None (links rendered as `null`) when none of the three is set."""
    if public_url:
        return public_url.rstrip("/")
    if custom_domain:
        return f"https://{custom_domain}"
    if base_url:
        return f"{base_url.rstrip('/')}/{slug}"
    return None


def sub_page_url(page_url: str | None, sub_page_slug: str) -> str | None:
    """A sub-page's base: its page's base followed by the sub-page's slug."""
    return f"{page_url}/{sub_page_slug}" if page_url else None
