"""A status page's structure: the tree of components, groups and sub-pages a page shows
(docs/architecture.md#glossary) — its value types, its rules, its stored form and the queries over it.
`StatusPage.replace_structure` applies the rules; the API and the projections read the rest.

Decisions, for the API and the projections:

- A structure item never stores a component's name: components are organisation-level and the name
  comes from the `Component` aggregate, so a rename shows on every page at once. A name sent back in a
  structure (Show's body edited and returned) must be the component's own: a different one is refused
  rather than ignored, since the caller evidently meant a rename, which is the component's `PUT`.
- A component appears at most once in a page's whole tree (top level, groups, sub-pages and their
  groups). That keeps "which group is it in" and "is it hidden" single answers for the widget; a shared
  dependency shown per region is modelled as one component per region.
- A hidden group hides its components. Sub-pages hold components and groups, never sub-pages.
- Every sub-page has a slug for its widget URL: the one given, else the one it already had (so a client
  that round-trips Show's body without slugs keeps its URLs), else one derived from its name.
- Group and sub-page ids come from the caller (the domain never makes ids): the API mints them for
  items sent without one.
- A replacement names the settings it left out (`unset` on a component or group item): a component or
  group the page already shows keeps its stored `hidden`, `display_uptime`, `display_aggregated_uptime`
  and `description` for them, wherever it moves in the tree; a new one gets the defaults. Without this, an
  editor that omits a flag would quietly un-hide a component.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from domain.base import DomainError
from domain.component import ComponentInfo
from domain.rules import MAX_SLUG_LENGTH, check_name, check_read_only, check_slug

# A sub-page slug is the second path segment (`/{page}/{sub_page}/api/v1/summary`); only `api` would read
# ambiguously there (`/{page}/api/v1/summary` is the page's own widget).
RESERVED_SUB_PAGE_SLUGS = frozenset({"api"})


# The structure as commands take it and as `StatusPage.structure` gives it back. Plain dataclasses, not
# wire structs: the API converts its payload into these.


@dataclass(frozen=True)
class ComponentItem:
    """A component placed on a page (directly, in a group or on a sub-page)."""

    component_id: str
    hidden: bool = False
    display_uptime: bool = True
    unset: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)
    """Settings the request left out: kept from the stored item if the page shows it (never stored)."""
    name: str | None = dataclasses.field(default=None, compare=False)
    """The component's name as the request echoed it: checked against the component, never stored."""


@dataclass(frozen=True)
class GroupItem:
    """A named group of components; groups nest one level only."""

    id: str
    name: str
    description: str | None = None
    hidden: bool = False
    display_aggregated_uptime: bool = True
    components: tuple[ComponentItem, ...] = ()
    unset: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)
    """As `ComponentItem.unset`, for `description`, `hidden` and `display_aggregated_uptime`."""


@dataclass(frozen=True)
class SubPageItem:
    """A sub-page with its own widget URL; holds components and groups."""

    id: str
    name: str
    slug: str | None = None
    items: tuple[ComponentItem | GroupItem, ...] = ()


StructureItem = ComponentItem | GroupItem | SubPageItem


@dataclass(frozen=True)
class ComponentPlacement:
    """Where a component sits on a page: what the widget needs to name, filter and hide it."""

    group_name: str | None
    sub_page_ids: tuple[str, ...]
    hidden: bool


# Rules


def slugify(name: str) -> str:
    """A slug derived from a name: ASCII-folded, lowercase, runs of other characters become one '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-") or "sub-page"


def _unique_slug(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: MAX_SLUG_LENGTH - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1


def structure_item(
    *,
    component: ComponentItem | None = None,
    group: GroupItem | None = None,
    sub_page: SubPageItem | None = None,
    field: str = "items",
) -> StructureItem:
    """The one thing a wire item holds; the API calls this so "exactly one of the three" is a domain rule."""
    present = [item for item in (component, group, sub_page) if item is not None]
    if len(present) != 1:
        raise InvalidStructureItem(f"{field} must hold exactly one of component, group or sub_page", field=field)
    return present[0]


_Settled = TypeVar("_Settled", ComponentItem, GroupItem)


def keep_stored_settings(items: Sequence[StructureItem], stored: Sequence[StructureItem]) -> list[StructureItem]:
    """`items` with every `unset` setting taken from the stored component or group with the same id (the
    defaults stay for new ones); matched by id, not position, so an item keeps its settings as it moves.
    `items` must have passed the rules: the tree's shape is trusted here."""
    stored_components = {component.component_id: component for component, _, _ in _walk(stored)}
    stored_groups = {group.id: group for group in _groups(stored)}

    def component(item: ComponentItem) -> ComponentItem:
        return _with_kept(item, stored_components.get(item.component_id))

    def member(item: ComponentItem | GroupItem) -> ComponentItem | GroupItem:
        if isinstance(item, ComponentItem):
            return component(item)
        group = _with_kept(item, stored_groups.get(item.id))
        return dataclasses.replace(group, components=tuple(component(c) for c in group.components))

    return [
        dataclasses.replace(item, items=tuple(member(m) for m in item.items)) if isinstance(item, SubPageItem)
        else member(item)
        for item in items
    ]


def _with_kept(item: _Settled, stored: _Settled | None) -> _Settled:
    kept = {name: getattr(stored, name) for name in item.unset} if stored is not None else {}
    return dataclasses.replace(item, unset=frozenset(), **kept)


def check_structure(
    items: Sequence[StructureItem], components: Mapping[str, ComponentInfo], current_slugs: Mapping[str, str]
) -> list[StructureItem]:
    """Every rule of a structure; returns it with each sub-page's slug resolved."""
    seen_components: set[str] = set()
    seen_ids: set[str] = set()
    explicit_slugs: set[str] = set()

    def check_component(item: ComponentItem, path: str) -> None:
        field = f"{path}.component_id"
        info = components.get(item.component_id)
        if info is None:
            raise UnplaceableComponent(f"component {item.component_id} does not exist", field=field)
        if info.archived:
            raise UnplaceableComponent(f"component {item.component_id} has been deleted", field=field)
        if item.name is not None:
            check_read_only(f"{path}.name", item.name, info.name)
        if item.component_id in seen_components:
            raise ComponentPlacedTwice(
                f"component {item.component_id} appears more than once on this page", field=field
            )
        seen_components.add(item.component_id)

    def check_id(item_id: str, path: str) -> None:
        if not item_id:
            raise InvalidStructureItem(f"{path}.id is required", field=f"{path}.id", code="is_required")
        if item_id in seen_ids:
            raise InvalidStructureItem(f"id {item_id} is used by more than one group or sub-page", field=f"{path}.id")
        seen_ids.add(item_id)

    def check_group(item: GroupItem, path: str) -> None:
        check_id(item.id, path)
        check_name(item.name, field=f"{path}.name")
        for j, component in enumerate(item.components):
            if not isinstance(component, ComponentItem):
                raise InvalidStructureItem("a group holds only components", field=f"{path}.components[{j}]")
            check_component(component, f"{path}.components[{j}]")

    def check_member(item: StructureItem, path: str, *, in_sub_page: bool) -> None:
        if isinstance(item, ComponentItem):
            check_component(item, f"{path}.component")
        elif isinstance(item, GroupItem):
            check_group(item, f"{path}.group")
        elif isinstance(item, SubPageItem) and not in_sub_page:
            check_sub_page(item, f"{path}.sub_page")
        else:
            raise InvalidStructureItem("a sub-page holds only components and groups", field=path)

    def check_sub_page(item: SubPageItem, path: str) -> None:
        check_id(item.id, path)
        check_name(item.name, field=f"{path}.name")
        if item.slug is not None:
            check_slug(item.slug, field=f"{path}.slug", reserved=RESERVED_SUB_PAGE_SLUGS)
            if item.slug in explicit_slugs:
                raise DuplicateSubPageSlug(
                    f"sub-page slug {item.slug!r} is used twice on this page", field=f"{path}.slug"
                )
            explicit_slugs.add(item.slug)
        for j, member in enumerate(item.items):
            check_member(member, f"{path}.items[{j}]", in_sub_page=True)

    for i, item in enumerate(items):
        check_member(item, f"items[{i}]", in_sub_page=False)

    taken = set(explicit_slugs) | RESERVED_SUB_PAGE_SLUGS
    resolved: list[StructureItem] = []
    for item in items:
        if isinstance(item, SubPageItem) and item.slug is None:
            slug = current_slugs.get(item.id)
            if slug is None or slug in taken:
                slug = _unique_slug(slugify(item.name), taken)
            taken.add(slug)
            resolved.append(dataclasses.replace(item, slug=slug))
        else:
            resolved.append(item)
    return resolved


# Stored form: the wire's shape minus component names, plus each sub-page's slug. JSON-native so the
# library's transcoder stores it as is.


def _component_data(item: ComponentItem) -> dict[str, Any]:
    return {
        "component": {
            "component_id": item.component_id,
            "hidden": item.hidden,
            "display_uptime": item.display_uptime,
        }
    }


def _group_data(item: GroupItem) -> dict[str, Any]:
    return {
        "group": {
            "id": item.id,
            "name": item.name,
            "description": item.description,
            "hidden": item.hidden,
            "display_aggregated_uptime": item.display_aggregated_uptime,
            "components": [_component_data(c)["component"] for c in item.components],
        }
    }


def _item_data(item: StructureItem) -> dict[str, Any]:
    if isinstance(item, ComponentItem):
        return _component_data(item)
    if isinstance(item, GroupItem):
        return _group_data(item)
    return {
        "sub_page": {
            "id": item.id,
            "name": item.name,
            "slug": item.slug,
            "items": [_item_data(member) for member in item.items],
        }
    }


def _parse_component(data: Mapping[str, Any]) -> ComponentItem:
    return ComponentItem(
        component_id=data["component_id"], hidden=data["hidden"], display_uptime=data["display_uptime"]
    )


def _parse_item(data: Mapping[str, Any]) -> StructureItem:
    if "component" in data:
        return _parse_component(data["component"])
    if "group" in data:
        group = data["group"]
        return GroupItem(
            id=group["id"],
            name=group["name"],
            description=group["description"],
            hidden=group["hidden"],
            display_aggregated_uptime=group["display_aggregated_uptime"],
            components=tuple(_parse_component(c) for c in group["components"]),
        )
    sub_page = data["sub_page"]
    members: list[ComponentItem | GroupItem] = []
    for member_data in sub_page["items"]:
        member = _parse_item(member_data)
        assert not isinstance(member, SubPageItem)  # the rules never store a nested sub-page
        members.append(member)
    return SubPageItem(id=sub_page["id"], name=sub_page["name"], slug=sub_page["slug"], items=tuple(members))


def structure_data(items: Sequence[StructureItem]) -> list[dict[str, Any]]:
    """The stored form of a structure (a `StructureReplaced` event's `items`)."""
    return [_item_data(item) for item in items]


def parse_structure(items: Sequence[Mapping[str, Any]]) -> tuple[StructureItem, ...]:
    """The structure from a `StructureReplaced` event's `items` (projections use this too)."""
    return tuple(_parse_item(item) for item in items)


# Queries over a structure, for the API (does this component belong to the page?) and the widget.


def sub_pages(items: Sequence[StructureItem]) -> list[SubPageItem]:
    return [item for item in items if isinstance(item, SubPageItem)]


def _walk(items: Sequence[StructureItem]) -> Iterator[tuple[ComponentItem, GroupItem | None, str | None]]:
    """Every placed component with its group and sub-page id, in display order."""
    for item in items:
        if isinstance(item, SubPageItem):
            for component, group, _ in _walk(item.items):
                yield component, group, item.id
        elif isinstance(item, GroupItem):
            for component in item.components:
                yield component, item, None
        else:
            yield item, None, None


def _groups(items: Sequence[StructureItem]) -> Iterator[GroupItem]:
    """Every group on the page, sub-pages included."""
    for item in items:
        if isinstance(item, SubPageItem):
            yield from _groups(item.items)
        elif isinstance(item, GroupItem):
            yield item


def component_ids(items: Sequence[StructureItem]) -> list[str]:
    """The ids of every component on the page, sub-pages included, in display order."""
    return [component.component_id for component, _, _ in _walk(items)]


def component_placements(items: Sequence[StructureItem]) -> dict[str, ComponentPlacement]:
    """For each component on the page: its group's name, the sub-pages showing it (at most one under
    the current rules) and whether it is hidden (itself or through its group)."""
    placements: dict[str, ComponentPlacement] = {}
    for component, group, sub_page_id in _walk(items):
        placements[component.component_id] = ComponentPlacement(
            group_name=group.name if group else None,
            sub_page_ids=(sub_page_id,) if sub_page_id else (),
            hidden=component.hidden or bool(group and group.hidden),
        )
    return placements


# Errors


class InvalidStructureItem(DomainError):
    """Raised when a structure item is malformed: not exactly one kind, nested wrongly, or a bad id."""


class UnplaceableComponent(DomainError):
    """Raised when a structure places a component that does not exist or has been deleted."""


class ComponentPlacedTwice(DomainError):
    """Raised when a structure places the same component twice on one page."""


class DuplicateSubPageSlug(DomainError):
    """Raised when two sub-pages of one page are given the same slug."""
