"""Reading a submission: image files and zip/tar archives, with every limit enforced.

A limit breach or an archive trick refuses the whole request (nothing is created); a file
that simply is not a usable image becomes an item that fails with the reason.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import FileStorage

from api.errors import ApiError, bad_request
from shared.config import Settings

ARCHIVE_TYPES = {
    "application/zip",
    "application/x-zip-compressed",
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/x-gtar",
}


@dataclass
class Upload:
    filename: str
    data: bytes
    error: str | None = None  # set when the bytes are not a usable image
    width: int | None = None
    height: int | None = None


def too_large(detail: str) -> ApiError:
    return ApiError(413, "Payload too large", detail)


def _read_limited(stream, limit: int, name: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large(f"{name} is larger than the per-file limit of {limit:,} bytes")
    return data


def probe(upload: Upload, max_pixels: int) -> Upload:
    """Check the header by opening it (not by name): format known, size within limits."""
    if not upload.data:
        upload.error = "empty file"
        return upload
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        upload.error = f"image has far more pixels than the limit of {max_pixels:,}"
        return upload
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        upload.error = "not a recognised image format"
        return upload
    if width * height > max_pixels:
        upload.error = (
            f"image is {width}x{height} = {width * height:,} pixels, "
            f"more than the limit of {max_pixels:,}"
        )
    upload.width, upload.height = width, height
    return upload


def _clean_member_name(name: str) -> str:
    normal = posixpath.normpath(name.replace("\\", "/"))
    if (
        name.startswith(("/", "\\"))
        or normal.startswith("../")
        or normal == ".."
        or (len(name) > 1 and name[1] == ":")
    ):
        raise bad_request(f"archive entry {name!r} points outside the archive")
    return normal


def _skip_member(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


class _Budget:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries = 0
        self.expanded = 0

    def take(self, size: int) -> None:
        self.entries += 1
        self.expanded += size
        if self.entries > self.settings.max_archive_entries:
            raise too_large(f"archive has more than {self.settings.max_archive_entries:,} entries")
        if self.expanded > self.settings.max_archive_expanded_bytes:
            raise too_large(
                f"archive expands to more than {self.settings.max_archive_expanded_bytes:,} bytes"
            )


def read_zip(data: bytes, settings: Settings, budget: _Budget) -> list[Upload]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise bad_request(f"not a readable zip archive ({exc})") from None
    uploads = []
    for info in infos:
        name = _clean_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise bad_request(f"archive entry {info.filename!r} is a link; links are refused")
        if info.is_dir() or _skip_member(name):
            continue
        if info.flag_bits & 0x1:
            raise bad_request(f"archive entry {info.filename!r} is encrypted")
        if info.file_size > settings.max_file_bytes:
            raise too_large(
                f"{name} is larger than the per-file limit of {settings.max_file_bytes:,} bytes"
            )
        budget.take(info.file_size)
        try:
            with archive.open(info) as member:
                # Read at most the declared size + 1: a lying header cannot expand further.
                content = _read_limited(member, min(info.file_size, settings.max_file_bytes), name)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            uploads.append(Upload(name, b"", error=f"corrupt archive entry ({exc})"))
            continue
        uploads.append(Upload(name, content))
    return uploads


def read_tar(data: bytes, settings: Settings, budget: _Budget) -> list[Upload]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            return _tar_members(archive, settings, budget)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise bad_request(f"not a readable tar archive ({exc})") from None


def _tar_members(archive: tarfile.TarFile, settings: Settings, budget: _Budget) -> list[Upload]:
    uploads = []
    for member in archive.getmembers():
        name = _clean_member_name(member.name)
        if member.issym() or member.islnk():
            raise bad_request(f"archive entry {member.name!r} is a link; links are refused")
        if member.isdir() or _skip_member(name):
            continue
        if not member.isfile():
            raise bad_request(f"archive entry {member.name!r} is not a regular file")
        if member.size > settings.max_file_bytes:
            raise too_large(
                f"{name} is larger than the per-file limit of {settings.max_file_bytes:,} bytes"
            )
        budget.take(member.size)
        handle = archive.extractfile(member)
        content = _read_limited(handle, settings.max_file_bytes, name) if handle else b""
        uploads.append(Upload(name, content))
    return uploads


def is_zip(data: bytes) -> bool:
    return data[:4] in {b"PK\x03\x04", b"PK\x05\x06"}


def is_tar(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return True  # compressed; tarfile decides whether a tar is inside
    return len(data) > 262 and data[257:262] == b"ustar"


def expand(filename: str, data: bytes, settings: Settings, budget: _Budget) -> list[Upload]:
    """One uploaded file: an archive becomes its entries, anything else one upload."""
    if is_zip(data):
        return read_zip(data, settings, budget)
    if is_tar(data):
        return read_tar(data, settings, budget)
    budget.take(len(data))
    return [Upload(filename, data)]


def collect(
    files: list[FileStorage], raw: tuple[str, bytes] | None, settings: Settings
) -> list[Upload]:
    budget = _Budget(settings)
    uploads: list[Upload] = []
    for storage in files:
        name = posixpath.basename((storage.filename or "upload").replace("\\", "/")) or "upload"
        data = _read_limited(
            storage.stream, max(settings.max_file_bytes, settings.max_request_bytes), name
        )
        if len(data) > settings.max_file_bytes and not (is_zip(data) or is_tar(data)):
            raise too_large(
                f"{name} is larger than the per-file limit of {settings.max_file_bytes:,} bytes"
            )
        uploads.extend(expand(name, data, settings, budget))
    if raw is not None:
        uploads.extend(expand(raw[0], raw[1], settings, budget))
    if not uploads:
        raise bad_request(
            "no images: send files in a multipart field named 'images', or a zip or tar archive"
        )
    if len(uploads) > settings.max_images_per_job:
        raise too_large(
            f"{len(uploads):,} images is more than the limit of "
            f"{settings.max_images_per_job:,} per job"
        )
    return [probe(u, settings.max_image_pixels) for u in uploads]
