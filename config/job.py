"""The job spec: what a user writes to say what to extract from where.

Every model forbids unknown keys, so a typo in a job file is an error that
names the key rather than a setting silently ignored. Every default is
documented on its field; ``landmark validate`` prints nothing but errors.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from landmark.config.browser_spec import BrowserSpec
from landmark.config.fields import FieldSpec
from landmark.config.sources import DEFAULT_SCHEMES, normalise_url, read_sources_file
from landmark.config.spec_base import MAX_WAIT, Spec, Text, check_one_group
from landmark.config.units import ByteSize, Duration, Limit, ResourceLimit


class OpenMode(StrEnum):
    """How one container is opened to read its fields."""

    LINK = "link"  # navigate a reused page to the container's own URL
    CLICK = "click"  # click the card in the gallery page; a panel shows the item
    SELF = "self"  # each source URL is itself one item page


class IdSource(StrEnum):
    """Where a container's stable id comes from."""

    ATTR = "attr"  # an attribute of the container element (``id_attr``)
    LINK = "link"  # the container's link URL
    TEXT_HASH = "text_hash"  # a hash of the container's normalised text


def _within(name: str, value: timedelta | None, *, zero_ok: bool = False) -> None:
    """Durations that bound a wait: at most a day, and more than zero where zero would mean
    "no wait at all" (or, to Playwright, "no deadline")."""
    if value is None:
        return
    if value > MAX_WAIT:
        raise ValueError(f"{name} must be at most 24h, got {value.total_seconds():g}s")
    if not zero_ok and value <= timedelta(0):
        raise ValueError(f"{name} must be more than 0s")


def plain_file_name(value: str) -> str:
    """A name for a file directly inside the output folder: no folders, no way out of it."""
    if not value or value in {".", ".."} or len(value) > 255:
        raise ValueError("must be a plain file name, such as results.jsonl")
    if any(sep in value for sep in ("/", "\\", "\0")) or value != value.strip():
        raise ValueError(f"must be a plain file name inside the output folder, got {value!r}")
    return value


class SourceSpec(Spec):
    allow_schemes: list[Literal["http", "https", "file"]] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMES),
        min_length=1,
        description="URL schemes a source (inline, listed in the file, or found on a page) may "
        "use. Default http and https; add file only for pages on this machine you trust.",
    )
    urls: list[str] = Field(
        default_factory=list,
        max_length=100_000,
        description="Start URLs: gallery or item pages. Scheme and host are lower-cased and "
        "surrounding spaces dropped.",
    )
    file: Path | None = Field(
        default=None,
        description="A UTF-8 text file with one URL per line (blank lines and # comments "
        "skipped), checked like urls; relative paths are read from the job file's folder.",
    )

    @field_validator("urls")
    @classmethod
    def _urls_allowed(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        schemes = info.data.get("allow_schemes", DEFAULT_SCHEMES)
        normalised = []
        for index, url in enumerate(urls):
            try:
                normalised.append(normalise_url(url, schemes))
            except ValueError as error:
                raise ValueError(f"[{index}]: {error}") from None
        return normalised

    @field_validator("file", mode="before")
    @classmethod
    def _file_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("an empty file name")
        return value

    @model_validator(mode="after")
    def _has_some(self) -> SourceSpec:
        if not self.urls and self.file is None:
            raise ValueError("give at least one URL in 'urls' or a 'file' of URLs")
        return self


class ContainerSpec(Spec):
    open: OpenMode = Field(default=OpenMode.CLICK, description="How to open one container.")
    selector: Text = Field(
        default="[data-id]",
        min_length=1,
        description="CSS selector of one container (card) on a gallery page. Unused for 'self'.",
    )
    id_from: IdSource = Field(default=IdSource.ATTR, description="Where the stable id comes from.")
    id_attr: Text = Field(default="data-id", description="The attribute read when id_from is attr.")
    link_selector: Text | None = Field(
        default=None,
        description="Inside the container, the element whose href opens it; default: the "
        "container itself if it is a link, else its first a[href].",
    )
    panel_selector: Text | None = Field(
        default=None,
        description="Click mode: the detail panel the click opens, where fields are read. "
        "Default: the whole document.",
    )
    close_selector: Text | None = Field(
        default=None,
        description="Click mode: what closes the panel; default: press Escape.",
    )
    scroll_container: Text | None = Field(
        default=None,
        description="The element that scrolls the gallery; default: found by itself "
        "(the largest scrollable element holding containers, else the window).",
    )
    limit: int | None = Field(
        default=None, ge=1, le=10**8, description="Stop after this many per source."
    )
    id_pattern: Text | None = Field(
        default=None,
        description="A regular expression with one group, searched in what the id comes from "
        "(the attribute, the link, the card's text, or the page URL in self mode); the group "
        "is the id. E.g. '/item/(\\w+)' keeps ids stable when the host or port changes. A "
        "value it does not match keeps the id it would have had without it.",
    )
    scope: Text | None = Field(
        default=None,
        description="A CSS selector that bounds the label search, in every open mode (e.g. "
        "'main' to skip a sidebar of filter links); in click mode it is looked for inside "
        "the panel. Default: the panel (click), else the whole page.",
    )

    @field_validator("id_pattern")
    @classmethod
    def _one_id_group(cls, value: str | None) -> str | None:
        return check_one_group(value, "id_pattern", "'/item/(\\w+)'")

    def id_from_value(self, value: str | None) -> str | None:
        """The id_pattern's group in ``value``, or None when there is no pattern or no match."""
        if self.id_pattern is None or not value:
            return None
        match = re.search(self.id_pattern, value)
        return match.group(1) if match and match.group(1) else None

    def label_root(self, mode: OpenMode) -> str | None:
        """Where fields are searched: the scope (inside the panel in click mode), else the
        panel in click mode, else the whole page (None)."""
        panel = self.panel_selector if mode is OpenMode.CLICK else None
        if panel and self.scope:
            return f"{panel} {self.scope}"
        return self.scope or panel

    @model_validator(mode="after")
    def _id_attr_given(self) -> ContainerSpec:
        if self.id_from is IdSource.ATTR and not self.id_attr:
            raise ValueError("id_from is 'attr' but id_attr is empty")
        return self


class DownloadSpec(Spec):
    """Download one file per container: the URL a url-typed field resolved to (e.g. the
    ``href`` of a "Download" link, found like any other field)."""

    field: str = Field(description="The field whose value (a URL) is downloaded.")
    dir: Path = Field(
        default=Path("downloads"),
        description="A folder inside the output folder (relative, without '..').",
    )
    max_bytes: ByteSize = Field(
        default=50 * 2**20,
        gt=0,
        le=2**40,
        description="A download larger than this is not kept: the record is 'partial' with "
        "the error named, and no part of the file stays on disk.",
    )
    idle: Duration = Field(
        default=timedelta(seconds=20),
        description="A download that receives nothing for this long is given up.",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="A whole download, at most (also bounded by what is left of the "
        "container's own deadline). A body that trickles in is cut here.",
    )

    @field_validator("dir")
    @classmethod
    def _inside_output(cls, value: Path) -> Path:
        if value.is_absolute() or ".." in value.parts or not str(value).strip():
            raise ValueError(f"must be a folder inside the output folder, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> DownloadSpec:
        _within("idle", self.idle)
        _within("timeout", self.timeout)
        return self


AUTO = "auto"
ActorCount = Annotated[int, Field(ge=1, le=1024)]


def _auto_is_none(value: object) -> object:
    """``actors: auto`` is kept as None (a plain optional int gives one clear error for a
    bad value, where a union with a literal gives two)."""
    return None if value == AUTO else value


class BudgetSpec(Spec):
    actors: Annotated[ActorCount | None, BeforeValidator(_auto_is_none)] = Field(
        default=None,
        description="BrowserActors to start; auto (the default, also spelled null): one per "
        "two CPUs of each node (this machine, or each node of the cluster joined), at least "
        "one a node.",
    )
    pages_per_actor: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Most pages an actor works at once (fewer on a node short of memory).",
    )
    pages_at_start: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Pages an actor works at first. While its node's CPU has room and work "
        "waits, it opens one more, up to pages_per_actor, and gives the extra back when the "
        "CPU saturates (coordinator/page_governor.py). At or above pages_per_actor: fixed.",
    )
    max_in_flight: int = Field(
        default=64, ge=1, le=100_000, description="Containers in flight, all actors."
    )
    min_in_flight: int = Field(
        default=2, ge=1, le=100_000, description="The adaptive limit never goes lower."
    )
    batch_size: int = Field(default=4, ge=1, le=256, description="Containers per extract call.")
    domain_rate: float = Field(
        default=200.0,
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="Requests per second to one domain (token bucket).",
    )
    domain_concurrency: int = Field(
        default=32, ge=1, le=100_000, description="Containers in flight against one domain."
    )
    memory_throttle: Limit = Field(
        default=ResourceLimit(fraction=0.75),
        description="Node memory (share or bytes) at which new dispatch stops.",
    )
    memory_shed: Limit = Field(
        default=ResourceLimit(fraction=0.85),
        description="Node memory at which concurrency is cut and the heaviest actor recycles. "
        "Keep it well under Ray's OOM threshold (95%).",
    )
    cpu_throttle: Limit = Field(
        default=ResourceLimit(fraction=1.0),
        description="Node CPU (share) above which, sustained, new dispatch stops. Default 100%: "
        "off. A busy CPU is what a dedicated crawler is for, and the adaptive limit already "
        "backs off when contention raises latency; set e.g. 85% on a shared machine.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> BudgetSpec:
        if self.min_in_flight > self.max_in_flight:
            raise ValueError("min_in_flight must not exceed max_in_flight")
        both_fractions = (
            self.memory_throttle.fraction is not None and self.memory_shed.fraction is not None
        )
        if both_fractions and self.memory_throttle.fraction > self.memory_shed.fraction:
            raise ValueError("memory_throttle must not exceed memory_shed")
        return self

    @property
    def first_pages(self) -> int:
        """Pages an actor works when it starts: ``pages_at_start``, within its most."""
        return min(self.pages_at_start, self.pages_per_actor)

    @property
    def adaptive_pages(self) -> bool:
        """Whether the page governor may move an actor's pages between the two."""
        return self.pages_at_start < self.pages_per_actor


class TimeoutSpec(Spec):
    navigation: Duration = Field(default=timedelta(seconds=20), description="One page load.")
    wait: Duration = Field(
        default=timedelta(seconds=10),
        description="A condition wait before the learner has samples (then p95 × margin).",
    )
    wait_min: Duration = Field(
        default=timedelta(seconds=2),
        description="Learned floor. Generous: a wait only runs this long when nothing appears "
        "at all, and a busy machine stalls pages for a second now and then.",
    )
    wait_max: Duration = Field(default=timedelta(seconds=30), description="Learned ceiling.")
    margin: float = Field(
        default=3.0, ge=1.0, le=100.0, description="Learned deadline = p95 × margin."
    )
    container: Duration = Field(
        default=timedelta(seconds=60), description="Everything for one container, at most."
    )
    discovery_idle: Duration = Field(
        default=timedelta(seconds=5),
        description="Discovery stops when no new container appears for this long (before "
        "the learner knows better).",
    )
    discovery: Duration = Field(
        default=timedelta(minutes=30),
        description="One source's whole discovery, at most. An endless feed stops here (or at "
        "containers.limit); the containers found so far are extracted, and the summary says "
        "which source was cut short and why.",
    )
    lease: Duration | None = Field(
        default=None,
        description="A batch not answered within this is taken back, its actor killed and "
        "replaced, and its containers requeued. Default: derived per batch from what may queue "
        "on the actor's pages: ceil((containers leased to it) / pages) × container + "
        "lease_margin.",
    )
    lease_margin: Duration = Field(
        default=timedelta(seconds=15),
        description="Added to a derived lease (and to discovery's deadlines): Ray's round "
        "trip and a browser relaunch between containers.",
    )
    store_outage: Duration = Field(
        default=timedelta(seconds=60),
        description="How long the store (Redis) may be unreachable before the run fails; "
        "meanwhile writes are kept and retried, and dispatch pauses if they pile up.",
    )
    actor_start: Duration = Field(
        default=timedelta(seconds=60),
        description="A BrowserActor that is not placed and started (browser launched) within "
        "this is killed and counted as a failed start. It also bounds a browser's relaunch "
        "and a recycled context's new pages.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimeoutSpec:
        for name in (
            "navigation", "wait", "wait_min", "wait_max", "container", "discovery_idle",
            "discovery", "lease", "store_outage", "actor_start",
        ):  # fmt: skip
            _within(name, getattr(self, name))
        _within("lease_margin", self.lease_margin, zero_ok=True)
        if self.wait_min > self.wait_max:
            raise ValueError("wait_min must not exceed wait_max")
        return self


class RetrySpec(Spec):
    max_attempts: int = Field(default=3, ge=1, le=20, description="Tries per container.")
    backoff: Duration = Field(default=timedelta(milliseconds=250), description="First delay.")
    backoff_max: Duration = Field(default=timedelta(seconds=30), description="Largest delay.")
    breaker_failures: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Consecutive failures that open a domain's breaker.",
    )
    breaker_cooldown: Duration = Field(
        default=timedelta(seconds=30), description="How long an open breaker stays open."
    )

    @model_validator(mode="after")
    def _bounded(self) -> RetrySpec:
        for name in ("backoff", "backoff_max", "breaker_cooldown"):
            _within(name, getattr(self, name), zero_ok=True)
        return self

    breaker_probes: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Failed probes in a row after which an open breaker gives its domain up: "
        "the domain's pending containers fail, with its last errors as the reason. With the "
        "default cooldown a dead site is given up about a minute after its breaker opens.",
    )
    actor_start_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Failed BrowserActor starts in a row (with backoff between them) after "
        "which, with no actor alive, the run fails instead of waiting.",
    )


class OutputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    JSON = "json"


def format_of(name: str) -> OutputFormat:
    """The format a results file's extension names; anything else is an error, not a guess."""
    suffix = Path(name).suffix.lower().lstrip(".")
    try:
        return OutputFormat("jsonl" if suffix == "ndjson" else suffix)
    except ValueError:
        known = ", ".join(f".{kind.value}" for kind in OutputFormat)
        raise ValueError(
            f"results {name!r}: unknown format {('.' + suffix) if suffix else '(no extension)'};"
            f" name it {known}, or set output.format"
        ) from None


class OutputSpec(Spec):
    dir: Path = Field(default=Path("runs/latest"), description="Where results are written.")
    results: str = Field(
        default="results.jsonl",
        description="The records: .jsonl, .csv or .json (the extension picks the format); "
        "a plain file name inside the output folder.",
    )
    summary: str = Field(
        default="summary.json",
        description="Counts, timings, memory, learner; a plain file name inside the output folder.",
    )
    format: OutputFormat | None = Field(
        default=None,
        description="jsonl, csv or json; default: the results file's extension.",
    )

    @field_validator("results", "summary")
    @classmethod
    def _plain_names(cls, value: str) -> str:
        return plain_file_name(value)

    @field_validator("dir", mode="before")
    @classmethod
    def _dir_named(cls, value: object) -> object:
        if isinstance(value, str) and (not value.strip() or "\0" in value):
            raise ValueError("an empty folder name, or one with a NUL in it")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> OutputSpec:
        if self.results == self.summary:
            raise ValueError("results and summary must be different files")
        if self.format is None:
            format_of(self.results)  # an unknown extension is an error here, not at the end
        return self

    @property
    def kind(self) -> OutputFormat:
        """The results' format: ``format`` if given, else the file's extension. Derived, not
        stored, so a job dumped and loaded again with another results name follows it."""
        return self.format or format_of(self.results)

    @property
    def record_log(self) -> str:
        """The JSON-lines file the store appends records to: the results file itself for
        jsonl, else a file in the state folder that the results are exported from."""
        if self.kind == OutputFormat.JSONL:
            return self.results
        return f".landmark/records-{Path(self.results).stem}.jsonl"


class CacheSpec(Spec):
    """The record cache: a container extracted before (same id, same host, same fields and
    opening) is served from it without opening a browser, and marked ``cached``."""

    enabled: bool = Field(default=True, description="Off with `cache: false`.")
    ttl: Duration = Field(
        default=timedelta(days=1),
        le=timedelta(days=366),
        description="How long a cached record may be served (at most 366 days).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"enabled": value} if isinstance(value, bool) else value


class PolitenessSpec(Spec):
    """How the job treats the sites' own rules (request rates are in ``budget``)."""

    robots_txt: Literal["obey", "ignore"] = Field(
        default="obey",
        description="obey: a URL that robots.txt disallows for browser.user_agent is not "
        "opened, and its record says so; ignore: robots.txt is not read.",
    )


class JobSpec(Spec):
    """A whole job: what to open, what to read, and how hard to push."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\w.-]+$")]
    sources: SourceSpec
    containers: ContainerSpec = Field(default_factory=ContainerSpec)
    fields: list[FieldSpec] = Field(min_length=1, max_length=500)
    download: DownloadSpec | None = None
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    timeouts: TimeoutSpec = Field(default_factory=TimeoutSpec)
    retries: RetrySpec = Field(default_factory=RetrySpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    browser: BrowserSpec = Field(default_factory=BrowserSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    politeness: PolitenessSpec = Field(default_factory=PolitenessSpec)

    @model_validator(mode="after")
    def _fields_consistent(self) -> JobSpec:
        names = [field.name for field in self.fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"field names must be unique; repeated: {', '.join(duplicates)}")
        if self.download and self.download.field not in names:
            raise ValueError(f"download.field {self.download.field!r} is not one of the fields")
        if self.download and any(f.many for f in self.fields if f.name == self.download.field):
            raise ValueError(f"download.field {self.download.field!r} is a list (many: true)")
        proxy = self.browser.proxy
        if self.download and proxy and proxy.server.lower().startswith("socks5"):
            raise ValueError(
                "download cannot go through a socks5 proxy (browser.proxy): use an http(s) "
                "proxy, or no download"
            )
        return self

    def source_urls(self, base: Path | None = None) -> list[str]:
        """All start URLs: inline ones, then those in ``sources.file``; deduplicated, in order."""
        urls = list(self.sources.urls)
        if self.sources.file is not None:
            path = self.sources.file
            if base is not None and not path.is_absolute():
                path = base / path
            urls.extend(read_sources_file(path, self.sources.allow_schemes))
        return list(dict.fromkeys(urls))
