"""API keys: sent as ``X-API-Key`` or ``Authorization: Bearer``; stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import ApiError
from shared.db.models import ApiKey, Tenant


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    is_admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_tenant_key(session: Session, tenant_name: str, is_admin: bool = False) -> str:
    """Create (or reuse) a tenant and give it a new key; the plain key is returned once."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    key = "sw_" + secrets.token_urlsafe(32)
    session.add(
        ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10], is_admin=is_admin)
    )
    return key


def _presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def authenticate() -> Caller:
    key = _presented_key()
    if not key:
        raise ApiError(401, "Unauthorized", "send your API key in the X-API-Key header")
    from api.db import db_session

    with db_session() as session:
        row = session.scalar(
            select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
        if row is None:
            raise ApiError(401, "Unauthorized", "that API key is not valid")
        g.caller = Caller(row.tenant_id, row.is_admin)
    return g.caller
