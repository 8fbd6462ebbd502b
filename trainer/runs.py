"""Training runs as records: each kind runs here, its progress and results go to the
database and its artifacts to object storage. Plain functions; the Celery task is thin."""

from __future__ import annotations

import json
import logging
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.config import Settings
from shared.db.models import RunStatus, TrainingRun, utcnow
from shared.db.session import session_scope
from shared.model_store import upload_model
from shared.progress import Progress
from shared.registry import promote, register
from shared.storage import ObjectStore

log = logging.getLogger(__name__)
KINDS = ("train", "tune", "finetune", "compare", "pipeline")


class Cancelled(Exception):
    pass


def create_run(
    settings: Settings, kind: str, params: dict[str, Any], parent_id: str | None = None
) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    with session_scope(settings.database) as session:
        run = TrainingRun(kind=kind, params=params, parent_id=parent_id)
        session.add(run)
        session.flush()
        return run.id


class _RunProgress:
    """Writes a run's progress to the database (at most every second) and notices a
    cancellation between steps."""

    def __init__(self, settings: Settings, run_id: str, stage: str, total: int) -> None:
        self.settings, self.run_id, self.stage, self.total = settings, run_id, stage, total
        self.done = 0
        self._last = 0.0
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0 and self.done < self.total:
            return
        self._last = now
        with session_scope(self.settings.database) as session:
            run = session.get(TrainingRun, self.run_id)
            if run.status == RunStatus.CANCELLED:
                raise Cancelled()
            run.progress = {"stage": self.stage, "done": self.done, "total": self.total}

    def update(self, n: int = 1) -> None:
        self.done += n
        self._write()

    def close(self) -> None:
        self._write(force=True)


def _record_model(
    settings: Settings, store: ObjectStore, run_id: str, result: Any, auto_promote: bool
) -> dict[str, Any]:
    """Copy the model to the registry's folder and storage, register it, maybe promote."""
    import shutil

    from shared.artifact import model_version

    version = model_version(result.path)
    home = settings.home / "models" / version
    if not home.exists():
        shutil.copytree(result.path, home)
    artifacts = upload_model(store, home, version)
    with session_scope(settings.database) as session:
        row = register(session, home)
        decision = promote(session, row.version) if auto_promote else None
        run = session.get(TrainingRun, run_id)
        run.model_version = row.version
        run.artifacts = {**run.artifacts, **artifacts}
        run.metrics = result.metrics
        run.history = result.history
        run.durations_s = {**run.durations_s, **result.timings}
        run.dataset = {
            "root": str(result.dataset.root),
            "fingerprint": result.dataset.fingerprint(),
            "counts": result.dataset.counts(),
            "split": result.dataset.split_manifest(),
        }
        if decision is not None:
            run.params = {**run.params, "promotion": decision.__dict__}
    return {"version": version, "promotion": decision.__dict__ if decision else None}


def execute(settings: Settings, store: ObjectStore, run_id: str) -> str:
    """Run a queued run to the end; returns its final status. Never raises for run errors."""
    with session_scope(settings.database) as session:
        run = session.get(TrainingRun, run_id)
        if run is None or run.status in RunStatus.FINAL:
            return run.status if run else "missing"
        run.status, run.started_at = RunStatus.RUNNING, utcnow()
        kind, params = run.kind, dict(run.params)

    def progress(stage: str, total: int) -> Progress:
        return _RunProgress(settings, run_id, stage, total)

    work = settings.home / "runs" / run_id
    work.mkdir(parents=True, exist_ok=True)
    try:
        _run_kind(settings, store, run_id, kind, params, work, progress)
        status, error = RunStatus.SUCCEEDED, None
    except Cancelled:
        status, error = RunStatus.CANCELLED, "cancelled"
    except Exception as exc:  # a failed run is recorded, and production stays untouched
        log.exception("training run %s failed", run_id)
        status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        (work / "error.txt").write_text(traceback.format_exc())
    with session_scope(settings.database) as session:
        run = session.get(TrainingRun, run_id)
        if run.status != RunStatus.CANCELLED:
            run.status = status
        run.error, run.finished_at = error, utcnow()
    return status


def _run_kind(
    settings: Settings,
    store: ObjectStore,
    run_id: str,
    kind: str,
    params: dict[str, Any],
    work: Path,
    progress: Any,
) -> None:
    from trainer.recipes import recipes_from_options
    from trainer.schedule import resolve_dataset

    data = resolve_dataset(settings, store, params["dataset"])
    seed = int(params.get("seed", 0))
    overrides = dict(params.get("options", {}))
    auto_promote = bool(params.get("promote", False))
    if kind == "train":
        from trainer.training import train_best

        recipes = recipes_from_options(params.get("recipe", "auto"), **overrides)
        result = train_best(
            data, work / "model", recipes, seed=seed, settings=settings, progress=progress
        )
        if params.get("finetune_epochs"):
            from trainer.finetune import FinetuneConfig, finetune_if_better

            config = FinetuneConfig(epochs=int(params["finetune_epochs"]))
            result = finetune_if_better(result, data, config, settings=settings, progress=progress)
        _record_model(settings, store, run_id, result, auto_promote)
    elif kind == "tune":
        from trainer.recipes import recipe_from_options
        from trainer.tuning import tune

        base = recipe_from_options(params.get("recipe", "study"), **overrides)
        tuned = tune(
            data,
            work / "model",
            base,
            directory=work / "tuner",
            max_trials=int(params.get("max_trials", 10)),
            trial_epochs=int(params.get("trial_epochs", 15)),
            seed=seed,
            settings=settings,
            progress=progress,
        )
        _set(settings, run_id, trials=tuned.trials)
        _record_model(settings, store, run_id, tuned.result, auto_promote)
    elif kind == "finetune":
        from trainer.finetune import FinetuneConfig, finetune

        config = FinetuneConfig(**params.get("finetune", {}))
        result = finetune(
            Path(params["model"]),
            data,
            work / "model",
            config,
            settings=settings,
            progress=progress,
        )
        _record_model(settings, store, run_id, result, auto_promote)
    elif kind == "compare":
        from trainer.compare import compare
        from trainer.recipes import recipe_from_options

        base = recipe_from_options("compare", **overrides)
        rows = compare(
            data,
            work / "models",
            base=base,
            seed=seed,
            settings=settings,
            progress=progress,
            **({"backbones": tuple(params["backbones"])} if "backbones" in params else {}),
        )
        _set(settings, run_id, metrics={"comparison": rows})
        store.put(f"runs/{run_id}/comparison.json", json.dumps(rows).encode())
    else:  # pipeline: three child runs, each recorded as it finishes
        _pipeline(settings, store, run_id, params, work, progress)


def _set(settings: Settings, run_id: str, **values: Any) -> None:
    with session_scope(settings.database) as session:
        run = session.get(TrainingRun, run_id)
        for key, value in values.items():
            setattr(run, key, value)


def _pipeline(
    settings: Settings,
    store: ObjectStore,
    run_id: str,
    params: dict[str, Any],
    work: Path,
    progress: Any,
) -> None:
    from trainer.finetune import FinetuneConfig
    from trainer.pipeline import run_pipeline
    from trainer.recipes import recipe_from_options

    children: dict[str, str] = {}

    def on_stage(stage: str, result: Any, seconds: float) -> None:
        child = create_run(
            settings,
            {"train": "train", "tune": "tune", "finetune": "finetune"}[stage],
            {**params, "stage_of": run_id},
            parent_id=run_id,
        )
        now = utcnow()
        _set(
            settings,
            child,
            status=RunStatus.SUCCEEDED,
            started_at=now - timedelta(seconds=seconds),
            finished_at=now,
        )
        last = stage == "finetune"
        _record_model(
            settings, store, child, result, auto_promote=last and bool(params.get("promote", False))
        )
        children[stage] = child

    base = recipe_from_options(params.get("recipe", "study"), **dict(params.get("options", {})))
    from trainer.schedule import resolve_dataset

    result = run_pipeline(
        resolve_dataset(settings, store, params["dataset"]),
        work,
        base=base,
        max_trials=int(params.get("max_trials", 10)),
        trial_epochs=int(params.get("trial_epochs", 15)),
        finetune_config=FinetuneConfig(**params.get("finetune", {})),
        seed=int(params.get("seed", 0)),
        settings=settings,
        progress=progress,
        on_stage=on_stage,
    )
    _set(settings, children["tune"], trials=result.trials)
    _set(
        settings,
        run_id,
        trials=result.trials,
        metrics={stage: {"run": child} for stage, child in children.items()},
    )
    _record_model(settings, store, run_id, result.finetuned, False)
