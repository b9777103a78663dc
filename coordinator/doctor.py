"""``landmark doctor``: what this machine offers the tool, and what is missing."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from landmark.actors.browser import BrowserNotFoundError, find_browser
from landmark.config.settings import Settings


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _store_status(url: str | None) -> tuple[str, bool]:
    """The store runs would use, and whether it answers (the password never shown)."""
    if not url:
        return "local: state and records under each run's output folder", True
    from landmark.coordinator.redis_store import redis_health
    from landmark.coordinator.store_config import redact_url

    healthy, detail = redis_health(url)
    return f"redis {redact_url(url)}: {detail}", healthy


def doctor(browser: str | None = None, store: str | None = None, address: str | None = None) -> int:
    """Print one line per dependency; exit 1 when something a run needs is missing."""
    settings = Settings.from_env()
    print(f"python      {platform.python_version()} ({platform.system()} {platform.machine()})")
    for package in ("ray", "playwright", "pydantic", "redis", "psutil"):
        print(f"{package:<11} {_package_version(package)}")
    status = 0
    try:
        found = find_browser(browser or settings.browser)
        print(f"browser     {found.path} ({found.origin}): {found.version()}")
    except BrowserNotFoundError as error:
        print(f"browser     MISSING: {error}")
        status = 1
    line, healthy = _store_status(store or settings.redis_url)
    print(f"store       {line}")
    print(f"headless    {settings.headless}")
    return status if healthy else 1
