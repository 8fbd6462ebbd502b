"""The OpenAPI description at ``/openapi.json`` and a readable page at ``/docs``."""

from __future__ import annotations

import html
from typing import Any

from flask import Blueprint, Response

from api.responses import json_response

bp = Blueprint("docs", __name__)

_PROBLEM = {
    "description": "Error",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_ITEM = [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {**responses, "4XX": _PROBLEM, "503": _PROBLEM},
        **extra,
    }


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Swatch",
        "version": "1",
        "description": "Recognise the pattern of clothing in photos, in bulk. Every "
        "request needs an API key in the X-API-Key header.",
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/v1/jobs": {
            "post": _op(
                "Submit images (multipart files and/or a zip or tar archive)",
                {"202": _json("Job", "Accepted; poll the Location header")},
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "A retried request with the same key returns the same job",
                    }
                ],
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "images": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    },
                                    "callback_url": {"type": "string", "format": "uri"},
                                },
                            }
                        },
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
            ),
            "get": _op(
                "List jobs, newest first",
                {"200": _json("JobList")},
                parameters=[
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                ],
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "A job's status, counts and progress", {"200": _json("Job")}, parameters=_ID
            ),
            "delete": _op(
                "Delete a job and its stored objects",
                {"204": {"description": "Deleted"}},
                parameters=_ID,
            ),
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op("Cancel a job's unfinished items", {"200": _json("Job")}, parameters=_ID)
        },
        "/v1/jobs/{job_id}/results": {
            "get": _op(
                "Results per image: json (paginated), csv or jsonl (streamed)",
                {
                    "200": {
                        "description": "Results",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Results"}
                            },
                            "text/csv": {},
                            "application/x-ndjson": {},
                        },
                    }
                },
                parameters=[
                    *_ID,
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "jsonl"]}},
                    {"name": "top_k", "in": "query", "schema": {"type": "integer"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                ],
            )
        },
        "/v1/items/{item_id}": {
            "get": _op("One image's result", {"200": _json("Item")}, parameters=_ITEM)
        },
        "/v1/items/{item_id}/cutout": {
            "get": _op(
                "The background-removed image",
                {"200": {"description": "PNG", "content": {"image/png": {}}}},
                parameters=_ITEM,
            )
        },
        "/healthz": {
            "get": {"summary": "Alive", "security": [], "responses": {"200": {"description": "OK"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Database, Redis and storage reachable",
                "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
            }
        },
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
            },
            "Job": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {
                        "enum": [
                            "queued",
                            "running",
                            "succeeded",
                            "partially_failed",
                            "failed",
                            "cancelled",
                        ]
                    },
                    "status_reason": {"type": ["string", "null"]},
                    "item_count": {"type": "integer"},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "progress": {"type": "number"},
                    "model_version": {"type": ["string", "null"]},
                    "created_at": {"type": "string"},
                    "started_at": {"type": ["string", "null"]},
                    "finished_at": {"type": ["string", "null"]},
                    "links": {"type": "object"},
                },
            },
            "JobList": {
                "type": "object",
                "properties": {
                    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                    "next_offset": {"type": ["integer", "null"]},
                },
            },
            "Item": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "position": {"type": "integer"},
                    "filename": {"type": "string"},
                    "status": {"enum": ["pending", "running", "succeeded", "failed", "cancelled"]},
                    "error": {"type": ["string", "null"]},
                    "pattern": {"type": ["string", "null"]},
                    "confidence": {"type": ["number", "null"]},
                    "top_k": {"type": "array", "items": {"type": "object"}},
                    "model_version": {"type": ["string", "null"]},
                },
            },
            "Results": {
                "type": "object",
                "properties": {
                    "job": {"$ref": "#/components/schemas/Job"},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "next_offset": {"type": ["integer", "null"]},
                },
            },
        },
    },
}


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(SPEC)


@bp.get("/docs")
def docs() -> Response:
    rows = []
    for path, methods in SPEC["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>"
                f"{html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td></tr>"
            )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Swatch API</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
td{{padding:.3rem .8rem;border-bottom:1px solid #ddd}}code{{font-size:.95em}}</style></head>
<body><h1>Swatch API</h1><p>{html.escape(SPEC["info"]["description"])}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<table>{"".join(rows)}</table>
<h2>Example</h2><pre>curl -H "X-API-Key: $KEY" -F images=@shirt.jpg -F images=@dress.png \\
     http://localhost:8000/v1/jobs</pre></body></html>"""
    return Response(page, mimetype="text/html")
