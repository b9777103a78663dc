"""Start URLs: checked and normalised wherever they enter — inline, from a file, or found
on a page.

A crawler opens what it is given. ``file:///etc/passwd``, ``javascript:`` or
``chrome://settings`` in a sources list would be read by a real browser with the
user's rights, so only the schemes a job allows (http and https by default) get
through. Normalising (scheme and host lower-cased, surrounding spaces dropped) makes
``HTTP://Example.org/a`` and ``http://example.org/a`` one source, not two.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SCHEMES = ("http", "https")
ALLOWED_SCHEMES = frozenset({"http", "https", "file"})  # what allow_schemes may name
MAX_URL_LENGTH = 8192
MAX_SOURCES_FILE_BYTES = 256 * 2**20
MAX_PROBLEMS_SHOWN = 10


class SourcesFileError(ValueError):
    """A sources file that cannot be used; the message names the file and the bad lines."""


def normalise_url(url: str, schemes: Iterable[str] = DEFAULT_SCHEMES) -> str:
    """``url`` made canonical, or a ValueError whose message says what is wrong with it."""
    if not isinstance(url, str):
        raise ValueError(f"expected a URL string, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ValueError("an empty URL")
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"a URL longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) < 0x20 or char in " \x7f" for char in text):
        raise ValueError(f"a URL with spaces or control characters: {text[:80]!r}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 — raises on a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"not a URL ({error}): {text[:80]!r}") from None
    scheme = parts.scheme.lower()
    allowed = sorted(set(schemes))
    if scheme not in allowed:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise ValueError(
            f"{shown} is not allowed ({text[:80]!r}); allowed: {', '.join(allowed)} "
            "(sources.allow_schemes)"
        )
    if scheme != "file" and not parts.hostname:
        raise ValueError(f"no host in {text[:80]!r}")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = userinfo + at + _host_port(hostport)
    path = parts.path or ("/" if netloc else "")
    return urlunsplit((scheme, netloc, path, parts.query, parts.fragment))


def _host_port(hostport: str) -> str:
    """The host lower-cased; the port (and an IPv6 literal's brackets) kept as written."""
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        return host.lower() + "]" + rest
    host, colon, port = hostport.partition(":")
    return host.lower() + colon + port


def read_sources_file(path: Path, schemes: Iterable[str] = DEFAULT_SCHEMES) -> list[str]:
    """The URLs in a sources file (UTF-8 text, one per line, ``#`` comments and blank lines
    skipped), normalised; a SourcesFileError lists the bad lines by number."""
    try:
        size = path.stat().st_size
        if size > MAX_SOURCES_FILE_BYTES:
            raise SourcesFileError(
                f"{path}: {size} bytes; a sources file may hold at most "
                f"{MAX_SOURCES_FILE_BYTES // 2**20} MiB"
            )
        data = path.read_bytes()
    except OSError as error:
        raise SourcesFileError(f"{path}: cannot be read: {error.strerror}") from None
    if b"\0" in data:
        raise SourcesFileError(f"{path}: a binary file; expected UTF-8 text, one URL per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourcesFileError(f"{path}: line {line}: not UTF-8 text") from None
    return _parse_lines(path, text.splitlines(), list(schemes))


def _parse_lines(path: Path, lines: list[str], schemes: list[str]) -> list[str]:
    urls: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            urls.append(normalise_url(text, schemes))
        except ValueError as error:
            problems.append(f"line {number}: {error}")
    if problems:
        more = len(problems) - MAX_PROBLEMS_SHOWN
        shown = problems[:MAX_PROBLEMS_SHOWN] + ([f"... and {more} more"] if more > 0 else [])
        raise SourcesFileError(f"{path}: bad URL(s):\n    " + "\n    ".join(shown))
    if not urls:
        raise SourcesFileError(f"{path}: no URL in it (one per line; # starts a comment)")
    return urls
