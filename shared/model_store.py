"""Model folders in object storage, so a worker on any machine can load the production model.

The trainer uploads each registered model under ``models/<version>/``; a worker whose disk
lacks the registry's folder downloads it once into its own home and loads it from there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from shared.artifact import METADATA_FILE
from shared.storage import ObjectNotFound, ObjectStore


def model_prefix(version: str) -> str:
    return f"models/{version}/"


def upload_model(store: ObjectStore, folder: Path, version: str) -> dict[str, str]:
    """Every file of ``folder`` under the version's prefix; returns name -> key.

    metadata.json goes last: its presence marks a complete upload, so one cut short is
    neither loaded by a worker nor skipped when uploaded again.
    """
    names = sorted(
        (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
        key=lambda name: (name == METADATA_FILE, name),
    )
    keys = {name: model_prefix(version) + name for name in names}
    if not has_model(store, version):
        for name in names:
            store.put(keys[name], (folder / name).read_bytes())
    return keys


def has_model(store: ObjectStore, version: str) -> bool:
    return store.exists(model_prefix(version) + METADATA_FILE)


def fetch_model(store: ObjectStore, version: str, root: Path) -> Path:
    """``root/<version>``, downloaded first unless an earlier call already did."""
    dest = root / version
    if (dest / METADATA_FILE).is_file():
        return dest
    prefix = model_prefix(version)
    keys = store.list(prefix)
    if prefix + METADATA_FILE not in keys:
        raise ObjectNotFound(f"model {version} is not in object storage")
    # Written beside the destination and renamed, so a process that dies half-way (or a
    # second process downloading the same version) never leaves a partial model behind.
    partial = root / f".{version}.{uuid.uuid4().hex}"
    try:
        for key in keys:
            target = partial / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get(key))
        try:
            os.replace(partial, dest)
        except OSError:
            if not (dest / METADATA_FILE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest
