"""Finding a Chromium to drive, and launching it for a headless, closed-network machine.

Order of preference: an explicit setting (job ``browser.executable``, the CLI,
or ``LANDMARK_BROWSER``), then Playwright's own bundled Chromium if it has been
installed, then a system Chromium/Chrome on PATH. Playwright's download of its
browser is often impossible (closed networks, CI images), so a system browser
is a first-class citizen rather than an afterthought.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

    from landmark.config.browser_spec import BrowserSpec, ProxySpec

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Headless on a machine without a GPU, a sandbox (root) or an internet connection:
# the background-networking flags stop Chromium from dialling Google at start-up,
# which a closed network answers with refused connections by the dozen.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # Pages behind the first one must not be throttled: our slots are all "in the background".
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
)

# Blink's own switch: <img>, <picture> and CSS backgrounds are never fetched.
NO_IMAGES_ARG = "--blink-settings=imagesEnabled=false"

NO_BROWSER_HELP = """no Chromium or Chrome browser was found. Provide one of:
  1. an explicit path: set LANDMARK_BROWSER=/path/to/chrome (or browser.executable in the job,
     or --browser on the command line);
  2. Playwright's own build: .venv/bin/playwright install chromium;
  3. a system browser on PATH: apt-get install -y chromium (Debian/Ubuntu), or Google Chrome.
`make setup` tries 2 and then 3 for you."""


class BrowserNotFoundError(RuntimeError):
    """No usable browser; the message says the three ways to provide one."""


@dataclass(frozen=True, slots=True)
class FoundBrowser:
    path: Path
    origin: str  # "explicit" | "playwright" | "system"

    def version(self) -> str:
        """The browser's own ``--version`` line (a subprocess; call it off any event loop)."""
        try:
            done = subprocess.run(
                [str(self.path), "--version"], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"unknown ({error})"
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        return lines[-1].strip() if lines else "unknown"


def playwright_chromium() -> Path | None:
    """Playwright's bundled Chromium, if ``playwright install chromium`` has put it in place."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as playwright:
            path = Path(playwright.chromium.executable_path)
    except Exception:  # Playwright raises its own Error types when its driver is unusable
        return None
    return path if path.is_file() else None


def running_playwright_chromium(playwright: Playwright) -> Path | None:
    """:func:`playwright_chromium` asked of a Playwright already started: no second driver
    (starting one costs about half a second of an actor's start)."""
    try:
        path = Path(playwright.chromium.executable_path)
    except Exception:  # Playwright raises its own Error types when it has no such browser
        return None
    return path if path.is_file() else None


def find_browser(
    explicit: str | Path | None = None,
    *,
    bundled: Callable[[], Path | None] | None = None,
) -> FoundBrowser:
    """The browser to launch, by the order in the module docstring; raises BrowserNotFoundError.

    ``bundled`` says where Playwright's own Chromium is (None: not installed); by default
    :func:`playwright_chromium`."""
    if explicit:
        path = Path(explicit).expanduser()
        resolved = path if path.is_file() else shutil.which(str(explicit))
        if not resolved:
            raise BrowserNotFoundError(
                f"the browser set explicitly does not exist: {explicit}\n{NO_BROWSER_HELP}"
            )
        if not os.access(resolved, os.X_OK):
            raise BrowserNotFoundError(
                f"the browser set explicitly is not an executable program: {explicit}\n"
                f"{NO_BROWSER_HELP}"
            )
        return FoundBrowser(Path(resolved), "explicit")
    if (own := (bundled or playwright_chromium)()) is not None:
        return FoundBrowser(own, "playwright")
    for name in SYSTEM_BROWSERS:
        if found := shutil.which(name):
            return FoundBrowser(Path(found), "system")
    raise BrowserNotFoundError(NO_BROWSER_HELP)


def only_hosts_rule(hosts: Iterable[str]) -> str:
    """A ``--host-resolver-rules`` value under which only ``hosts`` resolve.

    The browser refuses every other host name before a byte leaves it, for pages,
    frames and subresources alike, at no cost per request — unlike request
    interception, which sends each request through the driver and turns the HTTP
    cache off. IP literals are mapped too (a test sees 127.0.0.2 refused when only
    127.0.0.1 is allowed); the worker still checks where each navigation ended."""
    excluded = ", ".join(f"EXCLUDE {host}" for host in sorted(set(hosts)))
    return f"MAP * ~NOTFOUND, {excluded}" if excluded else "MAP * ~NOTFOUND"


def launch_args(*, only_hosts: Iterable[str] | None = None, load_images: bool = True) -> list[str]:
    """The closed-network flags; with ``only_hosts``, no other host name resolves (see
    :func:`only_hosts_rule`). Without ``load_images``, no page fetches an image: a setting
    of the renderer, so it costs nothing per request, where routing or CDP blocking sends
    every request past a client."""
    args = list(LAUNCH_ARGS)
    if only_hosts is not None:
        args.append(f"--host-resolver-rules={only_hosts_rule(only_hosts)}")
    if not load_images:
        args.append(NO_IMAGES_ARG)
    return args


async def launch_browser(
    playwright: Playwright,
    found: FoundBrowser,
    *,
    headless: bool = True,
    only_hosts: Iterable[str] | None = None,
    load_images: bool = True,
) -> Browser:
    """Launch ``found`` with :func:`launch_args`; Playwright's own build needs no path."""
    executable = None if found.origin == "playwright" else str(found.path)
    args = launch_args(only_hosts=only_hosts, load_images=load_images)
    return await playwright.chromium.launch(
        executable_path=executable, headless=headless, args=args
    )


class StorageStateMissing(RuntimeError):
    """``browser.storage_state`` is set but its contents were not loaded with the job."""


def context_options(spec: BrowserSpec) -> dict[str, Any]:
    """``browser.new_context`` options for the job's identity: viewport, user agent, extra
    headers, locale, time zone, proxy and a logged-in storage state. Every context a job
    opens gets them (the session's, after each recycle too), so every request, robots.txt
    included (``context.request``), comes from the same visitor.

    The storage state is the parsed contents ``load_job`` read on the driver, never the file:
    an actor on another node does not have it."""
    width, height = spec.viewport
    options: dict[str, Any] = {"viewport": {"width": width, "height": height}}
    if spec.user_agent:
        options["user_agent"] = spec.user_agent
    if spec.headers:
        options["extra_http_headers"] = dict(spec.headers)
    if spec.locale:
        options["locale"] = spec.locale
    if spec.timezone:
        options["timezone_id"] = spec.timezone
    if spec.proxy is not None:
        options["proxy"] = proxy_settings(spec.proxy)
    if spec.storage_state is not None:
        if spec.storage_state_data is None:
            raise StorageStateMissing(
                f"browser.storage_state {spec.storage_state} was not read: load the job "
                "with landmark.config.loading.load_job, which reads it where the job is loaded"
            )
        options["storage_state"] = spec.storage_state_data
    return options


def proxy_settings(proxy: ProxySpec) -> dict[str, str]:
    """Playwright's proxy settings; the password is unwrapped only here, for Playwright."""
    settings = {"server": proxy.server}
    if proxy.username is not None:
        settings["username"] = proxy.username
    if proxy.password is not None:
        settings["password"] = proxy.password.get_secret_value()
    if proxy.bypass:
        settings["bypass"] = proxy.bypass
    return settings


def proxy_host(spec: BrowserSpec) -> str | None:
    """The proxy's host name: with ``only_hosts`` it must resolve too, or nothing loads."""
    if spec.proxy is None:
        return None
    server = spec.proxy.server
    return urlsplit(server if "://" in server else f"http://{server}").hostname
