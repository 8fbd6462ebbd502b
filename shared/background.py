"""Background removal with rembg: one session per process, masks cached by content."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

REMBG_MODELS = ("u2netp", "u2net", "isnet-general-use", "u2net_human_seg", "silueta")

_sessions: dict[str, Any] = {}
_lock = threading.Lock()


class BackgroundRemovalError(RuntimeError):
    pass


def get_session(model_name: str, u2net_home: Path | None = None) -> Any:
    """The process's rembg session for ``model_name``, created on first use.

    Created lazily so a Celery prefork parent never holds one: each child makes its own
    after the fork.
    """
    if model_name not in REMBG_MODELS:
        raise BackgroundRemovalError(
            f"unknown rembg model {model_name!r}; choose one of {', '.join(REMBG_MODELS)}"
        )
    with _lock:
        session = _sessions.get(model_name)
        if session is None:
            if u2net_home is not None:
                # rembg reads U2NET_HOME to find <name>.onnx; a file there is used offline.
                os.environ["U2NET_HOME"] = str(Path(u2net_home).expanduser().resolve())
            from rembg import new_session

            try:
                session = new_session(model_name, providers=_providers())
            except Exception as exc:  # no file and no network, most often
                home = os.environ.get("U2NET_HOME")
                where = f"U2NET_HOME={home}" if home else "U2NET_HOME unset: rembg's own folder"
                raise BackgroundRemovalError(
                    f"cannot load rembg model {model_name!r} ({where}; set SWATCH_U2NET_HOME "
                    f"to a folder holding {model_name}.onnx to work offline): {exc}"
                ) from exc
            _sessions[model_name] = session
        return session


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class BackgroundRemover:
    """Computes foreground masks; with ``cache_dir`` set, each mask is computed once."""

    def __init__(
        self, model_name: str, u2net_home: Path | None = None, cache_dir: Path | None = None
    ) -> None:
        self.model_name = model_name
        self.u2net_home = u2net_home
        self.cache_dir = cache_dir / "masks" / model_name if cache_dir else None

    def _cache_path(self, sha256: str | None) -> Path | None:
        if self.cache_dir is None or sha256 is None:
            return None
        return self.cache_dir / sha256[:2] / f"{sha256}.png"

    def is_cached(self, sha256: str) -> bool:
        path = self._cache_path(sha256)
        return path is not None and path.exists()

    def mask(self, image: Image.Image, sha256: str | None = None) -> Image.Image:
        """An 8-bit ("L") mask the size of ``image``: 255 is foreground."""
        path = self._cache_path(sha256)
        if path is not None and path.exists():
            cached = Image.open(path)
            cached.load()
            if cached.size == image.size:
                return cached.convert("L")
        from rembg import remove

        session = get_session(self.model_name, self.u2net_home)
        mask = remove(image, session=session, only_mask=True)
        if not isinstance(mask, Image.Image):
            raise BackgroundRemovalError("rembg returned no mask")
        mask = mask.convert("L")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            mask.save(tmp, format="PNG")
            os.replace(tmp, path)  # atomic, so a killed process never leaves half a mask
        return mask
