"""Media downloads: streamed to disk under a size cap, named safely, hashed on the way.

The file is written under a temporary name and renamed when complete, so a
crash never leaves a half file that looks whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(container_id: str, url: str) -> str:
    """``{id}-{last path segment}`` with anything but [A-Za-z0-9._-] replaced; never hidden."""
    tail = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download"
    name = _UNSAFE.sub("_", f"{container_id}-{tail}").strip("._") or "download"
    return name[:200]


async def download_to_file(
    url: str, folder: Path, container_id: str, max_bytes: int
) -> dict[str, Any]:
    """Stream ``url`` into ``folder``; returns path, bytes, sha256 and whether it was cut off."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    target = folder / safe_file_name(container_id, url)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    written = 0
    truncated = False
    timeout = aiohttp.ClientTimeout(total=120, sock_read=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status >= 400:
                raise OSError(f"HTTP {response.status} downloading {url}")
            with partial.open("wb") as sink:
                async for chunk in response.content.iter_chunked(CHUNK):
                    room = max_bytes - written
                    if len(chunk) > room:
                        chunk, truncated = chunk[:room], True
                    sink.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if truncated:
                        break
    except aiohttp.ClientError as error:
        partial.unlink(missing_ok=True)
        raise OSError(f"download of {url} failed: {error}") from None
    os.replace(partial, target)
    return {
        "path": str(target),
        "bytes": written,
        "sha256": digest.hexdigest(),
        "truncated": truncated,
    }
