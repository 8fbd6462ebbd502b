"""Admin endpoints: training runs and the model registry. Plus labels from clients."""

from __future__ import annotations

import re
from typing import Any, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from api.auth import Caller, authenticate
from api.db import db_session, fetch_object, settings
from api.errors import ApiError, bad_request, not_found, unavailable
from api.jobs import int_arg, iso, item_body
from api.responses import json_response
from shared.db.models import Item, ItemStatus, ModelVersion, RunStatus, TrainingRun, utcnow
from shared.queue import TRAINING_RUN_TASK, send_task
from shared.registry import RegistryError, promote, rollback

bp = Blueprint("training", __name__, url_prefix="/v1")
LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RunRequest(BaseModel):
    kind: Literal["train", "tune", "finetune", "compare", "pipeline"]
    dataset: str = Field(min_length=1)
    recipe: str | None = None
    model: str | None = None  # finetune: a registered version or a model folder
    options: dict[str, Any] = Field(default_factory=dict)
    max_trials: int | None = Field(default=None, ge=1, le=100)
    trial_epochs: int | None = Field(default=None, ge=1, le=500)
    finetune: dict[str, Any] = Field(default_factory=dict)
    finetune_epochs: int | None = Field(default=None, ge=0, le=500)  # train: then fine-tune
    backbones: list[str] | None = None
    promote: bool = False
    seed: int = 0


def _admin() -> Caller:
    caller = authenticate()
    if not caller.is_admin:
        raise ApiError(403, "Forbidden", "this needs an admin API key")
    return caller


def run_body(run: TrainingRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "error": run.error,
        "parent_id": run.parent_id,
        "params": run.params,
        "progress": run.progress,
        "dataset": {k: v for k, v in run.dataset.items() if k != "split"},
        "metrics": run.metrics,
        "history": run.history,
        "trials": run.trials[:3],
        "durations_s": run.durations_s,
        "model_version": run.model_version,
        "plots": {
            name: f"/v1/training-runs/{run.id}/artifacts/{name}"
            for name in run.artifacts
            if name.endswith(".png")
        },
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }


@bp.post("/training-runs")
def create_run() -> Response:
    _admin()
    try:
        body = RunRequest.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        raise bad_request(
            "invalid training run", errors=exc.errors(include_url=False, include_context=False)
        ) from None
    params = body.model_dump(exclude_none=True)
    kind = params.pop("kind")
    if kind == "finetune":
        if not body.model:
            raise bad_request("finetune needs 'model': a model version or folder")
        with db_session() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == body.model))
            if row is not None:
                params["model"] = row.uri
    with db_session() as session:
        run = TrainingRun(kind=kind, params=params)
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        send_task(settings(), TRAINING_RUN_TASK, [run_id])
    except Exception as exc:
        with db_session() as session:
            session.get(TrainingRun, run_id).status = RunStatus.FAILED
            session.get(TrainingRun, run_id).error = "the queue could not be reached"
        raise unavailable(f"the queue cannot be reached: {exc}") from exc
    with db_session() as session:
        response = json_response(run_body(session.get(TrainingRun, run_id)), 202)
    response.headers["Location"] = f"/v1/training-runs/{run_id}"
    return response


@bp.get("/training-runs")
def list_runs() -> Response:
    _admin()
    limit = int_arg("limit", 20, 1, 100)
    offset = int_arg("offset", 0, 0, 10**9)
    with db_session() as session:
        runs = session.scalars(
            select(TrainingRun).order_by(TrainingRun.created_at.desc()).offset(offset).limit(limit)
        ).all()
        return json_response(
            {"runs": [run_body(r) for r in runs], "limit": limit, "offset": offset}
        )


def _run(session, run_id: str) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise not_found("training run")
    return run


@bp.get("/training-runs/<run_id>")
def get_run(run_id: str) -> Response:
    _admin()
    with db_session() as session:
        return json_response(run_body(_run(session, run_id)))


@bp.get("/training-runs/<run_id>/artifacts/<path:name>")
def get_artifact(run_id: str, name: str) -> Response:
    _admin()
    with db_session() as session:
        key = _run(session, run_id).artifacts.get(name)
    if key is None:
        raise not_found("artifact")
    data = fetch_object(key, "artifact")
    mimetype = {"png": "image/png", "json": "application/json"}.get(
        name.rsplit(".", 1)[-1], "application/octet-stream"
    )
    return Response(data, mimetype=mimetype)


@bp.post("/training-runs/<run_id>/cancel")
def cancel_run(run_id: str) -> Response:
    _admin()
    with db_session() as session:
        run = _run(session, run_id)
        if run.status not in RunStatus.FINAL:
            run.status, run.finished_at = RunStatus.CANCELLED, utcnow()
        return json_response(run_body(run))


def model_body(row: ModelVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "stage": row.stage,
        "class_names": row.class_names,
        "metrics": row.metrics,
        "created_at": iso(row.created_at),
        "promoted_at": iso(row.promoted_at),
    }


@bp.get("/models")
def list_models() -> Response:
    _admin()
    with db_session() as session:
        rows = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc()))
        return json_response({"models": [model_body(r) for r in rows]})


@bp.post("/models/<version>/promote")
def promote_model(version: str) -> Response:
    _admin()
    force = bool((request.get_json(silent=True) or {}).get("force", True))
    with db_session() as session:
        try:
            decision = promote(session, version, force=force)
        except RegistryError as exc:
            raise ApiError(
                404 if "no model version" in str(exc) else 409, "Not promoted", str(exc)
            ) from None
        return json_response(decision.__dict__, 200 if decision.promoted else 409)


@bp.post("/models/rollback")
def rollback_model() -> Response:
    _admin()
    with db_session() as session:
        try:
            return json_response(rollback(session).__dict__)
        except RegistryError as exc:
            raise ApiError(409, "Cannot roll back", str(exc)) from None


@bp.post("/items/<item_id>/label")
def label_item(item_id: str) -> Response:
    caller = authenticate()
    pattern = str((request.get_json(silent=True) or {}).get("pattern", "")).strip().lower()
    if not LABEL.match(pattern):
        raise bad_request(
            'send JSON {"pattern": "floral"}: a pattern name of lowercase letters, digits, - and _'
        )
    with db_session() as session:
        item = session.get(Item, item_id)
        if item is None or item.tenant_id != caller.tenant_id:
            raise not_found("item")
        if item.status != ItemStatus.SUCCEEDED or not item.object_key:
            raise ApiError(409, "Not labellable", "only a classified image can be labelled")
        item.label, item.labelled_at = pattern, utcnow()
        return json_response({**item_body(item), "label": pattern})
