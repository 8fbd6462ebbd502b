"""One typed settings object, read from the environment (prefix ``SWATCH_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
