from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import ModelVersion, RunStatus, TrainingRun
from shared.db.session import session_scope
from shared.registry import production
from shared.storage import LocalStore
from trainer.runs import create_run, execute

TINY = {"backbone": "tiny", "input_size": 32, "background_removal": False}


@pytest.fixture
def run_settings(settings: Settings) -> Settings:
    upgrade(settings.database)
    return settings


def _run(settings: Settings, run_id: str) -> TrainingRun:
    with session_scope(settings.database) as session:
        return session.get(TrainingRun, run_id)


def test_a_train_run_is_recorded_registered_and_promoted(
    run_settings: Settings, pattern_tree: Path
) -> None:
    store = LocalStore(run_settings.storage_path)
    run_id = create_run(
        run_settings,
        "train",
        {"dataset": str(pattern_tree), "recipe": "pooled", "options": TINY, "promote": True},
    )
    assert execute(run_settings, store, run_id) == RunStatus.SUCCEEDED
    run = _run(run_settings, run_id)
    assert run.model_version and run.metrics["test"]["accuracy"] >= 0
    assert run.dataset["fingerprint"] and set(run.dataset["split"]) == {
        "train",
        "validation",
        "test",
    }
    assert run.progress["done"] == run.progress["total"]
    assert store.exists(run.artifacts["model.keras"])
    assert "confusion_test.png" in run.artifacts
    with session_scope(run_settings.database) as session:
        assert production(session).version == run.model_version
    # running it again does nothing: the run is final
    assert execute(run_settings, store, run_id) == RunStatus.SUCCEEDED


def test_a_failed_run_leaves_production_untouched(run_settings: Settings, tmp_path: Path) -> None:
    store = LocalStore(run_settings.storage_path)
    run_id = create_run(
        run_settings,
        "train",
        {"dataset": str(tmp_path / "missing"), "options": TINY, "promote": True},
    )
    assert execute(run_settings, store, run_id) == RunStatus.FAILED
    assert "is not a folder" in _run(run_settings, run_id).error
    with session_scope(run_settings.database) as session:
        assert production(session) is None
        assert session.query(ModelVersion).count() == 0


def test_a_cancelled_run_stops_at_the_next_step(run_settings: Settings, pattern_tree: Path) -> None:
    store = LocalStore(run_settings.storage_path)
    run_id = create_run(
        run_settings, "train", {"dataset": str(pattern_tree), "recipe": "study", "options": TINY}
    )
    with session_scope(run_settings.database) as session:
        session.get(TrainingRun, run_id).status = RunStatus.RUNNING
    # cancelled while "running" (as the API does): the first progress write notices
    from trainer import runs

    original = runs._RunProgress.__init__

    def cancel_then_init(self, *args, **kwargs):
        with session_scope(run_settings.database) as session:
            session.get(TrainingRun, run_id).status = RunStatus.CANCELLED
        original(self, *args, **kwargs)

    runs._RunProgress.__init__ = cancel_then_init
    try:
        with session_scope(run_settings.database) as session:
            session.get(TrainingRun, run_id).status = RunStatus.QUEUED
        assert execute(run_settings, store, run_id) == RunStatus.CANCELLED
    finally:
        runs._RunProgress.__init__ = original


def test_pipeline_run_has_three_child_runs(run_settings: Settings, pattern_tree: Path) -> None:
    store = LocalStore(run_settings.storage_path)
    run_id = create_run(
        run_settings,
        "pipeline",
        {
            "dataset": str(pattern_tree),
            "options": {**TINY, "epochs": 1},
            "max_trials": 2,
            "trial_epochs": 1,
            "finetune": {"epochs": 1},
        },
    )
    assert execute(run_settings, store, run_id) == RunStatus.SUCCEEDED
    with session_scope(run_settings.database) as session:
        children = session.query(TrainingRun).filter_by(parent_id=run_id).all()
        assert sorted(c.kind for c in children) == ["finetune", "train", "tune"]
        tune = next(c for c in children if c.kind == "tune")
        assert len(tune.trials) == 2
        assert all(c.finished_at > c.started_at for c in children)
    assert _run(run_settings, run_id).model_version


def test_a_dataset_in_object_storage(run_settings: Settings, pattern_tree: Path) -> None:
    store = LocalStore(run_settings.storage_path)
    for path in sorted(pattern_tree.rglob("*.jpg")):
        store.put(f"datasets/patterns/{path.parent.name}/{path.name}", path.read_bytes())
    store.put("datasets/patterns/README.txt", b"not a class")
    run_id = create_run(
        run_settings,
        "train",
        {"dataset": "storage://datasets/patterns", "recipe": "pooled", "options": TINY},
    )
    assert execute(run_settings, store, run_id) == RunStatus.SUCCEEDED
    run = _run(run_settings, run_id)
    assert sum(sum(c.values()) for c in run.dataset["counts"].values()) == 40
    missing = create_run(
        run_settings, "train", {"dataset": "storage://datasets/none", "options": TINY}
    )
    assert execute(run_settings, store, missing) == RunStatus.FAILED
    assert "no objects under" in _run(run_settings, missing).error
