"""Settings that differ by machine, not by job: read from ``LANDMARK_*`` environment variables.

A job file travels between a laptop and a cluster; where the browser lives or
which Redis to use does not belong in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    browser: Path | None = Field(
        default=None, description="LANDMARK_BROWSER: a Chromium/Chrome executable to use."
    )
    redis_url: str | None = Field(
        default=None, description="LANDMARK_REDIS_URL: Redis for caches and stores, if any."
    )
    headless: bool = Field(default=True, description="LANDMARK_HEADLESS: 0 to watch the browser.")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("LANDMARK_BROWSER"):
            values["browser"] = env["LANDMARK_BROWSER"]
        if env.get("LANDMARK_REDIS_URL"):
            values["redis_url"] = env["LANDMARK_REDIS_URL"]
        if env.get("LANDMARK_HEADLESS"):
            values["headless"] = env["LANDMARK_HEADLESS"]
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            name = f"LANDMARK_{str(first['loc'][0]).upper()}"
            raise SettingsError(f"{name}: {first['msg']} (got {first.get('input')!r})") from None


class SettingsError(Exception):
    """An environment variable with a value we cannot use."""
