"""A client for ``landmark serve``, in the standard library only (``urllib``), so that a notebook
or a script can drive the service with nothing installed beyond Python.

    from landmark.coordinator.client import Client

    client = Client()  # LANDMARK_SERVER (default http://127.0.0.1:8650), LANDMARK_TOKEN
    job = client.submit("job.yaml", priority=5)
    client.wait(job["id"], timeout_s=600)
    for record in client.results(job["id"]):
        print(record["id"], record["status"], record["fields"])

Every refusal of the service is a :class:`ServiceError` carrying its status and its message
(and, for an invalid job, one line per problem, as ``landmark validate`` prints them); a
service that cannot be reached is a :class:`ServiceUnreachableError` that says how to start
one. Results are read in chunks that follow the service's cursor, so a big job is never
held whole in memory (except by :meth:`Client.results_text`, which asks for it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

SERVER_ENV = "LANDMARK_SERVER"
TOKEN_ENV = "LANDMARK_TOKEN"
DEFAULT_PORT = 8650
DEFAULT_SERVER = f"http://127.0.0.1:{DEFAULT_PORT}"
CURSOR_HEADER = "Landmark-Next-Cursor"
MORE_HEADER = "Landmark-More"  # "true" when complete records were left for the next chunk
FORMATS = ("jsonl", "csv", "xlsx")
FINISHED = ("done", "cancelled", "failed")  # JobState values that no longer change
REQUEST_TIMEOUT_S = 60.0
DOWNLOAD_TIMEOUT_S = 600.0  # an Excel file is made whole before the first byte is sent
PAGE_SIZE = 1000


class ServiceError(Exception):
    """The service answered with an error: ``status`` (HTTP), ``message`` (its ``error``) and,
    for an invalid job, ``problems`` (one line each, as ``landmark validate`` prints them)."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.message = message
        self.problems = list(problems or [])
        lines = [message] + [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class ServiceUnreachableError(ServiceError):
    """Nothing answered at the server's address (status 0: no HTTP exchange took place)."""


class Client:
    """One landmark service. ``server`` defaults to ``LANDMARK_SERVER``, else
    ``http://127.0.0.1:8650``; ``token`` to ``LANDMARK_TOKEN`` (sent as a bearer token)."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        server = server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
        if "://" not in server:
            server = f"http://{server}"  # "host:8650" is what people type
        self.server = server.rstrip("/")
        self.token = token or os.environ.get(TOKEN_ENV) or None
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"Client({self.server!r})"  # never the token

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, job: str | Path | Mapping[str, Any], priority: int = 0) -> dict[str, Any]:
        """Queue a job: a path to a YAML or JSON job file, or the job as a mapping. Answers the
        job's status (``id`` included). An invalid job is a ServiceError (422) whose
        ``problems`` name each field."""
        if isinstance(job, Mapping):
            body = json.dumps(dict(job), default=str).encode()
            content_type = "application/json"
        else:
            path = Path(job)
            body = path.read_bytes()
            json_file = path.suffix.lower() == ".json"
            content_type = "application/json" if json_file else "application/yaml"
        query = {"priority": str(priority)}
        return self._json("POST", "/jobs", query, body=body, content_type=content_type)

    def status(self, job_id: str | None = None) -> Any:
        """One job's status (a dict), or every job's (a list, newest first) without an id."""
        if job_id is None:
            return self._json("GET", "/jobs")
        return self._json("GET", _job_path(job_id))

    def wait(
        self,
        job_id: str,
        timeout_s: float | None = 3600.0,
        poll_s: float = 1.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is finished (done, cancelled or failed) and answer its last
        status; ``on_progress`` sees every status polled. Bounded: a TimeoutError after
        ``timeout_s`` (None: no bound), the job going on in the service."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status(job_id)
            if on_progress is not None:
                on_progress(status)
            if status.get("state") in FINISHED:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                finished = (status.get("done") or 0) + (status.get("failed") or 0)
                raise TimeoutError(
                    f"job {job_id} is still {status.get('state')} after {timeout_s:g} s "
                    f"({finished}/{status.get('known') or '?'} records); it goes on in the "
                    f"service: wait again, or see `landmark status {job_id}`"
                )
            pause = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            time.sleep(max(0.0, pause))

    def pause(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", _job_path(job_id, "pause"))

    def resume(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", _job_path(job_id, "resume"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", _job_path(job_id, "cancel"))

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/stats")

    # -- results ------------------------------------------------------------------------------
    def results(
        self, job_id: str, format: str = "jsonl", *, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """The job's records written so far, in order, fetched a chunk at a time: dicts as the
        record log holds them (``jsonl``), or CSV rows as dicts of text (``csv``)."""
        if format == "jsonl":
            for chunk in self.chunks(job_id, "jsonl", page_size=page_size):
                yield from (json.loads(line) for line in chunk.decode().splitlines() if line)
        elif format == "csv":
            header: list[str] | None = None
            for chunk in self.chunks(job_id, "csv", page_size=page_size):
                rows = csv.reader(io.StringIO(chunk.decode(), newline=""))
                if header is None:
                    header = next(rows, None)
                yield from (dict(zip(header or [], row, strict=False)) for row in rows)
        else:
            raise ValueError(f"results() reads jsonl or csv, not {format!r}; use download()")

    def chunks(
        self, job_id: str, format: str = "jsonl", *, page_size: int = PAGE_SIZE
    ) -> Iterator[bytes]:
        """The raw bodies of the results' chunks, following the cursor until the service says
        nothing complete is left (their concatenation is the whole file: CSV's header once)."""
        cursor: str | None = None
        while True:
            query = {"format": format, "limit": str(page_size)}
            if cursor is not None:
                query["after"] = cursor
            with self._open("GET", _job_path(job_id, "results"), query) as response:
                body = response.read()
                cursor = response.headers.get(CURSOR_HEADER, cursor)
                more = response.headers.get(MORE_HEADER) == "true"
            if body:
                yield body
            if not more:
                return

    def results_text(self, job_id: str, format: str = "csv") -> str:
        """The whole results so far as one text (``csv`` or ``jsonl``)."""
        return b"".join(self.chunks(job_id, format)).decode()

    def download(self, job_id: str, path: str | Path, format: str = "xlsx") -> Path:
        """Write the results to ``path`` (``xlsx`` needs a finished job), atomically: a temporary
        file beside it moved into place, so a failed download leaves no half file."""
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                if format == "xlsx":
                    query = {"format": "xlsx"}
                    route = _job_path(job_id, "results")
                    with self._open("GET", route, query, timeout_s=DOWNLOAD_TIMEOUT_S) as response:
                        while block := response.read(1 << 20):
                            file.write(block)
                else:
                    for chunk in self.chunks(job_id, format):
                        file.write(chunk)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return path

    # -- plumbing -----------------------------------------------------------------------------
    def _json(self, method: str, route: str, query: Mapping[str, str] | None = None, **send: Any):
        """The JSON answer of one request (``send``: :meth:`_open`'s body options)."""
        with self._open(method, route, query, **send) as response:
            return json.loads(response.read() or b"null")

    def _open(
        self,
        method: str,
        route: str,
        query: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The response of one request (a context manager), or a ServiceError."""
        url = self.server + route
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Accept", "application/json")
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            return urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s)
        except urllib.error.HTTPError as error:
            with error:
                raise _service_error(error.code, error.read()) from None
        except TimeoutError:
            raise ServiceUnreachableError(
                0,
                f"the landmark service at {self.server} did not answer within "
                f"{timeout_s or self.timeout_s:g} s; is it overloaded? try again",
            ) from None
        except (urllib.error.URLError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise ServiceUnreachableError(
                    0, f"the landmark service at {self.server} did not answer in time; try again"
                ) from None
            raise ServiceUnreachableError(
                0,
                f"no landmark service at {self.server} ({reason}); start one with "
                f"`landmark serve`, or point --server / {SERVER_ENV} at it",
            ) from None


def _service_error(status: int, body: bytes) -> ServiceError:
    """The service's JSON error (``error``, ``problems``), or the start of whatever else came
    back (a proxy's HTML page)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        problems = data.get("problems")
        return ServiceError(status, data["error"], problems if isinstance(problems, list) else [])
    text = body.decode(errors="replace").strip()[:200] or "(no body)"
    return ServiceError(status, f"HTTP {status} from the service: {text}")


def _job_path(job_id: str, action: str | None = None) -> str:
    route = "/jobs/" + urllib.parse.quote(job_id, safe="")
    return f"{route}/{action}" if action else route
