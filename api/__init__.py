"""The Swatch HTTP API (Flask app factory)."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings, get_settings
from shared.storage import ObjectStore, open_store


def create_app(settings: Settings | None = None, store: ObjectStore | None = None) -> Flask:
    from api import docs, health, items, jobs, training
    from api.errors import register_error_handlers

    settings = settings or get_settings()
    app = Flask(__name__)
    # Werkzeug refuses larger bodies with 413 before reading them.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024
    app.extensions["swatch.settings"] = settings
    app.extensions["swatch.store"] = store or open_store(settings)
    register_error_handlers(app)
    for module in (health, jobs, items, training, docs):
        app.register_blueprint(module.bp)
    return app
