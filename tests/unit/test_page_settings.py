"""Page settings without a database: events written before the settings existed, the canonical URL, the
custom domain rule and the public base URL's recording."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.base import SYSTEM, CommandContext, load
from domain.canonical_url import canonical_url, sub_page_url
from domain.custom_domain import CustomDomainTaken, InvalidCustomDomain, normalise_custom_domain
from domain.public_base_url import PUBLIC_BASE_URL_ID, PublicBaseUrl, PublicBaseUrlConfigured, record_public_base_url
from domain.status_page import (
    SettingsChange,
    StatusPage,
    claim_custom_domain,
    create_status_page,
    update_status_page,
)
from infra.event_store import MAPPER
from infra.memory_store import InMemoryEventStore
from tests.support.builders import T0


def _decode(topic: str, state: bytes, version: int = 1) -> StatusPage.Event:
    stored = StoredEvent(originator_id=uuid4(), originator_version=version, topic=topic, state=state)
    event = MAPPER.to_domain_event(stored)
    assert isinstance(event, StatusPage.Event)
    return event


_T = b'"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-28T10:00:00+00:00"}'


@pytest.mark.parametrize("widget", [True, False])
def test_a_page_recorded_before_the_settings_takes_its_widget_switch_for_its_public_site(widget: bool) -> None:
    flag = b"true" if widget else b"false"
    created = _decode(
        StatusPage.Created.TOPIC,
        b'{' + _T + b',"originator_topic":"beacon.StatusPage","name":"Acme","slug":"acme","description":null,'
        b'"public_url":null,"widget_api_enabled":' + flag + b',"display_uptime_mode":"nothing","by":{"type":"system"}}',
    )
    assert isinstance(created, StatusPage.Created)
    assert (created.public_site_enabled, created.time_zone, created.custom_domain) == (widget, "UTC", None)
    assert created.automatic_maintenance_notifications == "inherit"
    updated = _decode(
        StatusPage.Updated.TOPIC,
        b'{' + _T + b',"name":"Acme","description":null,"public_url":null,"widget_api_enabled":' + flag
        + b',"by":{"type":"system"}}',
        version=2,
    )
    assert isinstance(updated, StatusPage.Updated)
    assert updated.public_site_enabled is widget


def test_the_canonical_url_prefers_the_pages_own_then_its_domain_then_the_base() -> None:
    def url(public_url: str | None, domain: str | None, base: str | None) -> str | None:
        return canonical_url(public_url=public_url, custom_domain=domain, base_url=base, slug="acme")

    assert url("https://acme.example/status/", "status.acme.example", "https://b.example") == (
        "https://acme.example/status"
    )
    assert url(None, "status.acme.example", "https://b.example") == "https://status.acme.example"
    assert url(None, None, "https://b.example/") == "https://b.example/acme"
    assert url(None, None, None) is None
    assert sub_page_url("https://status.acme.example", "eu") == "https://status.acme.example/eu"
    assert sub_page_url(None, "eu") is None


@pytest.mark.parametrize(
    ("given", "stored"),
    [("Status.Acme.Example.", "status.acme.example"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_a_custom_domain_is_stored_lower_case_in_idna_form(given: str, stored: str) -> None:
    assert normalise_custom_domain(given) == stored


def test_beacons_own_host_is_no_custom_domain() -> None:
    with pytest.raises(InvalidCustomDomain):
        normalise_custom_domain("Status.Beacon.Example", reserved_host="status.beacon.example")


def test_the_public_base_url_is_recorded_only_when_it_changes() -> None:
    async def scenario() -> list[str | None]:
        store = InMemoryEventStore()
        context = CommandContext(now=T0, actor=SYSTEM)
        recorded = [
            await record_public_base_url(store, url, context)
            for url in (None, "https://s.example/", "https://s.example", "https://t.example", None, None)
        ]
        assert recorded == [False, True, False, True, True, False]
        assert (await load(store, PublicBaseUrl, PUBLIC_BASE_URL_ID)).url is None
        events = await store.load(PUBLIC_BASE_URL_ID)
        return [event.url for event in events if isinstance(event, PublicBaseUrlConfigured)]

    assert asyncio.run(scenario()) == ["https://s.example", "https://t.example", None]


def test_a_claim_left_by_a_crash_is_taken_over_once_its_page_has_moved_on() -> None:
    """A page's claim whose page update never happened (a crash between the two appends) blocks the domain
    while that page is unchanged since (it may be finishing), and is taken over once the page has changed
    without the domain."""

    async def scenario() -> None:
        store = InMemoryEventStore()
        at = T0

        def context() -> CommandContext:
            nonlocal at
            at += timedelta(seconds=1)
            return CommandContext(now=at, actor=SYSTEM)

        acme, other = uuid4(), uuid4()
        await create_status_page(store, page_id=acme, name="Acme", slug="acme", context=context())
        await create_status_page(store, page_id=other, name="Other", slug="other", context=context())
        await claim_custom_domain(store, "status.acme.example", acme, context())  # then the process died

        change = SettingsChange(custom_domain="status.acme.example")
        with pytest.raises(CustomDomainTaken, match="'acme'"):
            await update_status_page(store, page_id=other, settings=change, context=context())

        await update_status_page(store, page_id=acme, name="Acme Corp", context=context())
        page = await update_status_page(store, page_id=other, settings=change, context=context())
        assert page.custom_domain == "status.acme.example"
        with pytest.raises(CustomDomainTaken, match="'other'"):
            await update_status_page(store, page_id=acme, settings=change, context=context())

    asyncio.run(scenario())
