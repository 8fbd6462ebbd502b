"""``/v1/items``: one classified image, and its background-removed cut-out."""

from __future__ import annotations

from flask import Blueprint, Response

from api.auth import authenticate
from api.db import db_session, fetch_object
from api.errors import ApiError, not_found
from api.jobs import item_body
from api.responses import json_response
from shared.db.models import Item

bp = Blueprint("items", __name__, url_prefix="/v1")


def _own_item(session, item_id: str, tenant_id: str) -> Item:
    item = session.get(Item, item_id)
    if item is None or item.tenant_id != tenant_id:
        raise not_found("item")
    return item


@bp.get("/items/<item_id>")
def get_item(item_id: str) -> Response:
    caller = authenticate()
    with db_session() as session:
        body = item_body(_own_item(session, item_id, caller.tenant_id), top_k=100)
    return json_response(body)


@bp.get("/items/<item_id>/cutout")
def get_cutout(item_id: str) -> Response:
    caller = authenticate()
    with db_session() as session:
        item = _own_item(session, item_id, caller.tenant_id)
        key = item.cutout_key
    if not key:
        raise ApiError(
            404,
            "Not found",
            "this item has no cut-out (not classified yet, "
            "failed, or background removal is off for this model)",
        )
    data = fetch_object(key, "cut-out")
    return Response(data, mimetype="image/webp" if key.endswith(".webp") else "image/png")
