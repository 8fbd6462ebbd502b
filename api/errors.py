"""Errors as RFC 9457 ``application/problem+json``; no client mistake ever becomes a 500."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        **extra,
    }
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def bad_request(detail: str, **extra: Any) -> ApiError:
    return ApiError(400, "Bad request", detail, **extra)


def not_found(what: str) -> ApiError:
    return ApiError(404, "Not found", f"no {what} with that id")


def unavailable(detail: str) -> ApiError:
    return ApiError(503, "Service unavailable", detail)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        if exc.status == 503:
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        detail = exc.description or exc.name
        if exc.code == 413:
            detail = (
                f"the request is larger than the limit of "
                f"{app.config.get('MAX_CONTENT_LENGTH') or 0:,} bytes"
            )
        return problem(exc.code or 500, exc.name, detail)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(
            500,
            "Internal server error",
            "something went wrong on our side; nothing you sent was lost, try again",
        )
