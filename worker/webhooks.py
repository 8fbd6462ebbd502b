"""Completion webhooks: a JSON POST signed with HMAC-SHA256, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from shared.config import Settings
from shared.db.models import Job
from shared.db.session import session_scope
from shared.jobstate import item_counts

SIGNATURE_HEADER = "X-Swatch-Signature"


class WebhookFailed(Exception):
    pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver(settings: Settings, job_id: str, timeout_s: float = 10.0) -> str:
    """POST the job's summary to its callback URL; raises WebhookFailed to be retried."""
    with session_scope(settings.database) as session:
        job = session.get(Job, job_id)
        if job is None or not job.callback_url:
            return "no callback"
        url = job.callback_url
        body = json.dumps(
            {
                "event": "job.finished",
                "job_id": job.id,
                "status": job.status,
                "counts": item_counts(session, job.id),
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            }
        ).encode()
        job.callback_attempts += 1
    host = (urlsplit(url).hostname or "").lower()
    if host not in settings.webhook_allowed_hosts:  # the allow-list may have changed
        _record(settings, job_id, "refused")
        return "refused"
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(settings.webhook_secret, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        _record(settings, job_id, "retrying")
        raise WebhookFailed(f"{url}: {exc}") from exc
    if status >= 300:
        _record(settings, job_id, "retrying")
        raise WebhookFailed(f"{url} answered {status}")
    _record(settings, job_id, "delivered")
    return "delivered"


def _record(settings: Settings, job_id: str, status: str) -> None:
    with session_scope(settings.database) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.callback_status = status
