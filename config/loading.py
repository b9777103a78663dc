"""Reading a job file and turning every mistake in it into one readable message.

A user who typos a key should see ``job.yaml: fields[2].lable: unknown key``,
not a pydantic traceback. ``JobFileError`` carries that text; the CLI prints it
and exits with status 2.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from landmark.config.job import JobSpec
from landmark.config.sources import SourcesFileError

MAX_JOB_FILE_BYTES = 4 * 2**20
MAX_STORAGE_STATE_BYTES = 16 * 2**20  # it travels with the job to every actor
SAVE_STATE_HINT = (
    "save one with Playwright's context.storage_state(path=...) after logging in, "
    "or remove browser.storage_state"
)
MAPPING_ORIGIN = Path("<job mapping>")  # what errors name for a job given as a mapping


class JobFileError(Exception):
    """A job file that cannot be used; ``str()`` is the whole message for the user."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: invalid job file"] + [f"  {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def _location(loc: tuple[int | str, ...]) -> str:
    """``fields[2].labels``; a key that is not a plain name is quoted: ``sources[':']``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).isidentifier():
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)[:40]!r}]"
    return text or "(top level)"


_FRIENDLY = {
    "extra_forbidden": "unknown key (check the spelling; see config/job.py for the keys)",
    "missing": "required but missing",
}


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: the field path, the reason and, for wrong types, what was given."""
    problems = []
    for item in error.errors(include_url=False):
        kind = item["type"]
        # pydantic tags model-level validators with no location; keep their message as is
        reason = _FRIENDLY.get(kind) or item["msg"].removeprefix("Value error, ")
        # our own validators (value_error) already quote what was wrong
        shown = kind not in _FRIENDLY and kind != "value_error" and "input" in item
        if shown and not isinstance(item["input"], dict) and not _secret(item["loc"]):
            reason += f" (got {_shorten(repr(item['input']))})"
        problems.append(f"{_location(item['loc'])}: {reason}")
    return problems


SECRET_PLACES = {"proxy", "headers", "storage_state", "password"}  # values never echoed


def _secret(loc: tuple[int | str, ...]) -> bool:
    """A value under a place that may hold a credential (a proxy, a header's token): its
    problem is named, its value is not shown."""
    return any(str(part) in SECRET_PLACES for part in loc)


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _syntax_problem(error: json.JSONDecodeError | yaml.YAMLError, path: Path) -> str:
    """One line: where the syntax breaks and why (PyYAML's own text spans several)."""
    kind = "JSON" if isinstance(error, json.JSONDecodeError) else "YAML"
    if isinstance(error, json.JSONDecodeError):
        line, column, why = error.lineno, error.colno, error.msg
    elif isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        line, column, why = mark.line + 1, mark.column + 1, error.problem or "bad syntax"
    else:
        return f"not valid {kind}: {_shorten(' '.join(str(error).split()))}"
    return f"not valid {kind} at line {line}, column {column}: {_shorten(why)}"


def parse_job_text(text: str, path: Path) -> dict[str, Any]:
    """YAML or JSON (by suffix; YAML also reads JSON) into a mapping, or a JobFileError."""
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except RecursionError:
        raise JobFileError(path, ["(file): nested too deeply to be a job file"]) from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise JobFileError(path, [_syntax_problem(error, path)]) from None
    if not isinstance(data, dict):
        raise JobFileError(path, ["(top level): expected a mapping of keys such as name, sources"])
    return data


def load_job(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> JobSpec:
    """Load and validate a job file (or a job given as a mapping); ``overrides`` (dotted
    keys such as ``budget.actors``) are applied before validation, so errors name them."""
    if isinstance(source, Mapping):
        path, data = MAPPING_ORIGIN, copy.deepcopy(dict(source))
    else:
        path = Path(source)
        data = parse_job_text(_read_job_text(path), path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(path, data, dotted, value)
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as error:
        raise JobFileError(path, describe_validation_error(error)) from None
    if job.sources.file is not None:
        _check_sources_file(path, job)
    if job.browser.storage_state is not None:
        _load_storage_state(path, job)
    return job


def _read_job_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise JobFileError(path, ["(file): a folder, not a job file"])
        if path.stat().st_size > MAX_JOB_FILE_BYTES:
            raise JobFileError(path, [f"(file): larger than {MAX_JOB_FILE_BYTES // 2**20} MiB"])
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobFileError(path, ["(file): no such file"]) from None
    except OSError as error:
        raise JobFileError(path, [f"(file): cannot be read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise JobFileError(path, ["(file): not UTF-8 text (a job file is YAML or JSON)"]) from None


def _check_sources_file(path: Path, job: JobSpec) -> None:
    """Resolve ``sources.file`` against the job file's folder and read it once, so that a bad
    line fails here (``validate`` and before Ray starts), with its number."""
    source_file = job.sources.file
    assert source_file is not None
    if not source_file.is_absolute():
        source_file = path.parent / source_file
    if not source_file.is_file():
        raise JobFileError(path, [f"sources.file: no such file: {source_file}"])
    job.sources.file = source_file.resolve()
    try:
        job.source_urls()
    except SourcesFileError as error:
        raise JobFileError(path, [f"sources.file: {error}"]) from None


def _load_storage_state(path: Path, job: JobSpec) -> None:
    """Resolve ``browser.storage_state`` against the job file's folder, read and check it here,
    and carry its contents with the job: actors on other nodes do not have the file. The
    problems name the file, never a cookie's value."""
    state_file = job.browser.storage_state
    assert state_file is not None
    if not state_file.is_absolute():
        state_file = path.parent / state_file
    where = "browser.storage_state"
    if not state_file.is_file():
        raise JobFileError(path, [f"{where}: no such file: {state_file}; {SAVE_STATE_HINT}"])
    try:
        if state_file.stat().st_size > MAX_STORAGE_STATE_BYTES:
            limit = MAX_STORAGE_STATE_BYTES // 2**20
            raise JobFileError(path, [f"{where}: {state_file} is larger than {limit} MiB"])
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise JobFileError(
            path, [f"{where}: {state_file} cannot be read: {error.strerror}"]
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        problem = "not JSON"
    else:
        problem = storage_state_problem(data)
    if problem is not None:
        reason = f"{state_file} is not a Playwright storage state ({problem})"
        raise JobFileError(path, [f"{where}: {reason}; {SAVE_STATE_HINT}"])
    job.browser.storage_state = state_file.resolve()
    job.browser.attach_storage_state(data)


def storage_state_problem(data: Any) -> str | None:
    """What makes ``data`` unusable as Playwright's ``storage_state`` (a JSON object with a
    ``cookies`` list and optionally an ``origins`` list), or None. Checked here so that a bad
    file fails ``validate``, not every actor's browser start."""
    if not isinstance(data, dict):
        return "expected a JSON object with a 'cookies' list"
    if not isinstance(data.get("cookies"), list):
        return "'cookies' must be a list"
    for index, cookie in enumerate(data["cookies"]):
        if problem := _cookie_problem(cookie):
            return f"cookies[{index}]: {problem}"
    origins = data.get("origins", [])
    if not isinstance(origins, list):
        return "'origins' must be a list"
    for index, origin in enumerate(origins):
        if problem := _origin_problem(origin):
            return f"origins[{index}]: {problem}"
    return None


def _cookie_problem(cookie: Any) -> str | None:
    """Playwright's rules for a cookie: a name and a value, and a url or a domain and path."""
    if not isinstance(cookie, dict):
        return "not an object"
    missing = [key for key in ("name", "value") if not isinstance(cookie.get(key), str)]
    if missing:
        return f"no text {' or '.join(missing)}"
    has_url = isinstance(cookie.get("url"), str)
    has_place = all(isinstance(cookie.get(key), str) for key in ("domain", "path"))
    if not (has_url or has_place):
        return "needs a 'url', or a 'domain' and a 'path'"
    if cookie.get("sameSite", "Lax") not in {"Strict", "Lax", "None"}:
        return "'sameSite' must be Strict, Lax or None"
    return None


def _origin_problem(origin: Any) -> str | None:
    if not isinstance(origin, dict) or not isinstance(origin.get("origin"), str):
        return "needs an 'origin' such as https://example.com"
    items = origin.get("localStorage", [])
    pairs = isinstance(items, list) and all(
        isinstance(item, dict) and isinstance(item.get("name"), str)
        and isinstance(item.get("value"), str)
        for item in items
    )  # fmt: skip
    return None if pairs else "'localStorage' must be a list of {name, value} texts"


def _set_dotted(path: Path, data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` (a number picks a list item: ``fields.0.css``), making mappings on the
    way; a path through something that is neither is one readable problem."""
    *parents, last = dotted.split(".")
    if not all(dotted.split(".")):
        raise JobFileError(path, [f"{dotted!r}: not a setting path (write it as output.dir)"])
    node: Any = data
    for depth, key in enumerate([*parents, last]):
        where = ".".join(parents[:depth]) or "(top level)"
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise JobFileError(path, [f"{where}: has {len(node)} item(s); no item {key!r}"])
            index: Any = int(key)
        elif isinstance(node, dict):
            index = key
        else:
            raise JobFileError(path, [f"{where}: not a mapping or list, cannot set {dotted}"])
        if depth == len(parents):
            node[index] = value
        else:
            node = node.setdefault(index, {}) if isinstance(node, dict) else node[index]
