"""The API's handles on the database, storage and settings, from the app's config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.errors import ApiError, unavailable
from shared.config import Settings
from shared.db.session import session_scope
from shared.storage import ObjectNotFound, ObjectStore, StorageError


def settings() -> Settings:
    return current_app.extensions["swatch.settings"]


def store() -> ObjectStore:
    return current_app.extensions["swatch.store"]


@contextmanager
def db_session() -> Iterator[Session]:
    try:
        with session_scope(settings().database) as session:
            yield session
    except OperationalError as exc:
        raise unavailable(f"the database cannot be reached: {exc.orig}") from exc


def fetch_object(key: str, what: str) -> bytes:
    """An object's bytes; 404 when it is gone, 503 when storage cannot be reached."""
    try:
        return store().get(key)
    except ObjectNotFound:
        raise ApiError(404, "Not found", f"the {what} is gone from storage") from None
    except StorageError as exc:
        raise unavailable(f"object storage cannot be reached: {exc}") from exc
