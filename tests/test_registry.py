from __future__ import annotations

import shutil
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


def test_a_worker_without_the_registry_folder_loads_the_model_from_storage(
    db: str, tmp_path: Path
) -> None:
    from shared.config import Settings
    from shared.model_store import fetch_model, upload_model
    from shared.storage import LocalStore, ObjectNotFound
    from worker.models import choose_model, model_ready

    store = LocalStore(tmp_path / "objects")
    folder = _model(tmp_path / "trainer-home" / "m", 0.9, 0.3)
    with session_scope(db) as s:
        version = register(s, folder).version
        promote(s, version)
    keys = upload_model(store, folder, version)
    assert list(keys) == ["model.keras", "metadata.json"]  # the marker of a whole upload last
    shutil.rmtree(folder)  # this worker runs on another machine

    settings = Settings(database_url=db, home=tmp_path / "worker-home")
    assert model_ready(settings, store)  # the sweeper asks without downloading
    assert not (tmp_path / "worker-home" / "models").exists()
    choice = choose_model(settings, store)
    assert choice.version == version
    assert choice.path == tmp_path / "worker-home" / "models" / version
    assert (choice.path / "model.keras").read_bytes() == b"not loaded here"
    store.delete_prefix("models/")  # downloaded once: the copy on disk serves from now on
    assert choose_model(settings, store).path == choice.path
    assert [p.name for p in choice.path.parent.iterdir()] == [version]  # no partial copies
    with pytest.raises(ObjectNotFound):
        fetch_model(store, "0" * 12, tmp_path / "worker-home" / "models")


def test_a_production_model_missing_everywhere_falls_back_to_the_configured_one(
    db: str, tmp_path: Path
) -> None:
    from shared.config import Settings
    from shared.storage import LocalStore
    from worker.models import NoModel, choose_model, model_ready

    with session_scope(db) as s:
        version = register(s, _model(tmp_path / "gone", 0.9, 0.3)).version
        promote(s, version)
    shutil.rmtree(tmp_path / "gone")
    settings = Settings(database_url=db, home=tmp_path / "home")
    assert not model_ready(settings, LocalStore(tmp_path / "objects"))
    with pytest.raises(NoModel, match="waiting for a model"):
        choose_model(settings, LocalStore(tmp_path / "objects"))
    configured = _model(tmp_path / "configured", 0.5, 1.0)
    settings = Settings(database_url=db, home=tmp_path / "home", model_path=configured)
    assert choose_model(settings, LocalStore(tmp_path / "objects")).path == configured
