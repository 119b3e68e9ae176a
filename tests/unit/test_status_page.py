"""Status pages: given events -> when a command -> then events (or an error), for every rule of the page
and its structure; then the handlers against the in-memory event store."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from domain.base import CommandContext, DomainError, NotFound, load
from domain.component import ComponentInfo
from domain.rules import InvalidSlug, NameRequired, NameTooLong, ReadOnlyField, ReservedSlug
from domain.status_page import (
    InvalidDisplayUptimeMode,
    InvalidPublicUrl,
    SlugTaken,
    StatusPage,
    create_status_page,
    replace_structure,
    slug_reservation,
    update_status_page,
)
from domain.structure import (
    ComponentItem,
    ComponentPlacedTwice,
    ComponentPlacement,
    DuplicateSubPageSlug,
    GroupItem,
    InvalidStructureItem,
    StructureItem,
    SubPageItem,
    UnplaceableComponent,
    component_ids,
    component_placements,
    parse_structure,
    slugify,
    structure_item,
)
from infra.memory_store import InMemoryEventStore
from tests.support.aggregates import event, given, payloads, then
from tests.support.builders import ALICE, T0

PAGE_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8057")
OTHER_PAGE_ID = UUID("01890a5d-ac96-774b-bcce-b302099a8058")
T1 = T0 + timedelta(minutes=5)
BY = ALICE.as_data()
DEFAULT_SETTINGS = {
    "public_site_enabled": True,
    "time_zone": "UTC",
    "custom_domain": None,
    "automatic_maintenance_notifications": "inherit",
}

LOGIN = "01KFZ0000000000000000LOGIN"
API = "01KFZ00000000000000000API0"
WEB = "01KFZ00000000000000000WEB0"
OLD = "01KFZ00000000000000000OLD0"
COMPONENTS = {
    LOGIN: ComponentInfo(name="Login"),
    API: ComponentInfo(name="API"),
    WEB: ComponentInfo(name="Web"),
    OLD: ComponentInfo(name="Legacy", archived=True),
}
GROUP_ID = "01KFZ000000000000000GROUP1"
SUB_UK = "01KFZ000000000000000SUBUK0"
SUB_US = "01KFZ000000000000000SUBUS0"


def created(**overrides: Any) -> Aggregate.Event:
    fields: dict[str, Any] = {
        "name": "Acme",
        "slug": "acme",
        "description": None,
        "public_url": "https://status.acme.test",
        "widget_api_enabled": True,
        "display_uptime_mode": "chart_and_percentage",
        "by": BY,
    }
    fields.update(overrides)
    return event(
        StatusPage.Created,
        originator_id=PAGE_ID,
        originator_version=1,
        timestamp=T0,
        originator_topic=StatusPage.TOPIC,
        **fields,
    )


def structure_replaced(items: list[dict[str, Any]], version: int = 2) -> Aggregate.Event:
    return event(
        StatusPage.StructureReplaced,
        originator_id=PAGE_ID,
        originator_version=version,
        timestamp=T0,
        items=items,
        display_uptime_mode="chart_and_percentage",
        by=BY,
    )


def replace(page: StatusPage, *items: StructureItem, mode: str | None = None) -> None:
    page.replace_structure(items=items, components=COMPONENTS, display_uptime_mode=mode, at=T1, by=ALICE)


def new_page(**overrides: Any) -> StatusPage:
    fields: dict[str, Any] = {"id": PAGE_ID, "name": "Acme", "slug": "acme", "at": T0, "by": ALICE}
    fields.update(overrides)
    return StatusPage.create(**fields)


# Create


def test_create_records_the_page_with_widget_enabled_by_default() -> None:
    page = new_page(description="Our public page", public_url="https://status.acme.test")

    assert payloads(then(page)) == [
        (
            "Created",
            {
                "name": "Acme",
                "slug": "acme",
                "description": "Our public page",
                "public_url": "https://status.acme.test",
                "widget_api_enabled": True,
                "display_uptime_mode": "chart_and_percentage",
                "by": BY,
                **DEFAULT_SETTINGS,
            },
        )
    ]
    assert page.structure == ()
    assert page.created_on == T0


@pytest.mark.parametrize("slug", ["a", "acme", "acme-eu-2", "0", "x" * 63])
def test_create_accepts_valid_slugs(slug: str) -> None:
    assert new_page(slug=slug).slug == slug


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("", "is_required"),
        ("x" * 64, "too_long"),
        ("Acme", "invalid_value"),
        ("acme_eu", "invalid_value"),
        ("acme eu", "invalid_value"),
        ("acme/eu", "invalid_value"),
        ("zürich", "invalid_value"),
    ],
)
def test_create_refuses_malformed_slugs(slug: str, code: str) -> None:
    with pytest.raises(InvalidSlug) as raised:
        new_page(slug=slug)
    assert (raised.value.field, raised.value.code) == ("slug", code)


@pytest.mark.parametrize("slug", ["v2", "api", "schema", "healthz", "readyz", "metrics", "static"])
def test_create_refuses_reserved_slugs(slug: str) -> None:
    with pytest.raises(ReservedSlug) as raised:
        new_page(slug=slug)
    assert raised.value.field == "slug"


def test_create_checks_the_name() -> None:
    with pytest.raises(NameRequired):
        new_page(name=" ")
    with pytest.raises(NameTooLong):
        new_page(name="x" * 201)
    assert new_page(name="x" * 200).name == "x" * 200


@pytest.mark.parametrize("url", ["", "status.acme.test", "ftp://status.acme.test", "https://", "javascript:x"])
def test_create_refuses_a_public_url_that_is_not_absolute_http(url: str) -> None:
    with pytest.raises(InvalidPublicUrl) as raised:
        new_page(public_url=url)
    assert raised.value.field == "public_url"


# Update


def test_update_records_all_editable_fields() -> None:
    page = given(StatusPage, created())

    page.update(
        name="Acme Status",
        description="All of Acme",
        public_url="http://status.acme.test/",
        widget_api_enabled=False,
        at=T1,
        by=ALICE,
    )

    assert payloads(then(page)) == [
        (
            "Updated",
            {
                "name": "Acme Status",
                "description": "All of Acme",
                "public_url": "http://status.acme.test/",
                "widget_api_enabled": False,
                "by": BY,
                **DEFAULT_SETTINGS,
            },
        )
    ]
    assert page.slug == "acme"
    assert page.widget_api_enabled is False


def test_update_that_changes_nothing_records_nothing() -> None:
    page = given(StatusPage, created())
    page.update(
        name="Acme",
        description=None,
        public_url="https://status.acme.test",
        widget_api_enabled=True,
        at=T1,
        by=ALICE,
    )
    assert payloads(then(page)) == []


def test_update_changes_only_what_it_is_given() -> None:
    page = given(StatusPage, created(description="Our services"))

    page.update(widget_api_enabled=False, at=T1, by=ALICE)

    assert payloads(then(page)) == [
        (
            "Updated",
            {
                "name": "Acme",
                "description": "Our services",
                "public_url": "https://status.acme.test",
                "widget_api_enabled": False,
                "by": BY,
                **DEFAULT_SETTINGS,
            },
        )
    ]


def test_update_with_none_resets_to_the_defaults() -> None:
    page = given(StatusPage, created(description="Our services", widget_api_enabled=False))

    page.update(description=None, public_url=None, widget_api_enabled=None, at=T1, by=ALICE)

    assert (page.name, page.description, page.public_url, page.widget_api_enabled) == ("Acme", None, None, True)


def test_update_giving_nothing_or_the_own_slug_records_nothing() -> None:
    page = given(StatusPage, created())
    page.update(at=T1, by=ALICE)
    page.update(slug="acme", at=T1, by=ALICE)
    assert payloads(then(page)) == []


def test_a_slug_sent_back_must_be_the_pages_own() -> None:
    page = given(StatusPage, created())
    with pytest.raises(ReadOnlyField) as raised:
        page.update(name="Acme 2", slug="acme-2", at=T1, by=ALICE)
    assert (raised.value.field, raised.value.code) == ("slug", "read_only")
    assert payloads(then(page)) == []


def test_update_checks_name_and_public_url() -> None:
    page = given(StatusPage, created())
    with pytest.raises(NameRequired):
        page.update(name="", description=None, public_url=None, widget_api_enabled=True, at=T1, by=ALICE)
    with pytest.raises(InvalidPublicUrl):
        page.update(name="A", description=None, public_url="nope", widget_api_enabled=True, at=T1, by=ALICE)
    assert payloads(then(page)) == []


# Structure: what is stored


def test_replace_structure_stores_components_groups_and_sub_pages_without_component_names() -> None:
    page = given(StatusPage, created())

    replace(
        page,
        ComponentItem(LOGIN, hidden=False, display_uptime=True),
        GroupItem(
            id=GROUP_ID,
            name="Backend",
            description="Servers",
            hidden=False,
            display_aggregated_uptime=False,
            components=(ComponentItem(API, hidden=True, display_uptime=False),),
        ),
        SubPageItem(id=SUB_UK, name="United Kingdom", slug="uk", items=(ComponentItem(WEB),)),
    )

    assert payloads(then(page)) == [
        (
            "StructureReplaced",
            {
                "items": [
                    {"component": {"component_id": LOGIN, "hidden": False, "display_uptime": True}},
                    {
                        "group": {
                            "id": GROUP_ID,
                            "name": "Backend",
                            "description": "Servers",
                            "hidden": False,
                            "display_aggregated_uptime": False,
                            "components": [{"component_id": API, "hidden": True, "display_uptime": False}],
                        }
                    },
                    {
                        "sub_page": {
                            "id": SUB_UK,
                            "name": "United Kingdom",
                            "slug": "uk",
                            "items": [{"component": {"component_id": WEB, "hidden": False, "display_uptime": True}}],
                        }
                    },
                ],
                "display_uptime_mode": "chart_and_percentage",
                "by": BY,
            },
        )
    ]


def test_the_stored_structure_reads_back_as_the_items_given() -> None:
    items = (
        GroupItem(id=GROUP_ID, name="Auth", components=(ComponentItem(LOGIN),)),
        SubPageItem(
            id=SUB_UK,
            name="UK",
            slug="uk",
            items=(ComponentItem(API), GroupItem(id="g2", name="Edge", components=(ComponentItem(WEB),))),
        ),
    )
    page = given(StatusPage, created())
    replace(page, *items)
    assert page.structure == items
    assert parse_structure(page.items) == items


def test_replacing_with_an_empty_structure_clears_it() -> None:
    page = given(StatusPage, created(),
        structure_replaced([{"component": {"component_id": LOGIN, "hidden": False, "display_uptime": True}}]),
    )
    replace(page)
    assert payloads(then(page))[0][1]["items"] == []
    assert page.structure == ()


def test_replacing_with_the_same_structure_records_nothing() -> None:
    stored = [{"component": {"component_id": LOGIN, "hidden": False, "display_uptime": True}}]
    page = given(StatusPage, created(), structure_replaced(stored))
    replace(page, ComponentItem(LOGIN))
    assert payloads(then(page)) == []


def test_a_replacement_keeps_the_stored_settings_it_leaves_unset_wherever_an_item_moves() -> None:
    stored = [
        {"component": {"component_id": LOGIN, "hidden": True, "display_uptime": False}},
        {
            "group": {
                "id": GROUP_ID,
                "name": "Backend",
                "description": "Servers",
                "hidden": True,
                "display_aggregated_uptime": False,
                "components": [{"component_id": API, "hidden": True, "display_uptime": True}],
            }
        },
    ]
    page = given(StatusPage, created(), structure_replaced(stored))
    group_settings = frozenset({"hidden", "display_aggregated_uptime", "description"})
    component_settings = frozenset({"hidden", "display_uptime"})

    # LOGIN moves into the group and API onto a sub-page; WEB is new; API says display_uptime itself.
    replace(
        page,
        GroupItem(
            id=GROUP_ID,
            name="Core",
            unset=group_settings,
            components=(ComponentItem(LOGIN, unset=component_settings),),
        ),
        SubPageItem(
            id=SUB_UK,
            name="UK",
            slug="uk",
            items=(
                ComponentItem(API, display_uptime=False, unset=frozenset({"hidden"})),
                ComponentItem(WEB, unset=component_settings),
            ),
        ),
    )

    assert page.structure == (
        GroupItem(
            id=GROUP_ID,
            name="Core",
            description="Servers",
            hidden=True,
            display_aggregated_uptime=False,
            components=(ComponentItem(LOGIN, hidden=True, display_uptime=False),),
        ),
        SubPageItem(
            id=SUB_UK,
            name="UK",
            slug="uk",
            items=(ComponentItem(API, hidden=True, display_uptime=False), ComponentItem(WEB)),
        ),
    )


def test_a_setting_given_replaces_the_stored_one() -> None:
    stored = [{"component": {"component_id": LOGIN, "hidden": True, "display_uptime": False}}]
    page = given(StatusPage, created(), structure_replaced(stored))
    replace(page, ComponentItem(LOGIN, hidden=False, display_uptime=True))
    assert page.structure == (ComponentItem(LOGIN),)


def test_a_component_name_sent_back_must_be_the_components_own() -> None:
    page = given(StatusPage, created())
    replace(page, ComponentItem(LOGIN, name="Login"))
    with pytest.raises(ReadOnlyField) as raised:
        replace(page, GroupItem(id=GROUP_ID, name="G", components=(ComponentItem(API, name="Renamed"),)))
    assert (raised.value.field, raised.value.code) == ("items[0].group.components[0].name", "read_only")
    assert [name for name, _ in payloads(then(page))] == ["StructureReplaced"]


def test_display_uptime_mode_is_recorded_and_kept_when_not_given() -> None:
    page = given(StatusPage, created())
    replace(page, ComponentItem(LOGIN), mode="chart_only")
    assert payloads(then(page))[0][1]["display_uptime_mode"] == "chart_only"

    replace(page, ComponentItem(API))
    assert payloads(then(page))[0][1]["display_uptime_mode"] == "chart_only"


def test_an_unknown_display_uptime_mode_is_refused() -> None:
    page = given(StatusPage, created())
    with pytest.raises(InvalidDisplayUptimeMode) as raised:
        replace(page, mode="sparkline")
    assert raised.value.field == "display_uptime_mode"


# Structure: components


def test_an_unknown_component_is_refused_with_its_path() -> None:
    page = given(StatusPage, created())
    with pytest.raises(UnplaceableComponent) as raised:
        replace(
            page,
            GroupItem(id=GROUP_ID, name="G", components=(ComponentItem(LOGIN), ComponentItem("01NOPE"))),
        )
    assert raised.value.field == "items[0].group.components[1].component_id"
    assert payloads(then(page)) == []


def test_an_archived_component_is_refused() -> None:
    page = given(StatusPage, created())
    with pytest.raises(UnplaceableComponent) as raised:
        replace(page, SubPageItem(id=SUB_UK, name="UK", items=(ComponentItem(OLD),)))
    assert raised.value.field == "items[0].sub_page.items[0].component.component_id"
    assert "deleted" in raised.value.message


@pytest.mark.parametrize(
    "items",
    [
        pytest.param((ComponentItem(LOGIN), ComponentItem(LOGIN)), id="twice-at-top-level"),
        pytest.param(
            (ComponentItem(LOGIN), GroupItem(id=GROUP_ID, name="G", components=(ComponentItem(LOGIN),))),
            id="top-level-and-group",
        ),
        pytest.param(
            (GroupItem(id=GROUP_ID, name="G", components=(ComponentItem(LOGIN), ComponentItem(LOGIN))),),
            id="twice-in-a-group",
        ),
        pytest.param(
            (ComponentItem(LOGIN), SubPageItem(id=SUB_UK, name="UK", items=(ComponentItem(LOGIN),))),
            id="top-level-and-sub-page",
        ),
        pytest.param(
            (
                SubPageItem(id=SUB_UK, name="UK", items=(ComponentItem(LOGIN),)),
                SubPageItem(id=SUB_US, name="US", items=(ComponentItem(LOGIN),)),
            ),
            id="two-sub-pages",
        ),
    ],
)
def test_a_component_appears_at_most_once_in_the_whole_page(items: tuple[StructureItem, ...]) -> None:
    page = given(StatusPage, created())
    with pytest.raises(ComponentPlacedTwice):
        replace(page, *items)
    assert payloads(then(page)) == []


# Structure: shape


def test_a_wire_item_holds_exactly_one_of_component_group_or_sub_page() -> None:
    component = ComponentItem(LOGIN)
    group = GroupItem(id=GROUP_ID, name="G")
    assert structure_item(component=component) is component
    assert structure_item(group=group) is group

    with pytest.raises(InvalidStructureItem) as raised:
        structure_item(field="items[3]")
    assert raised.value.field == "items[3]"
    with pytest.raises(InvalidStructureItem):
        structure_item(component=component, group=group)


def test_sub_pages_do_not_nest() -> None:
    page = given(StatusPage, created())
    inner = SubPageItem(id=SUB_US, name="US")
    with pytest.raises(InvalidStructureItem) as raised:
        replace(page, SubPageItem(id=SUB_UK, name="UK", items=(inner,)))  # type: ignore[arg-type]
    assert raised.value.field == "items[0].sub_page.items[0]"


def test_groups_hold_only_components() -> None:
    page = given(StatusPage, created())
    nested = GroupItem(id="g2", name="Inner")
    with pytest.raises(InvalidStructureItem) as raised:
        replace(page, GroupItem(id=GROUP_ID, name="Outer", components=(nested,)))  # type: ignore[arg-type]
    assert raised.value.field == "items[0].group.components[0]"


def test_group_and_sub_page_ids_are_required_and_unique_within_the_page() -> None:
    page = given(StatusPage, created())
    with pytest.raises(InvalidStructureItem) as raised:
        replace(page, GroupItem(id="", name="G"))
    assert (raised.value.field, raised.value.code) == ("items[0].group.id", "is_required")

    with pytest.raises(InvalidStructureItem) as raised:
        replace(
            page,
            GroupItem(id=GROUP_ID, name="G"),
            SubPageItem(id=SUB_UK, name="UK", items=(GroupItem(id=GROUP_ID, name="Again"),)),
        )
    assert raised.value.field == "items[1].sub_page.items[0].group.id"


@pytest.mark.parametrize(
    ("item", "field", "error"),
    [
        (GroupItem(id=GROUP_ID, name=""), "items[0].group.name", NameRequired),
        (GroupItem(id=GROUP_ID, name="x" * 201), "items[0].group.name", NameTooLong),
        (SubPageItem(id=SUB_UK, name=" "), "items[0].sub_page.name", NameRequired),
        (SubPageItem(id=SUB_UK, name="x" * 201), "items[0].sub_page.name", NameTooLong),
    ],
)
def test_group_and_sub_page_names_follow_the_name_rules(
    item: StructureItem, field: str, error: type[DomainError]
) -> None:
    page = given(StatusPage, created())
    with pytest.raises(error) as raised:
        replace(page, item)
    assert raised.value.field == field


# Structure: sub-page slugs


def test_a_sub_page_without_a_slug_gets_one_from_its_name() -> None:
    page = given(StatusPage, created())
    replace(
        page,
        SubPageItem(id=SUB_UK, name="United Kingdom"),
        SubPageItem(id=SUB_US, name="Zürich & Genève!"),
    )
    assert [s.slug for s in page.structure if isinstance(s, SubPageItem)] == ["united-kingdom", "zurich-geneve"]


def test_derived_sub_page_slugs_avoid_each_other_explicit_ones_and_api() -> None:
    page = given(StatusPage, created())
    replace(
        page,
        SubPageItem(id="s1", name="Europe"),
        SubPageItem(id="s2", name="Europe"),
        SubPageItem(id="s3", name="Anything", slug="europe-3"),
        SubPageItem(id="s4", name="Europe"),
        SubPageItem(id="s5", name="API"),
        SubPageItem(id="s6", name="日本"),
    )
    assert [s.slug for s in page.structure if isinstance(s, SubPageItem)] == [
        "europe",
        "europe-2",
        "europe-3",
        "europe-4",
        "api-2",
        "sub-page",
    ]


def test_slugify_keeps_derived_slugs_valid() -> None:
    long = slugify("word " * 40)
    assert len(long) <= 63 and not long.endswith("-")
    assert slugify("--Hello,   World--") == "hello-world"


def test_a_sub_page_keeps_its_slug_when_the_structure_is_sent_back_without_slugs() -> None:
    page = given(StatusPage, created())
    replace(page, SubPageItem(id=SUB_UK, name="United Kingdom", slug="uk"))
    page.collect_events()

    # A client that only knows incident.io's shape round-trips Show's body (no slug) and renames the sub-page.
    replace(page, SubPageItem(id=SUB_UK, name="Great Britain"), SubPageItem(id=SUB_US, name="United States"))

    slugs = {s.id: s.slug for s in page.structure if isinstance(s, SubPageItem)}
    assert slugs == {SUB_UK: "uk", SUB_US: "united-states"}


def test_an_explicit_slug_may_take_over_a_kept_one() -> None:
    page = given(StatusPage, created())
    replace(page, SubPageItem(id=SUB_UK, name="UK", slug="uk"))
    replace(page, SubPageItem(id=SUB_UK, name="UK"), SubPageItem(id=SUB_US, name="New UK", slug="uk"))
    slugs = {s.id: s.slug for s in page.structure if isinstance(s, SubPageItem)}
    assert slugs == {SUB_UK: "uk-2", SUB_US: "uk"}


def test_explicit_sub_page_slugs_must_be_unique_within_the_page() -> None:
    page = given(StatusPage, created())
    with pytest.raises(DuplicateSubPageSlug) as raised:
        replace(page, SubPageItem(id=SUB_UK, name="A", slug="eu"), SubPageItem(id=SUB_US, name="B", slug="eu"))
    assert raised.value.field == "items[1].sub_page.slug"


@pytest.mark.parametrize(("slug", "error"), [("EU", InvalidSlug), ("x" * 64, InvalidSlug), ("api", ReservedSlug)])
def test_explicit_sub_page_slugs_follow_the_slug_rules(slug: str, error: type[DomainError]) -> None:
    page = given(StatusPage, created())
    with pytest.raises(error) as raised:
        replace(page, SubPageItem(id=SUB_UK, name="EU", slug=slug))
    assert raised.value.field == "items[0].sub_page.slug"


def test_a_sub_page_slug_may_reuse_a_word_reserved_only_for_pages() -> None:
    page = given(StatusPage, created())
    replace(page, SubPageItem(id=SUB_UK, name="Metrics", slug="metrics"))
    assert page.structure == (SubPageItem(id=SUB_UK, name="Metrics", slug="metrics"),)


# Queries over a structure


STRUCTURE: tuple[StructureItem, ...] = (
    ComponentItem(LOGIN, hidden=True),
    GroupItem(id=GROUP_ID, name="Backend", hidden=True, components=(ComponentItem(API),)),
    SubPageItem(
        id=SUB_UK,
        name="UK",
        slug="uk",
        items=(GroupItem(id="g2", name="Edge", components=(ComponentItem(WEB),)),),
    ),
)


def test_component_ids_lists_every_component_on_the_page_including_sub_pages() -> None:
    assert component_ids(STRUCTURE) == [LOGIN, API, WEB]
    assert component_ids(()) == []


def test_component_placements_give_group_sub_page_and_hidden_flag() -> None:
    assert component_placements(STRUCTURE) == {
        LOGIN: ComponentPlacement(group_name=None, sub_page_ids=(), hidden=True),
        API: ComponentPlacement(group_name="Backend", sub_page_ids=(), hidden=True),  # hidden through its group
        WEB: ComponentPlacement(group_name="Edge", sub_page_ids=(SUB_UK,), hidden=False),
    }


# Handlers against the in-memory event store


def context(now: datetime = T0) -> CommandContext:
    return CommandContext(now=now, actor=ALICE, request_id="req-1")


async def test_create_status_page_appends_and_reserves_the_slug() -> None:
    store = InMemoryEventStore()
    page = await create_status_page(
        store, page_id=PAGE_ID, name="Acme", slug="acme", description=None, public_url=None, context=context()
    )

    assert page.widget_api_enabled
    assert (await load(store, StatusPage, PAGE_ID)).slug == "acme"
    assert await store.find_idempotent(slug_reservation("acme")) == PAGE_ID


async def test_a_slug_is_taken_for_every_other_page() -> None:
    store = InMemoryEventStore()
    await create_status_page(store, page_id=PAGE_ID, name="Acme", slug="acme", context=context())

    with pytest.raises(SlugTaken) as raised:
        await create_status_page(store, page_id=OTHER_PAGE_ID, name="Other", slug="acme", context=context())

    assert (raised.value.field, raised.value.code) == ("slug", "conflict")
    assert await store.load(OTHER_PAGE_ID) == []


async def test_concurrent_creates_with_one_slug_make_exactly_one_page() -> None:
    store = InMemoryEventStore()
    ids = [UUID(int=PAGE_ID.int + n) for n in range(10)]
    results = await asyncio.gather(
        *(create_status_page(store, page_id=i, name="Acme", slug="acme", context=context()) for i in ids),
        return_exceptions=True,
    )
    assert sum(isinstance(r, StatusPage) for r in results) == 1
    assert sum(isinstance(r, SlugTaken) for r in results) == 9


async def test_update_status_page_keeps_absent_fields_and_resets_none_ones() -> None:
    store = InMemoryEventStore()
    await create_status_page(
        store,
        page_id=PAGE_ID,
        name="Acme",
        slug="acme",
        description="Old",
        public_url="https://status.acme.test",
        context=context(),
    )
    await update_status_page(store, page_id=PAGE_ID, widget_api_enabled=False, context=context(T1))
    page = await update_status_page(store, page_id=PAGE_ID, name="Acme 2", context=context(T1))

    assert (page.name, page.description, page.public_url, page.widget_api_enabled) == (
        "Acme 2", "Old", "https://status.acme.test", False
    )
    await update_status_page(store, page_id=PAGE_ID, description=None, widget_api_enabled=None, context=context())
    reloaded = await load(store, StatusPage, PAGE_ID)
    assert (reloaded.name, reloaded.description, reloaded.widget_api_enabled, reloaded.version) == (
        "Acme 2", None, True, 4
    )


async def test_handlers_on_a_missing_page_are_not_found() -> None:
    store = InMemoryEventStore()
    with pytest.raises(NotFound):
        await update_status_page(store, page_id=PAGE_ID, name="Acme", context=context())
    with pytest.raises(NotFound):
        await replace_structure(store, page_id=PAGE_ID, items=(), components=COMPONENTS, context=context())


async def test_replace_structure_survives_the_store_round_trip() -> None:
    store = InMemoryEventStore()
    await create_status_page(store, page_id=PAGE_ID, name="Acme", slug="acme", context=context())
    items = (
        ComponentItem(LOGIN),
        GroupItem(id=GROUP_ID, name="Backend", description=None, components=(ComponentItem(API, hidden=True),)),
        SubPageItem(id=SUB_UK, name="United Kingdom", items=(ComponentItem(WEB),)),
    )

    page = await replace_structure(
        store,
        page_id=PAGE_ID,
        items=items,
        components=COMPONENTS,
        display_uptime_mode="nothing",
        context=context(T1),
    )

    reloaded = await load(store, StatusPage, PAGE_ID)
    assert reloaded.structure == page.structure
    assert reloaded.display_uptime_mode == "nothing"
    assert component_ids(reloaded.structure) == [LOGIN, API, WEB]
    assert reloaded.structure[2] == SubPageItem(
        id=SUB_UK, name="United Kingdom", slug="united-kingdom", items=(ComponentItem(WEB),)
    )


async def test_replace_structure_refuses_an_archived_component_and_appends_nothing() -> None:
    store = InMemoryEventStore()
    await create_status_page(store, page_id=PAGE_ID, name="Acme", slug="acme", context=context())
    with pytest.raises(UnplaceableComponent):
        await replace_structure(
            store, page_id=PAGE_ID, items=(ComponentItem(OLD),), components=COMPONENTS, context=context()
        )
    assert len(await store.load(PAGE_ID)) == 1
