"""Which model to classify with, loaded once per worker process and swapped between batches."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from shared.artifact import ArtifactError, model_version, read_metadata
from shared.config import Settings
from shared.db.session import session_scope
from shared.registry import production

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    version: str
    path: Path


class NoModel(Exception):
    """No model is configured or promoted yet; the message says what to do."""


def choose_model(settings: Settings) -> ModelChoice:
    """The registry's production model, else the configured ``SWATCH_MODEL_PATH``."""
    with session_scope(settings.database) as session:
        row = production(session)
        if row is not None and Path(row.uri).is_dir():
            return ModelChoice(row.version, Path(row.uri))
    if settings.model_path is None:
        raise NoModel("waiting for a model: none is configured (SWATCH_MODEL_PATH) or promoted")
    try:
        read_metadata(settings.model_path)
    except ArtifactError as exc:
        raise NoModel(f"waiting for a model: {exc}") from None
    return ModelChoice(model_version(settings.model_path), settings.model_path)


class ModelCache:
    """One loaded classifier per process; reloads only when the chosen version changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._classifier = None

    def get(self, settings: Settings):
        choice = choose_model(settings)
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
