from __future__ import annotations

import io
import tarfile
import zipfile

from tests.patterns import PATTERNS, draw_pattern


def jpeg(seed: int = 0, kind: str | None = None, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    draw_pattern(kind or PATTERNS[seed % len(PATTERNS)], seed, size).save(buffer, "JPEG")
    return buffer.getvalue()


def multipart(files: list[tuple[str, bytes]], **fields: str) -> dict:
    data: dict = {"images": [(io.BytesIO(content), name) for name, content in files]}
    data.update(fields)
    return data


def make_zip(entries: list[tuple[str, bytes]], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def make_tar(entries: list[tuple[str, bytes]], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()
