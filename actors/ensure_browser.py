"""Make sure a browser exists: the set-up step behind ``make setup``.

Tries, in order: a browser already found (explicit, Playwright's, system);
Playwright's own download; Debian's ``chromium`` package when apt and root are
available. Anything else ends with the instructions a person needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from landmark.actors.browser import (
    NO_BROWSER_HELP,
    BrowserNotFoundError,
    FoundBrowser,
    find_browser,
)
from landmark.config.settings import Settings


def _try_find() -> FoundBrowser | None:
    try:
        return find_browser(Settings.from_env().browser)
    except BrowserNotFoundError:
        return None


def _run(command: list[str], timeout: float) -> bool:
    print(f"landmark setup: $ {' '.join(command)}", flush=True)
    try:
        return subprocess.run(command, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"landmark setup: {error}", flush=True)
        return False


def _install_with_playwright() -> bool:
    return _run([sys.executable, "-m", "playwright", "install", "chromium"], timeout=600)


def _install_with_apt() -> bool:
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    env_ok = _run(["apt-get", "update", "-qq"], timeout=600)
    return env_ok and _run(["apt-get", "install", "-y", "-qq", "chromium"], timeout=900)


def main() -> int:
    for attempt in (None, _install_with_playwright, _install_with_apt):
        if attempt is not None:
            print(f"landmark setup: no browser yet; trying {attempt.__doc__ or attempt.__name__}")
            attempt()
        found = _try_find()
        if found is not None:
            print(f"landmark setup: browser ({found.origin}): {found.path}")
            return 0
    print(f"landmark setup: {NO_BROWSER_HELP}", file=sys.stderr)
    return 1


_install_with_playwright.__doc__ = "Playwright's own Chromium download"
_install_with_apt.__doc__ = "Debian's chromium package (apt-get, as root)"

if __name__ == "__main__":
    sys.exit(main())
