"""What every part of the job spec shares: the strict base model, text bounds, and the
checks of user-written regular expressions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 4096  # selectors, labels, patterns: longer is a mistake, not a page
MAX_WAIT = timedelta(hours=24)  # a longer wait would only hide a hung page
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class Spec(BaseModel):
    """Base of every job-spec model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
    return value


def check_one_group(value: str | None, name: str, example: str) -> str | None:
    """A valid regular expression whose one group is the value taken from a match."""
    check_regex(value)
    if value is not None and re.compile(value).groups != 1:
        raise ValueError(f"{name} must have exactly one group, e.g. {example}")
    return value
