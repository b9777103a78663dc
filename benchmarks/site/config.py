"""The Gallery site's knobs, and the command-line flags that set them.

Every knob is a research variable: a benchmark sweeps one (latency, failure
rate, virtualised list, ...) and keeps the others fixed, so each is validated
here once and the server never has to second-guess its configuration.
"""

from __future__ import annotations

import argparse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Jitter = Literal["none", "uniform", "exponential"]

HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class SiteConfig(BaseModel):
    """What the synthetic gallery looks like and how badly it behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = Field(default=240, ge=1, le=1_000_000, description="Number of gallery items.")
    seed: int = Field(default=1, ge=0, le=2**63 - 1, description="Seed for every generated value.")
    page_size: int = Field(default=24, ge=1, le=1000, description="Cards per list API page.")
    latency_ms: float = Field(
        default=0.0, ge=0.0, le=60_000.0, description="Mean injected latency of the APIs, in ms."
    )
    jitter: Jitter = Field(
        default="uniform",
        description="Latency spread: none, uniform in [0.5, 1.5] x mean, or exponential.",
    )
    age_penalty: float = Field(
        default=0.0, ge=0.0, le=100.0, description="Latency x (1 + age_penalty x position/items)."
    )
    fail_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of items whose first attempts fail."
    )
    fail_attempts: int = Field(
        default=1, ge=1, le=100, description="How many first attempts of a failing item fail."
    )
    slow_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of slow items.")
    slow_factor: float = Field(
        default=5.0, ge=1.0, le=1000.0, description="Latency multiplier of a slow item."
    )
    missing_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of items missing one optional row."
    )
    label_variants: bool = Field(
        default=False, description="Draw each item's labels from variant spellings."
    )
    virtualize: bool = Field(
        default=False, description="Keep only about three screens of cards in the DOM."
    )
    decoys: bool = Field(default=True, description="Add a hidden decoy 'Model' row to each panel.")
    panel: Literal["div", "dialog"] = Field(
        default="div",
        description="The detail panel: a role=dialog div removed on close, or one native "
        "<dialog> opened with showModal() and closed in place (it stays in the DOM, and a "
        "synthetic Escape does not close it).",
    )
    robots_txt: str | None = Field(
        default=None,
        max_length=500 * 1024,
        description="The text served at /robots.txt; default: none (404, everything allowed).",
    )
    log_requests: bool = Field(
        default=False,
        description="Keep each request's path and headers (the last 10000), shown at "
        "/_requests: for tests of what a crawler sends. Off by default: the hot path keeps "
        "no per-request state.",
    )


class SiteConfigError(ValueError):
    """A knob out of range; the message names the flag and the reason."""


def add_site_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --port, --host and one flag per ``SiteConfig`` knob, defaults taken from the model."""
    fields = SiteConfig.model_fields
    group = parser.add_argument_group("gallery site")
    group.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    group.add_argument(
        "--host", choices=[HOST], default=HOST, help="the site only listens on loopback"
    )
    for name, kind in (
        ("items", int),
        ("seed", int),
        ("page_size", int),
        ("latency_ms", float),
        ("age_penalty", float),
        ("fail_rate", float),
        ("fail_attempts", int),
        ("slow_rate", float),
        ("slow_factor", float),
        ("missing_rate", float),
    ):
        group.add_argument(
            _flag(name),
            type=kind,
            default=fields[name].default,
            help=f"{fields[name].description} (default: %(default)s)",
        )
    group.add_argument(
        "--panel",
        choices=["div", "dialog"],
        default=fields["panel"].default,
        help=f"{fields['panel'].description} (default: %(default)s)",
    )
    group.add_argument(
        "--jitter",
        choices=["none", "uniform", "exponential"],
        default=fields["jitter"].default,
        help=f"{fields['jitter'].description} (default: %(default)s)",
    )
    for name in ("label_variants", "virtualize", "log_requests"):
        group.add_argument(_flag(name), action="store_true", help=fields[name].description)
    group.add_argument("--robots-txt", default=None, help=fields["robots_txt"].description)
    group.add_argument(
        "--no-decoys", dest="decoys", action="store_false", help="Leave out the hidden decoy row."
    )
    return parser


def site_config_from_args(args: argparse.Namespace) -> SiteConfig:
    """Build the config from parsed flags; raise ``SiteConfigError`` naming the bad flag."""
    values = {name: getattr(args, name) for name in SiteConfig.model_fields if hasattr(args, name)}
    try:
        return SiteConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        flag = _flag(str(first["loc"][0])) if first["loc"] else "site"
        raise SiteConfigError(f"{flag}: {first['msg']} (got {first.get('input')!r})") from None


def site_config_to_args(config: SiteConfig) -> list[str]:
    """The flags that rebuild ``config`` in another process (``-m landmark.benchmarks.site``)."""
    args: list[str] = []
    for name, value in config.model_dump().items():
        if value is None:  # the default of every optional knob
            continue
        if isinstance(value, bool):
            if name == "decoys":
                args += [] if value else ["--no-decoys"]
            elif value:
                args.append(_flag(name))
        else:
            args += [_flag(name), str(value)]
    return args


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
