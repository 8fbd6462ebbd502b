"""Object storage: S3 (AWS, MinIO, any S3 endpoint) through boto3, or a local folder.

Keys are namespaced ``tenants/<tenant>/jobs/<job>/...`` by the callers (see
:func:`job_prefix`). Transient failures surface as :class:`StorageUnavailable`, which the API
turns into a 503 and the workers retry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from shared.config import Settings


class StorageError(RuntimeError):
    pass


class StorageUnavailable(StorageError):
    """The store could not be reached; trying again later may work."""


class ObjectNotFound(StorageError):
    pass


def job_prefix(tenant_id: str, job_id: str) -> str:
    return f"tenants/{tenant_id}/jobs/{job_id}/"


class ObjectStore(ABC):
    @abstractmethod
    def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in /)."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers now."""


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in {"", ".", ".."} for p in parts[:-1])
        or parts[-1] in {"", ".", ".."}
    ):
        raise StorageError(f"bad object key {key!r}")
    return key


class LocalStore(ObjectStore):
    """A folder on disk; writes are atomic renames so readers never see half an object."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        folder = self.root / _safe_key(prefix.rstrip("/"))
        if not folder.exists():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self.root / _safe_key(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"{self.root} is not a writable folder")


class S3Store(ObjectStore):
    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )
        if create_bucket:
            self._ensure_bucket()

    def _call(self, what: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(what) from None
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in {"SlowDown", "RequestTimeout", "ServiceUnavailable"}:
                raise StorageUnavailable(f"{what}: {code or status}") from exc
            raise StorageError(f"{what}: {code}") from exc
        except BotoCoreError as exc:  # connection refused, timeouts, DNS
            raise StorageUnavailable(f"{what}: {exc}") from exc

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call("head bucket", self.client.head_bucket, Bucket=self.bucket)
        except (ObjectNotFound, StorageError) as exc:
            if isinstance(exc, StorageUnavailable):
                raise
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as create_exc:
                code = create_exc.response.get("Error", {}).get("Code", "")
                if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise StorageError(f"cannot create bucket {self.bucket}: {code}") from None

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call(
            f"put {key}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=_safe_key(key),
            Body=data,
            ContentType=content_type,
        )

    def get(self, key: str) -> bytes:
        response = self._call(
            f"get {key}", self.client.get_object, Bucket=self.bucket, Key=_safe_key(key)
        )
        return response["Body"].read()

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"list {prefix}",
            lambda: list(
                paginator.paginate(Bucket=self.bucket, Prefix=_safe_key(prefix.rstrip("/")) + "/")
            ),
        )
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                self._call(
                    f"delete {prefix}",
                    self.client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": keys[start : start + 1000], "Quiet": True},
                )
                count += len(keys[start : start + 1000])
        return count

    def list(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"list {prefix}",
            lambda: list(
                paginator.paginate(Bucket=self.bucket, Prefix=_safe_key(prefix.rstrip("/")) + "/")
            ),
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def exists(self, key: str) -> bool:
        try:
            self._call(
                f"head {key}", self.client.head_object, Bucket=self.bucket, Key=_safe_key(key)
            )
        except ObjectNotFound:
            return False
        return True

    def check(self) -> None:
        self._call("head bucket", self.client.head_bucket, Bucket=self.bucket)


def open_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        return S3Store(
            settings.s3_bucket,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.s3_access_key_id,
            settings.s3_secret_access_key,
            create_bucket=settings.s3_create_bucket,
        )
    return LocalStore(settings.storage_path)
