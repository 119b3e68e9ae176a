"""The public site's HTML from a view (projections/public_site_html.py): what a reader, a screen reader and
a browser's security rules see in the bytes. The browser tests (tests/browser/) look at the rendered page."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

from projections.markdown import render_markdown
from projections.public_site_html import (
    MessageForm,
    not_found_page,
    render_history,
    render_index,
    render_message_page,
    render_notice,
    unavailable_page,
)
from projections.public_site_view import Link
from tests.support.public_site_views import HISTORY, INCIDENT, INCIDENT_PAGE, INDEX, MONTH, PAGE


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, of a document."""

    def __init__(self, document: bytes) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(document.decode())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_every_document_is_the_same_bytes_each_time() -> None:
    assert render_index(INDEX) == render_index(INDEX)
    assert render_notice(INCIDENT_PAGE) == render_notice(INCIDENT_PAGE)


def test_the_banner_says_the_status_in_words_beside_an_icon() -> None:
    page = Elements(render_index(INDEX))
    assert "Partial System Outage" in page.plain
    banner = render_index(INDEX).decode().split('role="status"')[1].split("</div>")[0]
    assert "<svg" in banner and 'aria-hidden="true"' in banner
    icon = next(link["href"] for link in page.all("link") if link.get("rel") == "icon")
    assert icon is not None and icon.startswith("data:image/svg+xml,") and "f07a22" in icon  # the tab shows it too


def test_nothing_is_loaded_from_anywhere_and_no_script_runs() -> None:
    for document in (render_index(INDEX), render_history(HISTORY), render_notice(INCIDENT_PAGE), not_found_page()):
        page = Elements(document)
        assert not page.all("script")
        assert not [attrs for _, attrs in page.tags if "src" in attrs]
        for link in page.all("link"):
            href = link["href"] or ""
            assert href.startswith(("/", "data:")), href
        policy = next(m["content"] for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy")
        assert policy is not None and "default-src 'none'" in policy and "script-src" not in policy


def test_the_feeds_and_the_json_are_linked() -> None:
    page = Elements(render_index(INDEX))
    alternates = {(m["type"], m["href"]) for m in page.all("link") if m.get("rel") == "alternate"}
    assert alternates == {
        ("application/atom+xml", "/acme/history.atom"),
        ("application/rss+xml", "/acme/history.rss"),
    }
    hrefs = {a["href"] for a in page.all("a")}
    assert {"/acme/history", "/acme/history.atom", "/acme/history.rss", "/acme/api/v2/summary.json"} <= hrefs


def test_every_time_is_utc_in_the_attribute_and_local_with_its_zone_in_the_text() -> None:
    document = render_index(INDEX).decode()
    times = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', document)
    instants = [(at, text) for at, text in times if "T" in at]
    assert instants
    for at, text in instants:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", at), at
        assert text.endswith(" CET"), text
    assert ('2026-12-02T09:12:00Z', "2 Dec 2026, 10:12 CET") in times


def test_each_day_of_a_bar_says_what_happened_in_text() -> None:
    document = render_index(INDEX).decode()
    bars = re.findall(r'<ol class="bars" aria-label="([^"]+)">(.*?)</ol>', document, re.S)
    # A group's own bar follows its folded children, so it shows while the group is closed.
    assert [label for label, _ in bars] == [
        "API, day by day", "Dashboard, day by day", "Core platform, day by day",
        "Web app, day by day", "Database, day by day", "Webhooks, day by day",
    ]
    cells = re.findall(r'<li class="d-([a-z_]+)" title="([^"]+)"><span class="vh">([^<]+)</span></li>', bars[0][1])
    assert len(cells) == 90
    assert all(title == text for _, title, text in cells)
    assert cells[40] == ("full_outage", "14 Oct 2026: full outage", "14 Oct 2026: full outage")
    assert cells[0][0] == "no_data" and cells[-1][0] == "operational"
    assert "99.9821 % uptime" in Elements(render_index(INDEX)).plain


def test_a_group_folds_without_script_and_shows_its_worst_status() -> None:
    document = render_index(INDEX).decode()
    group = document.split('<details class="group">')[1].split("</details>")[0]
    summary = group.split("</summary>")[0]
    assert "Core platform" in summary and "Partial outage" in summary
    assert "Dashboard" in group.split("</summary>")[1]


def test_components_keep_their_order() -> None:
    plain = Elements(render_index(INDEX)).plain.split("Components", 1)[1]
    positions = [plain.index(name) for name in ("Core platform", "Web app", "Database", "Webhooks")]
    assert positions == sorted(positions)


def test_the_subscribe_form_posts_an_email_and_optional_components() -> None:
    page = Elements(render_index(INDEX))
    form = next(f for f in page.all("form") if f.get("action") == "/acme/subscriptions")
    assert form["method"] == "post"
    email = next(i for i in page.all("input") if i.get("name") == "email")
    assert email["type"] == "email" and "required" in email
    assert next(label for label in page.all("label") if label.get("for") == email["id"])
    boxes = [i["value"] for i in page.all("input") if i.get("name") == "component_ids"]
    assert boxes == ["01COMPONENTAPI", "01COMPONENTDASH", "01COMPONENTWEB", "01COMPONENTDB", "01COMPONENTHOOKS"]


def test_ongoing_incident_and_both_kinds_of_window_are_shown_with_their_latest_update() -> None:
    plain = Elements(render_index(INDEX)).plain
    for heading, name in (
        ("Ongoing incidents", "Elevated error rates on the API"),
        ("Maintenance in progress", "Database failover drill"),
        ("Scheduled maintenance", "Network upgrade in Frankfurt"),
    ):
        assert plain.index(heading) < plain.index(name)
    assert "We found a faulty deploy" in plain
    assert "We are investigating elevated 5xx rates." not in plain.split("Past incidents")[0]


def test_past_incidents_say_so_on_a_quiet_day() -> None:
    plain = Elements(render_index(INDEX)).plain.split("Past incidents")[1]
    assert plain.count("No incidents reported.") == 13
    assert "Login failures for some users" in plain


def test_messages_are_markdown_without_raw_html_images_or_script_links() -> None:
    hostile = (
        "**Bold** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "![tracker](https://tracker.example/pixel.png) [click](javascript:alert(1)) [ok](https://example.com)"
    )
    html = str(render_markdown(hostile))
    assert "<strong>Bold</strong>" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">ok</a>' in html
    document = render_notice(replace(INCIDENT_PAGE, notice=replace(INCIDENT, name="<b>x</b>"))).decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in document


def test_the_notice_page_shows_the_whole_timeline_newest_first() -> None:
    plain = Elements(render_notice(INCIDENT_PAGE)).plain
    assert plain.index("We found a faulty deploy") < plain.index("We are investigating elevated 5xx rates.")
    assert "Major impact" in plain and "API, Dashboard" in plain


def test_history_links_its_months_and_a_month_pages_by_path() -> None:
    hrefs = {a["href"] for a in Elements(render_history(HISTORY)).all("a")}
    assert {"/acme/history/2026-12", "/acme/history/2026-11", "/acme/incidents/01INCIDENT"} <= hrefs
    month = Elements(render_history(MONTH))
    assert "December 2026" in month.plain
    assert "/acme/history/2026-11" in {a["href"] for a in month.all("a")}
    assert not [a for a in month.all("a") if "?" in (a["href"] or "")]


def test_message_pages_carry_their_status_and_post_only_with_a_button() -> None:
    page = Elements(
        render_message_page(
            status_code=200,
            title="Unsubscribe?",
            paragraphs=("You will get no more mail about Acme Cloud.",),
            page_name=PAGE.name,
            home=PAGE.links.home,
            form=MessageForm(
                action="/acme/subscriptions/unsubscribe", button="Unsubscribe", fields=(("token", "t.1"),)
            ),
        )
    )
    assert "Unsubscribe?" in page.plain and "Acme Cloud" in page.plain
    form = page.all("form")[0]
    assert form["method"] == "post" and form["action"] == "/acme/subscriptions/unsubscribe"
    assert {"type": "hidden", "name": "token", "value": "t.1"} in page.all("input")
    assert "Error" not in page.plain  # a 200 is no error
    assert "Error 404" in Elements(not_found_page()).plain and "Error 503" in Elements(unavailable_page()).plain


def test_a_sub_page_on_a_custom_domain_links_its_parent_and_may_post_there() -> None:
    base = "https://status.acme.example/eu"
    sub_page = replace(
        PAGE,
        name="Acme Cloud — Europe",
        links=replace(
            PAGE.links,
            home=base,
            history=f"{base}/history",
            subscribe_action=f"{base}/subscriptions",
            canonical=base,
        ),
        sub_pages=(),
        parent=Link("https://status.acme.example", "Acme Cloud"),
    )
    page = Elements(render_index(replace(INDEX, page=sub_page)))
    assert {"rel": "canonical", "href": base} in page.all("link")
    assert "https://status.acme.example" in {a["href"] for a in page.all("a")}
    assert page.all("form")[0]["action"] == f"{base}/subscriptions"
    policy = next(m["content"] for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy")
    assert policy is not None and "form-action 'self' https://status.acme.example;" in policy
    assert "Acme Cloud — Europe" in page.plain and "Part of Acme Cloud" in page.plain
