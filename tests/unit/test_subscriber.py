"""Subscribers: given events -> when a command -> then events (or an error), for each state of both channels,
the scope rules and the contact rules; then the append-only handlers against the in-memory store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain.base import PUBLIC, CommandContext, DomainError
from domain.structure import ComponentItem, GroupItem, SubPageItem
from domain.subscriber import (
    Channel,
    ConfirmationUsed,
    InvalidEmail,
    InvalidSubscriberField,
    InvalidWebhookUrl,
    Subscriber,
    SubscriberEnded,
    SubscriberState,
    UnknownComponent,
    UnknownSubPage,
    WrongChannel,
    bounce_subscriber,
    check_email,
    check_webhook_url_form,
    confirm_subscriber,
    disable_subscriber,
)
from infra.memory_store import InMemoryEventStore
from tests.support.aggregates import event, given, payloads, then
from tests.support.builders import ALICE, T0

SUBSCRIBER_ID = UUID("01890a5d-ac96-774b-bcce-b302099a9001")
PAGE_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8057")
CONTACT = "v1:c2VhbGVkIGNvbnRhY3Q="
LOGIN = "01KFZ0000000000000000LOGIN"
API = "01KFZ00000000000000000API0"
UK_DB = "01KFZ0000000000000000UKDB0"
SUB_UK = "01KFZ000000000000000SUBUK0"
STRUCTURE = (
    ComponentItem(component_id=LOGIN),
    GroupItem(id="01KFZ000000000000000GROUP1", name="Core", components=(ComponentItem(component_id=API),)),
    SubPageItem(id=SUB_UK, name="UK", slug="uk", items=(ComponentItem(component_id=UK_DB),)),
)
PUBLIC_BY = {"type": "public"}


def created(channel: str = "email", state: str = "pending", **overrides: Any) -> Aggregate.Event:
    fields: dict[str, Any] = {
        "status_page_id": str(PAGE_ID),
        "channel": channel,
        "sub_page_id": None,
        "component_ids": [],
        "contact": CONTACT,
        "state": state,
        "by": PUBLIC_BY,
    }
    fields.update(overrides)
    return event(
        Subscriber.Created,
        originator_id=SUBSCRIBER_ID,
        originator_version=1,
        timestamp=T0,
        originator_topic=Subscriber.TOPIC,
        **fields,
    )


def later(event_class: Any, version: int, at_minutes: int = 1, **fields: Any) -> Aggregate.Event:
    return event(
        event_class,
        originator_id=SUBSCRIBER_ID,
        originator_version=version,
        timestamp=T0 + timedelta(minutes=at_minutes),
        by=ALICE.as_data(),
        **fields,
    )


def new(**overrides: Any) -> Subscriber:
    fields: dict[str, Any] = {
        "id": SUBSCRIBER_ID,
        "status_page_id": PAGE_ID,
        "channel": Channel.EMAIL,
        "contact": CONTACT,
        "structure": STRUCTURE,
        "at": T0,
        "by": PUBLIC,
    }
    fields.update(overrides)
    return Subscriber.create(**fields)


# Create


def test_a_public_email_subscription_starts_pending_with_the_contact_encrypted_and_no_actor_details() -> None:
    subscriber = new()

    assert payloads(then(subscriber)) == [
        (
            "Created",
            {
                "status_page_id": str(PAGE_ID),
                "channel": "email",
                "sub_page_id": None,
                "component_ids": [],
                "contact": CONTACT,
                "state": "pending",
                "by": {"type": "public"},
            },
        )
    ]
    assert subscriber.scope == "page"


def test_an_imported_email_address_starts_confirmed_and_a_webhook_starts_active() -> None:
    assert new(confirmed=True, by=ALICE).state is SubscriberState.CONFIRMED
    assert new(channel=Channel.WEBHOOK, by=ALICE).state is SubscriberState.ACTIVE


def test_confirmed_does_not_apply_to_a_webhook() -> None:
    with pytest.raises(InvalidSubscriberField):
        new(channel=Channel.WEBHOOK, confirmed=True)


def test_a_contact_in_clear_never_reaches_an_event() -> None:
    with pytest.raises(ValueError, match="encrypted"):
        new(contact="ann@example.com")


def test_scope_sub_page_and_components() -> None:
    assert new(sub_page_id=SUB_UK).scope == "sub_page"
    subscriber = new(sub_page_id=SUB_UK, component_ids=[UK_DB, UK_DB])
    assert subscriber.scope == "components"
    assert subscriber.component_ids == [UK_DB]
    assert new(component_ids=[LOGIN, API, UK_DB]).component_ids == [LOGIN, API, UK_DB]


@pytest.mark.parametrize(
    ("sub_page_id", "component_ids", "error", "field"),
    [
        ("01KFZ000000000000000NOSUB0", [], UnknownSubPage, "sub_page_id"),
        (None, ["01KFZ00000000000000UNKNOWN"], UnknownComponent, "component_ids[0]"),
        (SUB_UK, [UK_DB, LOGIN], UnknownComponent, "component_ids[1]"),
    ],
)
def test_scope_must_be_on_the_page(
    sub_page_id: str | None, component_ids: list[str], error: type[Exception], field: str
) -> None:
    with pytest.raises(DomainError) as raised:
        new(sub_page_id=sub_page_id, component_ids=component_ids)
    assert isinstance(raised.value, error)
    assert raised.value.field == field


# Confirmation


def test_a_repeat_subscription_of_a_pending_address_asks_again_at_most_once_an_hour() -> None:
    subscriber = given(Subscriber, created())

    assert subscriber.request_confirmation(at=T0 + timedelta(minutes=59), by=PUBLIC) is False
    assert then(subscriber) == []
    assert subscriber.request_confirmation(at=T0 + timedelta(minutes=61), by=PUBLIC) is True
    assert payloads(then(subscriber)) == [("ConfirmationRequested", {"by": PUBLIC_BY})]
    assert subscriber.request_confirmation(at=T0 + timedelta(minutes=90), by=PUBLIC) is False


def test_a_repeat_subscription_of_a_confirmed_address_records_nothing() -> None:
    subscriber = given(Subscriber, created(), later(Subscriber.Confirmed, 2))

    assert subscriber.request_confirmation(at=T0 + timedelta(hours=5), by=PUBLIC) is False
    assert then(subscriber) == []


def test_confirm_once() -> None:
    subscriber = given(Subscriber, created())
    subscriber.confirm(at=T0, by=PUBLIC)
    assert payloads(then(subscriber)) == [("Confirmed", {"by": PUBLIC_BY})]
    assert subscriber.state is SubscriberState.CONFIRMED

    with pytest.raises(ConfirmationUsed):
        subscriber.confirm(at=T0, by=PUBLIC)


@pytest.mark.parametrize(
    "ended", [Subscriber.Unsubscribed, Subscriber.Erased, Subscriber.Confirmed], ids=["unsub", "erased", "done"]
)
def test_a_confirmation_link_does_nothing_once_the_subscriber_moved_on(ended: Any) -> None:
    subscriber = given(Subscriber, created(), later(ended, 2))
    with pytest.raises(ConfirmationUsed):
        subscriber.confirm(at=T0, by=PUBLIC)


# Unsubscribe, bounce, erase


def test_unsubscribe_is_idempotent() -> None:
    subscriber = given(Subscriber, created(state="confirmed"))
    subscriber.unsubscribe(at=T0, by=PUBLIC)
    subscriber.unsubscribe(at=T0, by=PUBLIC)
    assert payloads(then(subscriber)) == [("Unsubscribed", {"by": PUBLIC_BY})]
    assert not subscriber.live


@pytest.mark.parametrize("ended", [Subscriber.Erased, Subscriber.Unsubscribed])
def test_unsubscribing_an_ended_subscriber_records_nothing(ended: Any) -> None:
    subscriber = given(Subscriber, created(state="confirmed"), later(ended, 2))
    subscriber.unsubscribe(at=T0, by=PUBLIC)
    assert then(subscriber) == []


def test_a_bounce_ends_an_email_subscription_and_records_why() -> None:
    subscriber = given(Subscriber, created(state="confirmed"))
    subscriber.bounce(reason="550 5.1.1 no such user", at=T0, by=ALICE)
    subscriber.bounce(reason="again", at=T0, by=ALICE)
    assert payloads(then(subscriber)) == [("Bounced", {"reason": "550 5.1.1 no such user", "by": ALICE.as_data()})]
    assert subscriber.state is SubscriberState.BOUNCED
    assert subscriber.live  # still holds its place: an import or a second sign-up must not bring it back


def test_erase_is_recorded_once() -> None:
    subscriber = given(Subscriber, created(state="confirmed"), later(Subscriber.Bounced, 2, reason="5.1.1"))
    subscriber.erase(at=T0, by=ALICE)
    subscriber.erase(at=T0, by=ALICE)
    assert payloads(then(subscriber)) == [("Erased", {"by": ALICE.as_data()})]
    assert subscriber.state is SubscriberState.ERASED


# Webhooks


def test_a_webhook_is_disabled_and_enabled_again() -> None:
    subscriber = given(Subscriber, created(channel="webhook", state="active"))
    subscriber.disable(reason="410 Gone", at=T0, by=ALICE)
    subscriber.disable(reason="again", at=T0, by=ALICE)
    subscriber.enable(at=T0, by=ALICE)
    subscriber.enable(at=T0, by=ALICE)
    assert payloads(then(subscriber)) == [
        ("Disabled", {"reason": "410 Gone", "by": ALICE.as_data()}),
        ("Enabled", {"by": ALICE.as_data()}),
    ]
    assert subscriber.state is SubscriberState.ACTIVE


def test_an_unsubscribed_webhook_cannot_be_enabled_or_rotated() -> None:
    subscriber = given(Subscriber, created(channel="webhook", state="active"), later(Subscriber.Unsubscribed, 2))
    with pytest.raises(SubscriberEnded):
        subscriber.enable(at=T0, by=ALICE)
    with pytest.raises(SubscriberEnded):
        subscriber.rotate_secret(contact=CONTACT, at=T0, by=ALICE)


def test_rotating_a_secret_keeps_the_previous_one_for_a_day() -> None:
    subscriber = given(Subscriber, created(channel="webhook", state="active"))
    until = subscriber.rotate_secret(contact="v1:bmV3", at=T0, by=ALICE)
    assert until == T0 + timedelta(hours=24)
    assert payloads(then(subscriber)) == [
        ("SecretRotated", {"contact": "v1:bmV3", "previous_valid_until": until, "by": ALICE.as_data()})
    ]
    # And the stored form round-trips the datetime.
    again = given(
        Subscriber,
        created(channel="webhook", state="active"),
        later(Subscriber.SecretRotated, 2, contact="v1:bmV3", previous_valid_until=until),
    )
    assert again.previous_valid_until == until
    assert again.contact == "v1:bmV3"


def test_channel_specific_commands_refuse_the_other_channel() -> None:
    email = given(Subscriber, created(state="confirmed"))
    webhook = given(Subscriber, created(channel="webhook", state="active"))
    with pytest.raises(WrongChannel):
        email.enable(at=T0, by=ALICE)
    with pytest.raises(WrongChannel):
        email.disable(reason="x", at=T0, by=ALICE)
    with pytest.raises(WrongChannel):
        email.rotate_secret(contact=CONTACT, at=T0, by=ALICE)
    with pytest.raises(WrongChannel):
        webhook.bounce(reason="x", at=T0, by=ALICE)


# Contact rules (run on the clear value, before it is encrypted)


@pytest.mark.parametrize(
    ("given_email", "stored"),
    [("Ann@Example.COM", "ann@example.com"), ("  bob+status@mail.example.org ", "bob+status@mail.example.org")],
)
def test_email_addresses_are_normalised(given_email: str, stored: str) -> None:
    assert check_email(given_email) == stored


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "Ann <ann@example.com>",
        "a@b.com,c@d.com",
        "ann@exa mple.com",
        "ann..x@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_invalid_email_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEmail):
        check_email(bad)


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://hooks.example.com/beacon", False, True),
        ("http://hooks.example.com/beacon", False, False),
        ("http://127.0.0.1:9000/hook", True, True),
        ("ftp://hooks.example.com/", True, False),
        ("https:///nohost", False, False),
        ("https://user:pw@hooks.example.com/", False, False),
        ("", False, False),
    ],
)
def test_webhook_url_form(url: str, allow_http: bool, ok: bool) -> None:
    if ok:
        assert check_webhook_url_form(url, allow_http=allow_http) == url
    else:
        with pytest.raises(InvalidWebhookUrl):
            check_webhook_url_form(url, allow_http=allow_http)


# Handlers


def context() -> CommandContext:
    return CommandContext(now=T0 + timedelta(minutes=3), actor=ALICE)


def test_handlers_append_through_the_store() -> None:
    async def scenario() -> tuple[Subscriber, Subscriber]:
        store = InMemoryEventStore()
        email = new()
        webhook = new(id=UUID(int=7), channel=Channel.WEBHOOK, by=ALICE)
        for subscriber in (email, webhook):
            await store.append(
                list(subscriber.collect_events()),
                stream_type=Subscriber.STREAM_TYPE,
                expected_version=0,
                context=context(),
            )
        await confirm_subscriber(store, subscriber_id=SUBSCRIBER_ID, context=context())
        bounced = await bounce_subscriber(store, subscriber_id=SUBSCRIBER_ID, reason="5.1.1", context=context())
        disabled = await disable_subscriber(store, subscriber_id=UUID(int=7), reason="410", context=context())
        return bounced, disabled

    bounced, disabled = asyncio.run(scenario())
    assert bounced.state is SubscriberState.BOUNCED
    assert bounced.version == 3
    assert disabled.state is SubscriberState.DISABLED
