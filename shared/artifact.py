"""A saved pattern model: a folder with ``model.keras`` and ``metadata.json``."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    pass


class ModelMetadata(BaseModel):
    format_version: int = FORMAT_VERSION
    class_names: list[str]
    backbone: str
    # Identity of the weights the feature extractor runs with (for the feature cache).
    weights_id: str
    input_size: int
    taps: list[str]
    preprocessing: dict[str, Any]
    recipe: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    versions: dict[str, str] = Field(default_factory=dict)


def write_metadata(path: Path, metadata: ModelMetadata) -> None:
    (Path(path) / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))


def save_artifact(
    path: Path, model: Any, metadata: ModelMetadata, extra_files: dict[str, Path] | None = None
) -> Path:
    """Write atomically: a half-written model folder never appears at ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / MODEL_FILE)
    write_metadata(tmp, metadata)
    for name, source in (extra_files or {}).items():
        shutil.copy2(source, tmp / name)
    if path.exists():
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    return path


def model_version(path: Path) -> str:
    """A short, stable name for a saved model: changes whenever its metadata does."""
    import hashlib

    digest = hashlib.sha256((Path(path) / METADATA_FILE).read_bytes()).hexdigest()
    return f"m-{digest[:12]}"


def read_metadata(path: Path) -> ModelMetadata:
    path = Path(path)
    meta = path / METADATA_FILE
    if not meta.is_file() or not (path / MODEL_FILE).is_file():
        raise ArtifactError(
            f"{path} is not a Swatch model (needs {MODEL_FILE} and {METADATA_FILE})"
        )
    try:
        data = json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta} is not valid JSON: {exc}") from None
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{path} was saved by a newer Swatch (format {data['format_version']})")
    return ModelMetadata.model_validate(data)
