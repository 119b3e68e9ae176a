"""A status page's structure: ShowStatusPageStructure (any key, from the catalog) and Beacon's
ReplaceStatusPageStructure (admin), which takes the same `items` shape and answers with Show's body.

Groups and sub-pages sent without an `id` are new: this controller mints their ULIDs (the domain never
makes ids). Show leaves out components that have since been deleted, so its body can be sent back as a
replacement, read-only fields included: a component's `name` and `management_meta` are accepted as
shown and are a 422 naming the field (`read_only`) otherwise — a name comes from the component.

The replacement is strict (an unknown field at any depth is a 422, so a misspelt `components` cannot
empty a group) and keeps what it does not say: a component or group the page already shows keeps its
stored `hidden`, `display_uptime`, `display_aggregated_uptime` and `description` when the item leaves
them out (`domain/structure.py`); new items get the defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from api.controllers.components import ManagementMetaPayload, check_management_meta
from api.errors import ApiError
from api.services import services_of
from api.types import AnyRequest
from api.wire import ManagementMeta, Payload, management_meta, not_found, path_id
from domain.base import EventStore, NotFound, load
from domain.component import Component, ComponentInfo
from domain.status_page import replace_structure
from domain.structure import ComponentItem, GroupItem, StructureItem, SubPageItem, component_ids, structure_item
from infra.api_keys import ADMIN
from infra.ids import is_ulid, new_ulid, ulid_to_uuid
from projections import status_page_catalog as catalog

# Responses: incident.io's StatusPagesShowStatusPageStructureResultV2 and the structures inside it.


class StructureComponent(msgspec.Struct):
    component_id: str
    name: str
    hidden: bool
    display_uptime: bool


class StructureGroup(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    name: str
    description: str | None = None
    hidden: bool
    display_aggregated_uptime: bool
    components: list[StructureComponent]


class StructureSubPageItem(msgspec.Struct, omit_defaults=True):
    component: StructureComponent | None = None
    group: StructureGroup | None = None


class StructureSubPage(msgspec.Struct):
    id: str
    name: str
    slug: str
    items: list[StructureSubPageItem]


class StructureItemView(msgspec.Struct, omit_defaults=True):
    component: StructureComponent | None = None
    group: StructureGroup | None = None
    sub_page: StructureSubPage | None = None


class Structure(msgspec.Struct):
    items: list[StructureItemView]


class ShowStatusPageStructureResult(msgspec.Struct):
    current_structure: Structure
    display_uptime_mode: str
    management_meta: ManagementMeta


# Requests: the same shapes, with ids optional for new groups and sub-pages, settings optional (UNSET:
# keep the stored value, see the module docstring) and a component's `name` accepted as an echo. Names of
# groups and sub-pages default to "" so the domain reports them with their path.

_COMPONENT_SETTINGS = ("hidden", "display_uptime")
_GROUP_SETTINGS = ("description", "hidden", "display_aggregated_uptime")


class ComponentPayload(Payload):
    component_id: str
    name: str | msgspec.UnsetType = msgspec.UNSET
    hidden: bool | msgspec.UnsetType = msgspec.UNSET
    display_uptime: bool | msgspec.UnsetType = msgspec.UNSET


class GroupPayload(Payload):
    id: str | None = None
    name: str = ""
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    hidden: bool | msgspec.UnsetType = msgspec.UNSET
    display_aggregated_uptime: bool | msgspec.UnsetType = msgspec.UNSET
    components: list[ComponentPayload] = []


class SubPageItemPayload(Payload):
    component: ComponentPayload | None = None
    group: GroupPayload | None = None


class SubPagePayload(Payload):
    id: str | None = None
    name: str = ""
    slug: str | None = None
    items: list[SubPageItemPayload] = []


class ItemPayload(Payload):
    component: ComponentPayload | None = None
    group: GroupPayload | None = None
    sub_page: SubPagePayload | None = None


class StructurePayload(Payload):
    items: list[ItemPayload]


class ReplaceStatusPageStructurePayload(Payload):
    """`items` at the top level, or Show's whole body (`current_structure.items`) sent back as is."""

    items: list[ItemPayload] | None = None
    current_structure: StructurePayload | None = None
    display_uptime_mode: str | None = None
    management_meta: ManagementMetaPayload | msgspec.UnsetType = msgspec.UNSET


# Payload -> domain structure.


def _settings(payload: msgspec.Struct, names: tuple[str, ...]) -> dict[str, Any]:
    """The settings `payload` gives, and as `unset` the ones it leaves out, whose stored values the domain
    keeps (their defaults for an item the page does not show yet)."""
    given = {name: value for name in names if (value := getattr(payload, name)) is not msgspec.UNSET}
    return {**given, "unset": frozenset(names) - given.keys()}


def _component(payload: ComponentPayload) -> ComponentItem:
    return ComponentItem(
        component_id=payload.component_id,
        name=None if payload.name is msgspec.UNSET else payload.name,
        **_settings(payload, _COMPONENT_SETTINGS),
    )


def _group(payload: GroupPayload, mint: Callable[[], str]) -> GroupItem:
    return GroupItem(
        id=payload.id or mint(),
        name=payload.name,
        components=tuple(_component(c) for c in payload.components),
        **_settings(payload, _GROUP_SETTINGS),
    )


def _sub_page_member(
    payload: SubPageItemPayload, mint: Callable[[], str], field: str
) -> ComponentItem | GroupItem:
    member = structure_item(
        component=_component(payload.component) if payload.component else None,
        group=_group(payload.group, mint) if payload.group else None,
        field=field,
    )
    assert not isinstance(member, SubPageItem)  # the payload type has no sub_page field
    return member


def _item(payload: ItemPayload, mint: Callable[[], str], field: str) -> StructureItem:
    sub_page = None
    if payload.sub_page is not None:
        members = [
            _sub_page_member(member, mint, f"{field}.sub_page.items[{j}]")
            for j, member in enumerate(payload.sub_page.items)
        ]
        sub_page = SubPageItem(
            id=payload.sub_page.id or mint(),
            name=payload.sub_page.name,
            slug=payload.sub_page.slug,
            items=tuple(members),
        )
    return structure_item(
        component=_component(payload.component) if payload.component else None,
        group=_group(payload.group, mint) if payload.group else None,
        sub_page=sub_page,
        field=field,
    )


def to_structure(payload: ReplaceStatusPageStructurePayload, mint: Callable[[], str]) -> list[StructureItem]:
    if payload.items is not None and payload.current_structure is not None:
        # Two structures in one body: taking either would silently drop the other.
        raise ApiError(422, "send items or current_structure, not both", field="current_structure")
    if payload.items is not None:
        items = payload.items
    elif payload.current_structure is not None:
        items = payload.current_structure.items
    else:
        raise ApiError(422, "items is required", code="is_required", field="items")
    return [_item(item, mint, f"items[{i}]") for i, item in enumerate(items)]


# Domain structure -> Show's body. Components without a name (deleted ones) are left out.


def _component_view(item: ComponentItem, names: Mapping[str, str]) -> StructureComponent | None:
    name = names.get(item.component_id)
    if name is None:
        return None
    return StructureComponent(
        component_id=item.component_id, name=name, hidden=item.hidden, display_uptime=item.display_uptime
    )


def _group_view(item: GroupItem, names: Mapping[str, str]) -> StructureGroup:
    components = [view for c in item.components if (view := _component_view(c, names)) is not None]
    return StructureGroup(
        id=item.id,
        name=item.name,
        description=item.description,
        hidden=item.hidden,
        display_aggregated_uptime=item.display_aggregated_uptime,
        components=components,
    )


def _item_view(item: StructureItem, names: Mapping[str, str]) -> StructureItemView | None:
    if isinstance(item, ComponentItem):
        component = _component_view(item, names)
        return StructureItemView(component=component) if component else None
    if isinstance(item, GroupItem):
        return StructureItemView(group=_group_view(item, names))
    members: list[StructureSubPageItem] = []
    for member in item.items:
        view = _item_view(member, names)
        if view is not None:
            members.append(StructureSubPageItem(component=view.component, group=view.group))
    return StructureItemView(
        sub_page=StructureSubPage(id=item.id, name=item.name, slug=item.slug or "", items=members)
    )


def render_structure(
    items: Sequence[StructureItem], names: Mapping[str, str], display_uptime_mode: str
) -> ShowStatusPageStructureResult:
    views = [view for item in items if (view := _item_view(item, names)) is not None]
    return ShowStatusPageStructureResult(
        current_structure=Structure(items=views),
        display_uptime_mode=display_uptime_mode,
        management_meta=management_meta(),
    )


async def _component_infos(store: EventStore, ids: Sequence[str]) -> dict[str, ComponentInfo]:
    """The placed components as the log has them; ids naming nothing are left for the domain to reject."""

    async def info(component_id: str) -> ComponentInfo | None:
        if not is_ulid(component_id):
            return None
        try:
            return (await load(store, Component, ulid_to_uuid(component_id))).info
        except NotFound:
            return None

    unique = list(dict.fromkeys(ids))
    found = await asyncio.gather(*(info(cid) for cid in unique))
    return {cid: item for cid, item in zip(unique, found, strict=True) if item is not None}


class StatusPageStructureController(Controller):
    path = "/status_page_structures"

    @get("/{status_page_id:str}")
    async def show_structure(
        self, request: AnyRequest, status_page_id: FromPath[str]
    ) -> ShowStatusPageStructureResult:
        pool = services_of(request).pool
        structure = await catalog.get_structure(pool, status_page_id)
        if structure is None:
            raise not_found("status page", status_page_id)
        components = await catalog.components_by_id(pool, component_ids(structure.items))
        names = {cid: row.name for cid, row in components.items() if not row.archived}
        return render_structure(structure.items, names, structure.display_uptime_mode)

    @put("/{status_page_id:str}", opt={"scope": ADMIN})
    async def replace_structure(
        self,
        request: AnyRequest,
        status_page_id: FromPath[str],
        data: JSONBody[ReplaceStatusPageStructurePayload],
    ) -> ShowStatusPageStructureResult:
        services = services_of(request)
        context = services.context(request)
        page_id = path_id(status_page_id, "status page")
        check_management_meta(data.management_meta)
        items = to_structure(data, lambda: new_ulid(services.clock.now()))
        components = await _component_infos(services.store, component_ids(items))
        try:
            page = await replace_structure(
                services.store,
                page_id=page_id,
                items=items,
                components=components,
                display_uptime_mode=data.display_uptime_mode,
                context=context,
            )
        except NotFound as error:  # the domain names the stream by UUID; the client knows the ULID
            raise not_found("status page", status_page_id) from error
        await services.settle_command(context)
        names = {cid: info.name for cid, info in components.items()}
        return render_structure(page.structure, names, page.display_uptime_mode)
