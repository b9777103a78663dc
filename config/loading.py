"""Reading a job file and turning every mistake in it into one readable message.

A user who typos a key should see ``job.yaml: fields[2].lable: unknown key``,
not a pydantic traceback. ``JobFileError`` carries that text; the CLI prints it
and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.job import JobSpec


class JobFileError(Exception):
    """A job file that cannot be used; ``str()`` is the whole message for the user."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: invalid job file"] + [f"  {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
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
        if kind not in _FRIENDLY and "input" in item and not isinstance(item["input"], dict):
            reason += f" (got {item['input']!r})"
        problems.append(f"{_location(item['loc'])}: {reason}")
    return problems


def parse_job_text(text: str, path: Path) -> dict[str, Any]:
    """YAML or JSON (by suffix; YAML also reads JSON) into a mapping, or a JobFileError."""
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise JobFileError(
            path, [f"not valid {path.suffix.lstrip('.') or 'YAML'}: {error}"]
        ) from None
    if not isinstance(data, dict):
        raise JobFileError(path, ["(top level): expected a mapping of keys such as name, sources"])
    return data


def load_job(path: str | Path, overrides: dict[str, Any] | None = None) -> JobSpec:
    """Load and validate a job file; ``overrides`` (dotted keys) are applied before validation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobFileError(path, ["no such file"]) from None
    except OSError as error:
        raise JobFileError(path, [f"cannot be read: {error.strerror}"]) from None
    data = parse_job_text(text, path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as error:
        raise JobFileError(path, describe_validation_error(error)) from None
    if job.sources.file is not None:
        source_file = job.sources.file
        if not source_file.is_absolute():
            source_file = path.parent / source_file
        if not source_file.is_file():
            raise JobFileError(path, [f"sources.file: no such file: {source_file}"])
        job.sources.file = source_file.resolve()
    return job


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
