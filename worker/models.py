"""Which model to classify with, loaded once per worker process and swapped between batches."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from shared.artifact import ArtifactError, model_version, read_metadata
from shared.config import Settings
from shared.db.session import session_scope
from shared.model_store import fetch_model, has_model
from shared.registry import production
from shared.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    version: str
    path: Path


class NoModel(Exception):
    """No model is configured or promoted yet; the message says what to do."""


def _production(settings: Settings) -> ModelChoice | None:
    """The registry's production version and its folder on the trainer's disk."""
    with session_scope(settings.database) as session:
        row = production(session)
        return ModelChoice(row.version, Path(row.uri)) if row is not None else None


def _configured(settings: Settings) -> ModelChoice:
    if settings.model_path is None:
        raise NoModel("waiting for a model: none is configured (SWATCH_MODEL_PATH) or promoted")
    try:
        read_metadata(settings.model_path)
    except ArtifactError as exc:
        raise NoModel(f"waiting for a model: {exc}") from None
    return ModelChoice(model_version(settings.model_path), settings.model_path)


def choose_model(settings: Settings, store: ObjectStore) -> ModelChoice:
    """The registry's production model, else the configured ``SWATCH_MODEL_PATH``.

    The production model is read from the registry's folder when this machine has it, else
    downloaded from object storage once (a worker on another machine).
    """
    prod = _production(settings)
    if prod is not None:
        if prod.path.is_dir():
            return prod
        try:
            return ModelChoice(
                prod.version, fetch_model(store, prod.version, settings.home / "models")
            )
        except ObjectNotFound:
            log.warning(
                "production model %s is neither at %s nor in storage", prod.version, prod.path
            )
    return _configured(settings)


def model_ready(settings: Settings, store: ObjectStore) -> bool:
    """Whether a worker would find a model, without downloading one (the sweeper asks)."""
    prod = _production(settings)
    if prod is not None and (prod.path.is_dir() or has_model(store, prod.version)):
        return True
    try:
        _configured(settings)
    except NoModel:
        return False
    return True


class ModelCache:
    """One loaded classifier per process; reloads only when the chosen version changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._classifier = None

    def get(self, settings: Settings, store: ObjectStore):
        choice = choose_model(settings, store)
        with self._lock:
            if choice.version != self._version:
                from shared.classifier import Classifier

                log.info("loading model %s from %s", choice.version, choice.path)
                self._classifier = Classifier.load(choice.path, settings)
                self._version = choice.version
            return self._classifier, self._version

    def clear(self) -> None:
        with self._lock:
            self._version, self._classifier = None, None


MODELS = ModelCache()
