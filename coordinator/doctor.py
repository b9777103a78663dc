"""``landmark doctor``: what this machine offers the tool, and what is missing."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from actors.browser import BrowserNotFoundError, find_browser
from config.settings import Settings


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _redis_status(url: str | None) -> str:
    if not url:
        return "not configured (set LANDMARK_REDIS_URL to use one)"
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    except (redis.RedisError, ValueError) as error:
        return f"{url}: NOT answering ({error})"
    return f"{url}: answers PING"


def doctor(browser: str | None = None) -> int:
    """Print one line per dependency; exit 1 when the browser is missing (nothing can run)."""
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
    print(f"redis       {_redis_status(settings.redis_url)}")
    print(f"headless    {settings.headless}")
    return status
