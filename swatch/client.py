"""A small Python client for the Swatch API (what ``swatch submit`` and ``results`` use)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


class SwatchClient:
    def __init__(self, url: str, api_key: str, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = api_key
        self.timeout_s = timeout_s

    def _check(self, response: requests.Response) -> requests.Response:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response

    def submit(
        self,
        paths: Iterable[Path],
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        with ExitStack() as stack:
            files = [("images", (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]
            headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
            data = {"callback_url": callback_url} if callback_url else {}
            response = self.session.post(
                f"{self.url}/v1/jobs",
                files=files,
                data=data,
                headers=headers,
                timeout=self.timeout_s,
            )
        return self._check(response).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._check(
            self.session.get(f"{self.url}/v1/jobs/{job_id}", timeout=self.timeout_s)
        ).json()

    def wait(
        self,
        job_id: str,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_progress:
                on_progress(job)
            if job["status"] in {"succeeded", "partially_failed", "failed", "cancelled"}:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s}s")
            time.sleep(poll_s)

    def results_text(self, job_id: str, fmt: str = "csv") -> str:
        return self._check(
            self.session.get(
                f"{self.url}/v1/jobs/{job_id}/results",
                params={"format": fmt},
                timeout=self.timeout_s,
            )
        ).text
