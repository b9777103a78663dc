"""The browser a job runs: which binary, and who it says it is to the sites it visits.

Identity settings (user agent, headers, locale, timezone, proxy, a logged-in storage
state) go on every browser context the job opens; sites see the same visitor from every
BrowserActor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from landmark.config.spec_base import Spec, Text
from landmark.config.units import ByteSize

HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an HTTP token (RFC 9110)
# Headers the browser sets itself; setting them by hand breaks pages rather than helps.
RESERVED_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "cookie"}


class ProxySpec(Spec):
    """A proxy for every request of the job (Playwright's proxy settings)."""

    server: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        description="http://host:port, https://host:port or socks5://host:port."
    )
    username: Text | None = Field(default=None, description="For a proxy that asks for one.")
    password: SecretStr | None = Field(
        default=None, description="Never printed: summaries and errors show ***."
    )
    bypass: Text | None = Field(
        default=None, description="Comma-separated hosts that skip the proxy, e.g. .local."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: object) -> object:
        """``proxy: http://user:pass@host:3128`` is the form people write: split it."""
        if not isinstance(value, str):
            return value
        parts = urlsplit(value if "://" in value else f"http://{value}")
        server = f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if _port_of(parts) else ""
        )
        spec: dict[str, object] = {"server": server}
        if parts.username is not None:
            spec["username"] = unquote(parts.username)
        if parts.password is not None:
            spec["password"] = unquote(parts.password)
        return spec

    @field_validator("username", "password", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        """``password: 12345678`` is read by YAML as a number: it is still a password."""
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        parts = urlsplit(value if "://" in value else f"http://{value}")
        if parts.scheme not in {"http", "https", "socks5"} or not parts.hostname:
            raise ValueError(
                f"proxy server {_without_credentials(value)!r}: give scheme://host:port with "
                "scheme http, https or socks5"
            )
        if parts.username or parts.password:
            raise ValueError("put the proxy's credentials in username and password, not the URL")
        return value


def _port_of(parts) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number: the server check below says so
        return None


def _without_credentials(value: str) -> str:
    scheme, sep, rest = value.rpartition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


class BrowserSpec(Spec):
    executable: Path | None = Field(
        default=None, description="A Chromium/Chrome binary; default: found by itself."
    )
    headless: bool | None = Field(default=None, description="Default: LANDMARK_HEADLESS or true.")
    allow_domains: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=10_000,
        description="Domains pages may navigate to besides the sources' own.",
    )
    recycle_after: int = Field(
        default=1000, ge=1, le=10**7, description="Containers before the context is recreated."
    )
    recycle_rss: ByteSize = Field(
        default=1536 * 2**20,
        ge=64 * 2**20,
        le=2**40,
        description="Browser tree PSS above which the context is recreated (at least 64MiB); "
        "where a fresh context already needs more (deep pages), 1.5x what it needed.",
    )
    load_images: bool = Field(
        default=False,
        description="Fetch images (pictures, CSS backgrounds) in pages. Off by default: an "
        "image field is its URL and a download fetches that itself, so the pixels only cost "
        "network, decoding and painting. Turn on for a site that shows its content only once "
        "its images have loaded, or swaps a placeholder on load (while off, nothing fires an "
        "image's load or error event, and an image with no size set takes none).",
    )
    viewport: tuple[
        Annotated[int, Field(ge=100, le=10_000)], Annotated[int, Field(ge=100, le=10_000)]
    ] = Field(default=(1280, 900), description="Page size, pixels (each 100 to 10000).")
    user_agent: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="The User-Agent sent and seen by scripts; default: the browser's own. "
        "robots.txt rules are matched against it.",
    )
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME, max_length=256)], Text] = Field(
        default_factory=dict, max_length=100, description="Extra HTTP headers on every request."
    )
    locale: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | None = Field(
        default=None, description="e.g. de-DE: Accept-Language and navigator.language."
    )
    timezone: Annotated[str, Field(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")] | None = Field(
        default=None, description="An IANA zone, e.g. Europe/Berlin; default: the machine's."
    )
    proxy: ProxySpec | None = Field(default=None, description="A proxy for every request.")
    storage_state: Path | None = Field(
        default=None,
        description="A Playwright storage-state file (cookies, localStorage) for a logged-in "
        "session; relative paths are read from the job file's folder.",
    )
    # The file's parsed contents, read once where the job is loaded (``load_job``): actors may
    # run on other nodes, which do not have the file. Private, so it pickles with the job to
    # every actor but never shows in a dump, a repr, the summary or the job's identity hash.
    _storage_state_data: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def storage_state_data(self) -> dict[str, Any] | None:
        """The storage state read by ``load_job`` (cookies, origins), or None."""
        return self._storage_state_data

    def attach_storage_state(self, data: dict[str, Any]) -> None:
        """Carry ``data`` (a checked Playwright storage state) with the job to the actors."""
        self._storage_state_data = data

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in value if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(
                f"header(s) {', '.join(reserved)} are set by the browser itself"
                " (cookies come from browser.storage_state)"
            )
        if any(name.lower() == "user-agent" for name in value):
            raise ValueError("set the user agent with browser.user_agent, not a header")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value
