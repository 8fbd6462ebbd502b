"""One typed settings object, read from the environment (prefix ``SWATCH_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "swatch"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWATCH_", extra="ignore")

    # Where derived data lives: the feature cache, rembg masks.
    home: Path = Field(default_factory=_default_home)

    # "imagenet" (Keras downloads the weights) or a local weights file, or a folder holding
    # files named like ``vgg16*notop*.h5`` for each backbone.
    backbone_weights: str = "imagenet"

    # rembg's model name and, when set, the folder holding ``<name>.onnx`` (rembg's U2NET_HOME).
    rembg_model: str = "u2netp"
    u2net_home: Path | None = None

    # Images whose decoded size exceeds this many pixels are refused (decompression bombs).
    max_image_pixels: int = 40_000_000

    # --- services -------------------------------------------------------------------------
    # SQLAlchemy URL; default a SQLite file under ``home``. PostgreSQL:
    # postgresql+psycopg://user:pass@host/db
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None  # local backend; default ``home/objects``
    s3_bucket: str = "swatch"
    s3_endpoint_url: str | None = None  # MinIO or another S3 endpoint; None for AWS
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_create_bucket: bool = False

    # The model the workers classify with: a folder saved by ``swatch train``.
    model_path: Path | None = None

    # Limits on what clients may send.
    max_file_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 200 * 1024 * 1024
    max_images_per_job: int = 1000
    max_archive_entries: int = 2000
    max_archive_expanded_bytes: int = 1024 * 1024 * 1024

    # Items per Celery task: the worker classifies them as one batch.
    task_batch_size: int = 16
    # Longer than the longest task, so Redis never hands a running task to a second worker.
    visibility_timeout_s: int = 3600
    task_max_retries: int = 5
    # The sweeper (Celery beat) runs this often; it revives running items silent for
    # stale_running_after_s and re-sends pending ones sent redispatch_after_s ago.
    sweep_interval_s: float = 15.0
    stale_running_after_s: int = 300
    redispatch_after_s: int = 600

    # Completion webhooks: signed with this secret; only these hosts (empty: none allowed).
    webhook_secret: str = "change-me"
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_max_attempts: int = 5

    # --- trainer ----------------------------------------------------------------------
    training_visibility_timeout_s: int = 48 * 3600
    # Scheduled retraining: a cron expression ("0 3 * * *"), the base dataset it trains on
    # (labels sent back through the API are added), and whether to run without new labels.
    retrain_cron: str | None = None
    retrain_dataset: Path | None = None
    retrain_always: bool = False
    # Parameters of the scheduled pipeline run (JSON): options, max_trials, finetune, ...
    retrain_params: dict[str, Any] = Field(default_factory=dict)
    # With no production model at start-up, train one on this folder and promote it.
    bootstrap_dataset: Path | None = None
    bootstrap_recipe: str = "auto"

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'swatch.db'}"

    @property
    def storage_path(self) -> Path:
        return self.storage_dir or self.home / "objects"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
