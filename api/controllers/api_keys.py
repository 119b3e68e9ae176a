"""API keys (admin): create (the token is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from api.errors import ApiError
from api.services import services_of
from api.types import AnyRequest
from api.wire import Payload
from infra.api_keys import ADMIN, SCOPES, ApiKey, create_key, list_keys, revoke_key
from infra.clock import format_timestamp


class CreateApiKeyPayload(Payload):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    scopes: list[str]


class ApiKeyView(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None = None
    token: str | None = None


class ApiKeyResult(msgspec.Struct):
    api_key: ApiKeyView


class ApiKeyList(msgspec.Struct):
    api_keys: list[ApiKeyView]


def _view(key: ApiKey, token: str | None = None) -> ApiKeyView:
    return ApiKeyView(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=format_timestamp(key.created_at),
        revoked_at=format_timestamp(key.revoked_at) if key.revoked_at else None,
        token=token,
    )


class ApiKeyController(Controller):
    path = "/api_keys"
    opt = {"scope": ADMIN}

    @post("/", status_code=201)
    async def create(self, request: AnyRequest, data: JSONBody[CreateApiKeyPayload]) -> ApiKeyResult:
        for index, scope in enumerate(data.scopes):
            if scope not in SCOPES:
                raise ApiError(
                    422, f"Unknown scope {scope!r}; use one of {', '.join(SCOPES)}", code="invalid_enum",
                    field=f"scopes[{index}]",
                )
        services = services_of(request)
        async with services.pool.acquire() as conn:
            key, token = await create_key(
                conn, name=data.name, scopes=tuple(dict.fromkeys(data.scopes)), now=services.clock.now()
            )
        return ApiKeyResult(api_key=_view(key, token))

    @get("/")
    async def list(self, request: AnyRequest) -> ApiKeyList:
        keys = await list_keys(services_of(request).pool)
        return ApiKeyList(api_keys=[_view(key) for key in keys])

    @delete("/{api_key_id:str}", status_code=204)
    async def revoke(self, request: AnyRequest, api_key_id: FromPath[str]) -> None:
        services = services_of(request)
        if not await revoke_key(services.pool, api_key_id, now=services.clock.now()):
            raise ApiError(404, f"No active API key {api_key_id}", code="not_found")
        services.key_cache.forget(api_key_id)
