"""``/v1/jobs``: submit images in bulk, poll, cancel, delete, fetch and export results."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import posixpath
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request, stream_with_context, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth import authenticate
from api.db import db_session, settings, store
from api.errors import ApiError, bad_request, not_found, unavailable
from api.responses import json_response
from api.uploads import ARCHIVE_TYPES, Upload, collect
from shared.db.models import Item, ItemStatus, Job, JobStatus, new_id, utcnow
from shared.dispatch import dispatch
from shared.jobstate import item_counts, progress, refresh
from shared.queue import WEBHOOK_TASK, send_task
from shared.storage import StorageError, job_prefix

log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__, url_prefix="/v1")

RESULT_FORMATS = ("json", "csv", "jsonl")
MAX_PAGE_SIZE = 1000


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_body(session: Session, job: Job) -> dict[str, Any]:
    counts = item_counts(session, job.id)
    return {
        "id": job.id,
        "status": job.status,
        "status_reason": job.status_reason,
        "item_count": job.item_count,
        "counts": counts,
        "progress": progress(counts),
        "model_version": job.model_version,
        "callback_url": job.callback_url,
        "callback_status": job.callback_status,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "links": {
            "self": url_for("jobs.get_job", job_id=job.id),
            "results": url_for("jobs.results", job_id=job.id),
        },
    }


def _own_job(session, job_id: str, tenant_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise not_found("job")  # another tenant's job does not exist for this caller
    return job


def _check_callback(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise bad_request("callback_url must be an http or https URL")
    allowed = settings().webhook_allowed_hosts
    if parts.hostname.lower() not in allowed:
        raise bad_request(
            f"callback_url host {parts.hostname!r} is not allowed", allowed_hosts=allowed
        )
    return url


def _read_request() -> list[Upload]:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        files = [f for key in request.files for f in request.files.getlist(key)]
        return collect(files, None, settings())
    if mimetype in ARCHIVE_TYPES or mimetype == "application/octet-stream":
        return collect([], ("upload", request.get_data()), settings())
    raise ApiError(
        415,
        "Unsupported media type",
        f"send multipart/form-data with image files, or a zip or tar archive; "
        f"got {mimetype or 'no content type'}",
    )


def _fingerprint(uploads: list[Upload], callback: str | None) -> str:
    digest = hashlib.sha256((callback or "").encode())
    for upload in uploads:
        digest.update(upload.filename.encode() + b"\0" + hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


def _object_key(prefix: str, position: int, filename: str) -> str:
    ext = posixpath.splitext(filename)[1].lower()
    ext = ext if ext.replace(".", "").isalnum() and len(ext) <= 6 else ""
    return f"{prefix}originals/{position:05d}{ext}"


def _replay(job: Job, fingerprint: str) -> Response:
    if job.request_fingerprint != fingerprint:
        raise ApiError(
            422, "Idempotency key reused", "this Idempotency-Key was used for a different request"
        )
    with db_session() as session:
        body = job_body(session, job)
    response = json_response(body, 202)
    response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = body["links"]["self"]
    return response


@bp.post("/jobs")
def create_job() -> Response:
    caller = authenticate()
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise bad_request("Idempotency-Key must be 1 to 200 characters")
    uploads = _read_request()
    callback = _check_callback(request.form.get("callback_url") or request.args.get("callback_url"))
    fingerprint = _fingerprint(uploads, callback)
    if idempotency_key:
        with db_session() as session:
            existing = session.scalar(
                select(Job).where(
                    Job.tenant_id == caller.tenant_id, Job.idempotency_key == idempotency_key
                )
            )
        if existing is not None:
            return _replay(existing, fingerprint)

    job_id = new_id()
    prefix = job_prefix(caller.tenant_id, job_id)
    objects = store()
    keys = [_object_key(prefix, i, u.filename) if u.data else None for i, u in enumerate(uploads)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda pair: objects.put(pair[0], pair[1].data),
                    [(k, u) for k, u in zip(keys, uploads, strict=True) if k],
                )
            )
    except StorageError as exc:
        _forget(prefix)
        raise unavailable(f"object storage cannot be reached, nothing was created: {exc}") from exc

    now = utcnow()
    try:
        with db_session() as session:
            job = Job(
                id=job_id,
                tenant_id=caller.tenant_id,
                status=JobStatus.QUEUED,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                callback_url=callback,
                item_count=len(uploads),
            )
            session.add(job)
            pending = []
            for position, (upload, key) in enumerate(zip(uploads, keys, strict=True)):
                item = Item(
                    id=new_id(),
                    job_id=job_id,
                    tenant_id=caller.tenant_id,
                    position=position,
                    filename=upload.filename,
                    sha256=hashlib.sha256(upload.data).hexdigest(),
                    size_bytes=len(upload.data),
                    width=upload.width,
                    height=upload.height,
                    object_key=key,
                )
                if upload.error:
                    item.status, item.error, item.finished_at = ItemStatus.FAILED, upload.error, now
                else:
                    pending.append(item.id)
                session.add(item)
            session.flush()
            refresh(session, job)
    except IntegrityError:
        _forget(prefix)  # the same Idempotency-Key won a race: answer with that job
        with db_session() as session:
            existing = session.scalar(
                select(Job).where(
                    Job.tenant_id == caller.tenant_id, Job.idempotency_key == idempotency_key
                )
            )
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    except ApiError:
        _forget(prefix)
        raise

    with db_session() as session:
        try:
            dispatch(settings(), session, job_id, pending)
            if not pending and callback:  # every file was refused: the job is already over
                send_task(settings(), WEBHOOK_TASK, [job_id])
        except Exception as exc:  # broker down: accepted anyway, the sweeper sends it later
            log.warning("job %s accepted but not yet queued: %s", job_id, exc)
            job = session.get(Job, job_id)
            job.status_reason = "accepted; waiting for the queue to come back"
        job = session.get(Job, job_id)
        body = job_body(session, job)
    response = json_response(body, 202)
    response.headers["Location"] = body["links"]["self"]
    return response


def _forget(prefix: str) -> None:
    try:
        store().delete_prefix(prefix)
    except StorageError:
        log.warning("could not clean up %s after a refused submission", prefix)


def int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}")
    return value


@bp.get("/jobs")
def list_jobs() -> Response:
    caller = authenticate()
    limit = int_arg("limit", 20, 1, 100)
    offset = int_arg("offset", 0, 0, 10**9)
    with db_session() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.tenant_id == caller.tenant_id)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .offset(offset)
            .limit(limit + 1)
        ).all()
        body = {
            "jobs": [job_body(session, j) for j in jobs[:limit]],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if len(jobs) > limit else None,
        }
    return json_response(body)


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    caller = authenticate()
    with db_session() as session:
        job = _own_job(session, job_id, caller.tenant_id)
        body = job_body(session, job)
    return json_response(body)


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> Response:
    caller = authenticate()
    with db_session() as session:
        job = _own_job(session, job_id, caller.tenant_id)
        if job.status not in JobStatus.FINAL:
            now = utcnow()
            for item in session.scalars(
                select(Item).where(
                    Item.job_id == job.id, Item.status.in_([ItemStatus.PENDING, ItemStatus.RUNNING])
                )
            ):
                item.status, item.finished_at = ItemStatus.CANCELLED, now
            job.status, job.finished_at = JobStatus.CANCELLED, now
            job.status_reason = "cancelled by the client"
        body = job_body(session, job)
    return json_response(body)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    caller = authenticate()
    with db_session() as session:
        job = _own_job(session, job_id, caller.tenant_id)
        prefix = job_prefix(job.tenant_id, job.id)
    try:
        store().delete_prefix(prefix)  # objects first: a failure leaves the job to retry
    except StorageError as exc:
        raise unavailable(f"object storage cannot be reached; the job was kept: {exc}") from exc
    with db_session() as session:
        job = session.get(Job, job_id)
        if job is not None:
            session.delete(job)
    return Response(status=204)


def item_body(item: Item, top_k: int = 3) -> dict[str, Any]:
    probs = item.probabilities or {}
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])[:top_k]
    return {
        "id": item.id,
        "job_id": item.job_id,
        "position": item.position,
        "filename": item.filename,
        "status": item.status,
        "error": item.error,
        "pattern": item.pattern,
        "confidence": item.confidence,
        "top_k": [{"pattern": p, "probability": v} for p, v in ranked],
        "probabilities": item.probabilities,
        "model_version": item.model_version,
        "sha256": item.sha256,
        "width": item.width,
        "height": item.height,
        "timings_ms": item.timings_ms,
        "finished_at": iso(item.finished_at),
    }


CSV_FIELDS = (
    "position",
    "filename",
    "status",
    "pattern",
    "confidence",
    "top_k",
    "error",
    "model_version",
    "sha256",
    "id",
)


def _csv_row(body: dict[str, Any]) -> list[Any]:
    top = ";".join(f"{t['pattern']}:{t['probability']:.4f}" for t in body["top_k"])
    return [
        body["position"],
        body["filename"],
        body["status"],
        body["pattern"] or "",
        "" if body["confidence"] is None else f"{body['confidence']:.4f}",
        top,
        body["error"] or "",
        body["model_version"] or "",
        body["sha256"] or "",
        body["id"],
    ]


@bp.get("/jobs/<job_id>/results")
def results(job_id: str) -> Response:
    caller = authenticate()
    fmt = request.args.get("format", "json")
    if fmt not in RESULT_FORMATS:
        raise bad_request(f"format must be one of {', '.join(RESULT_FORMATS)}")
    top_k = int_arg("top_k", 3, 1, 100)
    with db_session() as session:
        job = _own_job(session, job_id, caller.tenant_id)
        if fmt == "json":
            limit = int_arg("limit", 100, 1, MAX_PAGE_SIZE)
            offset = int_arg("offset", 0, 0, 10**9)
            items = session.scalars(
                select(Item)
                .where(Item.job_id == job.id)
                .order_by(Item.position)
                .offset(offset)
                .limit(limit)
            ).all()
            body = {
                "job": job_body(session, job),
                "items": [item_body(i, top_k) for i in items],
                "limit": limit,
                "offset": offset,
                "next_offset": offset + limit if offset + limit < job.item_count else None,
            }
            return json_response(body)
    rows = _stream_items(job_id, top_k)
    if fmt == "jsonl":
        out = (json.dumps(row) + "\n" for row in rows)
        mimetype = "application/x-ndjson"
    else:
        out = _csv_lines(rows)
        mimetype = "text/csv"
    response = Response(stream_with_context(out), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{job_id}.{fmt}"'
    return response


def _stream_items(job_id: str, top_k: int, chunk: int = 500) -> Iterator[dict[str, Any]]:
    position = -1
    while True:
        with db_session() as session:
            items = session.scalars(
                select(Item)
                .where(Item.job_id == job_id, Item.position > position)
                .order_by(Item.position)
                .limit(chunk)
            ).all()
            bodies = [item_body(i, top_k) for i in items]
        if not bodies:
            return
        yield from bodies
        position = bodies[-1]["position"]


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for body in rows:
        writer.writerow(_csv_row(body))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
