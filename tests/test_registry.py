from __future__ import annotations

from pathlib import Path

import pytest

from shared.artifact import ModelMetadata
from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.registry import RegistryError, production, promote, register, rollback


def _model(folder: Path, accuracy: float, loss: float, fingerprint: str = "split-1") -> Path:
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"not loaded here")
    meta = ModelMetadata(
        class_names=["a", "b"],
        backbone="tiny",
        weights_id="random",
        input_size=32,
        taps=["last:avg"],
        preprocessing={"input_size": 32},
        metrics={"test": {"accuracy": accuracy, "loss": loss}},
        dataset={"fingerprint": fingerprint},
        recipe={"name": folder.name},
    )
    (folder / "metadata.json").write_text(meta.model_dump_json())
    return folder


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    return url


def test_promotion_needs_a_better_test_score_on_the_same_split(db: str, tmp_path: Path) -> None:
    with session_scope(db) as s:
        first = register(s, _model(tmp_path / "first", 0.80, 0.6)).version
        assert promote(s, first).promoted  # nothing in production yet
        worse = register(s, _model(tmp_path / "worse", 0.78, 0.5)).version
        decision = promote(s, worse)
        assert not decision.promoted and "does not beat" in decision.reason
        tie = register(s, _model(tmp_path / "tie", 0.80, 0.4)).version
        decision = promote(s, tie)
        assert decision.promoted and decision.previous == first  # tie broken by loss
        other = register(s, _model(tmp_path / "other", 0.99, 0.1, "split-2")).version
        decision = promote(s, other)
        assert not decision.promoted and "not comparable" in decision.reason
        assert promote(s, other, force=True).promoted
        assert production(s).version == other


def test_rollback_restores_the_previous_production(db: str, tmp_path: Path) -> None:
    with session_scope(db) as s:
        with pytest.raises(RegistryError):
            rollback(s)
        a = register(s, _model(tmp_path / "a", 0.7, 0.9)).version
        promote(s, a)
        b = register(s, _model(tmp_path / "b", 0.8, 0.8)).version
        promote(s, b)
        decision = rollback(s)
        assert decision.version == a and production(s).version == a
        assert register(s, tmp_path / "b").stage == "archived"  # registering again: same row
