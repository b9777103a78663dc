"""The HTTP face of ``landmark serve``: jobs in, status and records out, over aiohttp.

Everything here translates; the service (``ServiceBackend`` in ``service_types.py``) decides.
A job is read and checked exactly as ``landmark validate`` reads a file (the same field
paths, the same reasons), plus what a shared service must refuse that a local run need not:
URL schemes outside ``allowed_schemes``, and files on the server's disk (``sources.file``,
``browser.storage_state``) unless the service was started with ``allow_local_files``.

Records are served from the job's record log (JSON lines, appended as the service merges
them) in chunks: ``after`` is a cursor this API gave (the byte offset of the next unread
line, always at a line's start), ``Landmark-Next-Cursor`` the one to ask with next, and
``Landmark-More: true`` says complete records were left for the next chunk. A line still
being written is never served, so the chunks read in turn are exactly the whole log. File
reads run in a thread: a big log never blocks the event loop.

Every answer that is not a success is JSON ``{"error": "..."}`` saying what to do (an
invalid job adds ``problems``, one line each); an unexpected exception is logged and
answered 500, never with a traceback.

Security: with a ``token``, every request but ``/healthz`` carries ``Authorization: Bearer
TOKEN`` (the status page may be opened as ``/?token=TOKEN``; its script sends the header).
Without one the service must listen on loopback (:func:`bind_check`), and then answers only
requests addressed to a loopback name: a web page cannot reach it by DNS rebinding, and a
cross-site POST (its ``Origin`` is another site) is refused whatever the token.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from landmark.config.job import JobSpec
from landmark.config.loading import (
    JobFileError,
    describe_validation_error,
    load_job,
    parse_job_text,
)
from landmark.coordinator.api_metrics import prometheus_text
from landmark.coordinator.client import CURSOR_HEADER, MORE_HEADER, TOKEN_ENV
from landmark.coordinator.exporters import (
    ExportFormat,
    MissingExtraError,
    export,
    require,
)
from landmark.coordinator.log_chunks import (
    MAX_CHUNK_BYTES,
    CursorError,
    csv_text,
    log_records,
    read_chunk,
)
from landmark.coordinator.service_types import (
    JobState,
    JobStateError,
    ServiceBackend,
    UnknownJobError,
)

logger = logging.getLogger("landmark.api")

MAX_BODY_BYTES = 2**20
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_TAIL = 1000
PRIORITIES = range(0, 10)
STATUS_PAGE = "status_page.html"
JSONL_TYPE = "application/x-ndjson"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
OPEN_PATHS = frozenset({"/healthz"})  # answered without a token: a load balancer's probe
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
BODY_ORIGIN = Path("<request body>")  # what a problem names for a job sent in a request


class ServeConfigError(Exception):
    """``landmark serve`` was asked for something unsafe or impossible (e.g. listening beyond
    loopback without a token); ``str()`` is the message for the user."""


class ApiError(Exception):
    """An answer other than success: ``status``, the ``error`` text and any more JSON keys."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


# -- binding --------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_check(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token: the API runs browsers on any URL
    it is given and hands out what they read."""
    if not token and not is_loopback(host):
        raise ServeConfigError(
            f"--host {host} would let anyone who can reach this machine submit jobs: pass "
            f"--token TOKEN or set {TOKEN_ENV} (clients send it as a bearer token), or listen "
            "on 127.0.0.1"
        )


# -- the app --------------------------------------------------------------------------------
def build_app(
    service: ServiceBackend,
    *,
    token: str | None,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_schemes: Iterable[str] = ("http", "https"),
    allow_local_files: bool = False,
) -> web.Application:
    """The aiohttp application over ``service`` (its routes: ``api_schema.py``)."""
    from landmark.coordinator.api_schema import openapi

    schemes = tuple(sorted({scheme.lower() for scheme in allowed_schemes}))
    page = _status_page()
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[_errors_middleware(max_body_bytes), _guard_middleware(token)],
    )
    routes = _Routes(service, schemes, allow_local_files, max_body_bytes)

    async def status_page(request: web.Request) -> web.Response:
        return web.Response(text=page.html, content_type="text/html", headers=page.headers)

    async def healthz(request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def openapi_json(request: web.Request) -> web.Response:
        return _json(openapi())

    app.router.add_get("/", status_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/jobs", routes.list_jobs)
    app.router.add_post("/jobs", routes.submit)
    app.router.add_get("/jobs/{id}", routes.one_job)
    for action in ("pause", "resume", "cancel"):
        app.router.add_post(f"/jobs/{{id}}/{action}", routes.action(action))
    app.router.add_get("/jobs/{id}/results", routes.results)
    app.router.add_get("/stats", routes.stats)
    app.router.add_get("/metrics", routes.metrics)
    return app


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda value: json.dumps(value, default=str)
    )


def _error(error: ApiError) -> web.Response:
    return _json({"error": error.message, **error.extra}, error.status, error.headers)


def _errors_middleware(max_body_bytes: int) -> Any:
    """Every failure as JSON with what to do: ours (ApiError), the service's (unknown job,
    wrong state), aiohttp's own (no such route, body too large), and the unexpected (logged
    with its traceback, answered without it)."""

    @web.middleware
    async def errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as error:
            response = _error(error)
        except UnknownJobError:
            job_id = request.match_info.get("id", "")
            message = f"no job {job_id!r} in this service; GET /jobs lists them"
            response = _error(ApiError(404, message))
        except JobStateError as error:
            response = _error(ApiError(409, str(error) or "not possible in the job's state"))
        except web.HTTPException as error:
            response = _error(_http_error(request, error, max_body_bytes))
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            response = _error(
                ApiError(500, "the service failed on this request (its log says why); try again")
            )
        if not response.prepared:  # a file already sent has its headers out
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return errors


def _http_error(request: web.Request, error: web.HTTPException, limit: int) -> ApiError:
    headers = {key: error.headers[key] for key in ("Allow",) if key in error.headers}
    if error.status == 413:
        message = (
            f"the request body is larger than this service accepts ({limit} bytes): a job "
            "file is small; list many URLs in a sources file instead of inline"
        )
    elif error.status == 404:
        message = f"no route {request.method} {request.path}; GET /openapi.json lists them"
    elif error.status == 405:
        allowed = headers.get("Allow", "?")
        message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    else:
        message = error.text or error.reason
    return ApiError(error.status, message, headers=headers)


def _guard_middleware(token: str | None) -> Any:
    """The token, and two checks against web pages driving a service on this machine."""
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and _cross_site(request):
            raise ApiError(403, "a request from another web site; use the API or the CLI")
        if expected is None:
            if not is_loopback(request.url.host or ""):
                raise ApiError(
                    403,
                    "this service has no token and answers only requests to a loopback "
                    "address (127.0.0.1, ::1, localhost)",
                )
        elif request.path not in OPEN_PATHS and not _authorised(request, expected):
            raise ApiError(
                401,
                "a token is needed: send 'Authorization: Bearer TOKEN' (the client and the "
                f"CLI take --token or {TOKEN_ENV}; a browser opens /?token=TOKEN)",
                headers={"WWW-Authenticate": 'Bearer realm="landmark"'},
            )
        return await handler(request)

    return guard


def _authorised(request: web.Request, expected: bytes) -> bool:
    given = request.headers.get("Authorization", "")
    if not given and request.path == "/" and request.method == "GET" and "token" in request.query:
        given = f"Bearer {request.query['token']}"  # the status page, opened in a browser
    return hmac.compare_digest(given.encode(), expected)


def _cross_site(request: web.Request) -> bool:
    """A browser names the page that sent a request in ``Origin``; one that is not this
    service's own address is another site's page (a POST it could not read the answer to,
    but which would still run a job)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    host = request.headers.get("Host", "")
    return origin.split("://", 1)[-1].rstrip("/").lower() != host.lower()


@dataclass(frozen=True, slots=True)
class _Page:
    html: str
    headers: dict[str, str]


def _status_page() -> _Page:
    """The page, and a Content-Security-Policy that lets only its own inline script run (by
    hash): records hold text from untrusted pages, and nothing they hold may run here."""
    html = resources.files("landmark.coordinator").joinpath(STATUS_PAGE).read_text("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in scripts
    )
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return _Page(html, {"Content-Security-Policy": policy, "Referrer-Policy": "no-referrer"})


# -- the routes -----------------------------------------------------------------------------
class _Routes:
    def __init__(
        self,
        service: ServiceBackend,
        schemes: tuple[str, ...],
        allow_local_files: bool,
        max_body_bytes: int,
    ) -> None:
        self.service = service
        self.schemes = schemes
        self.allow_local_files = allow_local_files
        self.max_body_bytes = max_body_bytes

    async def list_jobs(self, request: web.Request) -> web.Response:
        return _json(self.service.jobs())

    async def one_job(self, request: web.Request) -> web.Response:
        return _json(self.service.job(request.match_info["id"]))

    def action(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def act(request: web.Request) -> web.Response:
            call = getattr(self.service, name)
            return _json(await call(request.match_info["id"]))

        act.__name__ = name
        return act

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.service.stats())

    async def metrics(self, request: web.Request) -> web.Response:
        text = prometheus_text(self.service.stats(), self.service.jobs())
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TYPE})

    # -- submitting ---------------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_bytes, actual_size=length)
        body = await request.read()
        query_priority = _query_priority(request.query.get("priority"))
        data, envelope_priority = _read_job_body(body, request.content_type)
        if query_priority is not None and envelope_priority is not None:
            raise ApiError(422, "priority given twice (in the query and in the body); give one")
        priority = next((p for p in (query_priority, envelope_priority) if p is not None), 0)
        job = await asyncio.to_thread(self.check_job, data)
        try:
            status = await self.service.submit(job, priority)
        except JobFileError as error:  # the service's own refusal of a job, said the same way
            raise _invalid(error.problems) from None
        location = "/jobs/" + _quote(str(status["id"]))
        return _json(status, 201, {"Location": location})

    def check_job(self, data: dict[str, Any]) -> JobSpec:
        """What ``landmark validate`` says of the job (the same lines), then this service's
        rules: source schemes in ``allowed_schemes`` (discovery narrowed to them too), and no
        file on the server's disk unless ``allow_local_files``. Runs in a thread: a long
        sources list, or a sources file when allowed, takes a while to check."""
        try:
            job = JobSpec.model_validate(copy.deepcopy(data))
        except ValidationError as error:
            raise _invalid(describe_validation_error(error)) from None
        problems = self._scheme_problems(job)
        local = [
            where
            for where, value in (
                ("sources.file", job.sources.file),
                ("browser.storage_state", job.browser.storage_state),
            )
            if value is not None
        ]
        if local and not self.allow_local_files:
            problems += [
                f"{where}: names a file on the service's machine, which this service does not "
                "read (start it with --allow-local-files to allow that)"
                + ("; list the URLs in sources.urls instead" if where == "sources.file" else "")
                for where in local
            ]
        if problems:
            raise _invalid(problems)
        if local:
            try:
                job = load_job(data)  # reads and checks the files, as `landmark validate` does
            except JobFileError as error:
                raise _invalid(error.problems) from None
            self._narrow_schemes(job)
        return job

    def _scheme_problems(self, job: JobSpec) -> list[str]:
        allowed = ", ".join(self.schemes)
        problems = [
            f"sources.urls[{index}]: {_scheme(url)}: is not allowed by this service "
            f"(allowed: {allowed})"
            for index, url in enumerate(job.sources.urls)
            if _scheme(url) not in self.schemes
        ]
        if not self._narrow_schemes(job):
            problems.append(
                f"sources.allow_schemes: none is allowed by this service (allowed: {allowed})"
            )
        return problems

    def _narrow_schemes(self, job: JobSpec) -> bool:
        """Links found on pages follow the service's schemes as well as the job's."""
        kept = [scheme for scheme in job.sources.allow_schemes if scheme in self.schemes]
        if kept and kept != job.sources.allow_schemes:
            job.sources.allow_schemes = kept
        return bool(kept)

    # -- results ------------------------------------------------------------------------------
    async def results(self, request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["id"]
        status = self.service.job(job_id)
        fmt = request.query.get("format", "jsonl")
        if fmt not in ("jsonl", "csv", "xlsx"):
            raise ApiError(400, f"format: {fmt!r} is not one of jsonl, csv, xlsx")
        if fmt == "xlsx":
            return await self._xlsx(request, job_id, status)
        after = _cursor(request.query.get("after"))
        limit = _int_query(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        tail = _int_query(request, "tail", None, MAX_TAIL)
        if tail is not None and after is not None:
            raise ApiError(400, "tail and after cannot be given together: tail starts a read")
        log = self.service.record_log(job_id)
        try:
            chunk = await asyncio.to_thread(
                read_chunk, log, after or 0, tail or limit, MAX_CHUNK_BYTES, tail=tail is not None
            )
        except CursorError as error:
            raise ApiError(400, f"after: {error}") from None
        headers = {
            CURSOR_HEADER: str(chunk.next_offset),
            MORE_HEADER: "true" if chunk.more else "false",
            "Landmark-Records": str(len(chunk.lines)),
            "Landmark-Job-State": str(status.get("state", "")),
        }
        if fmt == "jsonl":
            headers["Content-Type"] = f"{JSONL_TYPE}; charset=utf-8"
            return web.Response(body=b"".join(chunk.lines), headers=headers)
        names = [field.name for field in self.service.spec(job_id).fields]
        text = await asyncio.to_thread(csv_text, chunk.lines, names, header=not after)
        headers["Content-Type"] = "text/csv; charset=utf-8"
        return web.Response(body=text.encode(), headers=headers)

    async def _xlsx(
        self, request: web.Request, job_id: str, status: Mapping[str, Any]
    ) -> web.StreamResponse:
        """The whole job in one Excel file, made once the job is finished (an Excel file cannot
        be appended to, so a running job is read as csv or jsonl)."""
        state = str(status.get("state"))
        if state not in {s.value for s in JobState if s.finished}:
            raise ApiError(
                409,
                f"job {job_id} is {state}: Excel is made once it is finished; read "
                "format=csv or format=jsonl meanwhile",
            )
        try:
            require(ExportFormat.XLSX)
        except MissingExtraError as error:
            raise ApiError(501, f"{error} (on the service's machine)") from None
        names = [field.name for field in self.service.spec(job_id).fields]
        log = self.service.record_log(job_id)
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="landmark-xlsx-"))
        try:
            path = folder / "results.xlsx"
            await asyncio.to_thread(export, log_records(log), path, ExportFormat.XLSX, names)
            name = re.sub(r"[^\w.-]", "_", str(status.get("name") or job_id)) or "results"
            response = web.FileResponse(
                path,
                headers={
                    "Content-Type": XLSX_TYPE,
                    "Content-Disposition": f'attachment; filename="{name}.xlsx"',
                    "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "no-store",
                },
            )
            await response.prepare(request)  # sent whole before the file is removed
            return response
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)


def _invalid(problems: list[str]) -> ApiError:
    count = len(problems)
    return ApiError(
        422,
        f"invalid job: {count} problem{'s' if count != 1 else ''} (each names its field); "
        "fix them and submit again",
        problems=problems,
    )


def _read_job_body(body: bytes, content_type: str) -> tuple[dict[str, Any], Any]:
    """The job mapping, and the priority of a ``{"job": ..., "priority": N}`` envelope."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid(["(file): not UTF-8 text (a job is YAML or JSON)"]) from None
    kind = content_type.lower()
    is_json = kind in JSON_TYPES or kind.endswith("+json")
    # YAML reads JSON too, so a body of another (or no) type is read as YAML
    origin = BODY_ORIGIN.with_suffix(".json") if is_json else BODY_ORIGIN
    try:
        data = parse_job_text(text, origin)
    except JobFileError as error:
        raise _invalid(error.problems) from None
    if set(data) <= {"job", "priority"} and isinstance(data.get("job"), dict):
        raw = data.get("priority")
        if raw is not None and (isinstance(raw, bool) or raw not in PRIORITIES):
            raise ApiError(422, f"priority: expected a whole number from 0 to 9 (got {raw!r})")
        return data["job"], raw
    return data, None


def _query_priority(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.strip().isdigit() or int(raw) not in PRIORITIES:
        raise ApiError(422, f"priority: expected a whole number from 0 to 9 (got {raw[:20]!r})")
    return int(raw)


def _int_query(request: web.Request, name: str, default: int | None, most: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, f"{name}: expected a whole number from 1 to {most} (got {raw[:20]!r})")
    return int(raw)


def _cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise ApiError(400, "after: not a cursor this service gave (send Landmark-Next-Cursor)")
    return int(raw)


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")
