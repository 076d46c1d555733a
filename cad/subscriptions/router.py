from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cad.deps import AdminUser, IdPath, StateDep, tx
from cad.http import JSON, returns
from cad.subscriptions import service
from cad.subscriptions.schemas import SubscriptionIn, SubscriptionOut, SubscriptionsOut

router = APIRouter(prefix="/api/subscriptions", tags=["subscriptions"])


@router.post("", status_code=201, response_class=JSON, responses=returns(SubscriptionOut, 201))
async def create(body: SubscriptionIn, state: StateDep, principal: AdminUser) -> Any:
    """A partner's URL, a filter (areas, grades, types; empty matches all) and a shared
    secret: from now on every change of a matching incident is POSTed to the URL as an
    EIDO document, signed (X-CAD-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
    "<t>." + body)>), at least once and in order per incident (docs/EIDO.md)."""
    async with tx(state) as conn:
        return await service.create(conn, state, body, principal.actor)


@router.get("", response_class=JSON, responses=returns(SubscriptionsOut))
async def list_subscriptions(state: StateDep, _: AdminUser) -> Any:
    """Every subscription with its lag (the oldest undelivered change's age), what waits,
    and the partner's last error."""
    async with tx(state) as conn:
        return {"subscriptions": await service.list_all(conn)}


@router.delete("/{subscription_id}", response_class=JSON, responses=returns(SubscriptionOut))
async def end(subscription_id: IdPath, state: StateDep, _: AdminUser) -> Any:
    """Stop delivering (what was delivered stays in the record)."""
    async with tx(state) as conn:
        return await service.end(conn, subscription_id)
