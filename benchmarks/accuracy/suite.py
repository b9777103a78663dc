"""Serve each site's pages, run its job, score the records (see ``__init__``).

A site is a folder ``data/<site>/`` with ``pages/<id>.html.gz`` and ``truth.json``
(``{id: {"url": …, field: [accepted values], …}}``), and a job ``jobs/<site>.yaml``
without sources or output: the suite adds both. A page is served at
``/<site>/<id>.html`` and opened in ``self`` mode, so each page is one container; every
other host stays blocked, as it would be for a user's job.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from landmark.benchmarks.accuracy.scoring import FieldScore
from landmark.benchmarks.site.runner import serve_in_thread
from landmark.config.loading import load_job
from landmark.coordinator.store import read_results

HERE = Path(__file__).parent
DATA_DIR = HERE / "data"
JOBS_DIR = HERE / "jobs"
BOUND_S = 600.0  # one site's run; its own deadlines are far shorter
ACTORS = 2  # the jobs' default budget


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    pages: dict[str, Path]  # page id → its .html.gz
    truth: dict[str, dict[str, Any]]
    job: Path
    published: dict[str, dict[str, dict[str, Any]]]  # system → page → field → its value

    @property
    def fields(self) -> list[str]:
        return sorted({k for page in self.truth.values() for k in page if k != "url"})


def find_sites(data_dir: Path = DATA_DIR, jobs_dir: Path = JOBS_DIR) -> dict[str, Site]:
    """Every site with both its data and its job."""
    sites = {}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []:
        job = jobs_dir / f"{folder.name}.yaml"
        truth_file = folder / "truth.json"
        if not job.is_file() or not truth_file.is_file():
            continue
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        pages = {p.name.removesuffix(".html.gz"): p for p in (folder / "pages").glob("*.html.gz")}
        missing = sorted(set(truth) - set(pages))
        if missing:
            raise ValueError(f"{folder}: truth names pages that are not there: {missing[:3]}")
        published_file = folder / "published.json"
        published = (
            json.loads(published_file.read_text(encoding="utf-8"))
            if published_file.is_file()
            else {}
        )
        sites[folder.name] = Site(folder.name, pages, truth, job, published)
    return sites


def pick(sites: dict[str, Site], names: list[str] | None) -> list[Site]:
    if not names:
        return list(sites.values())
    unknown = [n for n in names if n not in sites]
    if unknown:
        raise ValueError(f"unknown sites {unknown}; the suite has {', '.join(sites)}")
    return [sites[n] for n in names]


# -- serving ------------------------------------------------------------------------------


class _Pages(BaseHTTPRequestHandler):
    sites: dict[str, Site] = {}

    def do_GET(self) -> None:
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        site = self.sites.get(parts[0]) if len(parts) == 2 else None
        page = site.pages.get(parts[1].removesuffix(".html")) if site else None
        if page is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_error(404)
            return
        body = gzip.decompress(page.read_bytes())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a page closed early
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet: a page's failed asset requests are not the bench's news."""


@contextmanager
def serving(sites: list[Site]) -> Iterator[str]:
    """The pages on a free 127.0.0.1 port for the ``with`` block; yields the base URL."""
    handler = type("Pages", (_Pages,), {"sites": {s.name: s for s in sites}})
    with serve_in_thread(handler, "accuracy-pages") as url:
        yield url


# -- running and scoring ----------------------------------------------------------------------


@dataclass(slots=True)
class SiteResult:
    site: str
    pages: int
    records: int = 0
    wall_s: float = 0.0
    problem: str | None = None
    scores: dict[str, FieldScore] = field(default_factory=dict)
    published: dict[str, dict[str, FieldScore]] = field(default_factory=dict)  # system → …
    misses: list[dict[str, Any]] = field(default_factory=list)  # page, field, true, got, error

    def as_document(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "pages": self.pages,
            "records": self.records,
            "wall_s": round(self.wall_s, 1),
            "problem": self.problem,
            "scores": {name: score.as_dict() for name, score in self.scores.items()},
            "published": {
                system: {name: score.as_dict() for name, score in scores.items()}
                for system, scores in self.published.items()
            },
            "misses": self.misses,
        }


def run_site(site: Site, base_url: str, work: Path, limit: int | None = None) -> SiteResult:
    """The site's job over its pages (the first ``limit`` by id, if given), scored."""
    from landmark.benchmarks.hostile import run_bounded

    ids = sorted(site.truth)[:limit] if limit else sorted(site.truth)
    urls = {f"{base_url}/{site.name}/{page}.html": page for page in ids}
    out = work / site.name
    job = load_job(
        site.job,
        {"name": f"accuracy-{site.name}", "sources.urls": list(urls), "output.dir": str(out)},
    )
    result = SiteResult(site.name, len(ids))
    began = datetime.now()
    summary, problem = run_bounded(job, BOUND_S)
    result.wall_s = (datetime.now() - began).total_seconds()
    result.problem = problem or (None if summary else "no summary")
    records = {urls.get(r["source"]): r for r in read_results(out / job.output.results)}
    result.records = len([page for page in records if page is not None])
    for name in site.fields:
        result.scores[name] = FieldScore()
    for page in ids:
        record = records.get(page) or {}
        got = record.get("fields") or {}
        errors = {e.get("field"): e.get("reason") for e in record.get("errors", [])}
        whole = errors.get(None) or (None if record else "no record")
        for name, score in result.scores.items():
            true = site.truth[page].get(name, [])
            counted = score.add(true, got.get(name), name)
            if counted != (1, 0, 0) and counted != (0, 0, 0):
                result.misses.append(
                    {"page": page, "field": name, "true": true, "got": got.get(name),
                     "error": errors.get(name) or whole}
                )  # fmt: skip
    result.published = score_published(site, ids)
    return result


def score_published(site: Site, ids: list[str]) -> dict[str, dict[str, FieldScore]]:
    """The published systems' own outputs for the same pages, scored the same way."""
    scores: dict[str, dict[str, FieldScore]] = {}
    for system, outputs in site.published.items():
        scores[system] = {name: FieldScore() for name in site.fields}
        for page in ids:
            for name, score in scores[system].items():
                score.add(site.truth[page].get(name, []), outputs.get(page, {}).get(name), name)
    return scores


def run_suite(sites: list[Site], limit: int | None, say: Callable[[str], None]) -> list[SiteResult]:
    from landmark.coordinator.ray_setup import init_ray

    init_ray(None, ACTORS)  # here, on the main thread: each site's run then reuses it
    results = []
    with tempfile.TemporaryDirectory(prefix="landmark-accuracy-") as scratch, serving(sites) as url:
        for site in sites:
            result = run_site(site, url, Path(scratch), limit)
            f1 = ", ".join(f"{n} {s.f1:.2f}" for n, s in result.scores.items())
            say(f"  {site.name}: {result.records}/{result.pages} records, F1 {f1}"
                + (f" ({result.problem})" if result.problem else ""))  # fmt: skip
            results.append(result)
    return results


def totals(results: list[SiteResult], system: str | None = None) -> dict[str, FieldScore]:
    """Every site's pages together, per field: landmark's, or a published system's."""
    merged: dict[str, FieldScore] = {}
    for result in results:
        scores = result.scores if system is None else result.published.get(system, {})
        for name, score in scores.items():
            merged.setdefault(name, FieldScore()).merge(score)
    return merged


def systems(results: list[SiteResult]) -> list[str]:
    return list(dict.fromkeys(name for r in results for name in r.published))


def table(results: list[SiteResult]) -> list[str]:
    """Per site and field: landmark's precision, recall and F1, the published systems' F1
    on the same pages, and the support; then all sites together."""
    names = systems(results)
    lines = [
        "| site | field | precision | recall | F1 | "
        + "".join(f"{n} F1 | " for n in names)
        + "support | pages |",
        "|---|---|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    rows = [
        (r.site, r.scores, {n: r.published.get(n, {}) for n in names}, r.pages) for r in results
    ]
    everything = {n: totals(results, n) for n in names}
    rows.append(("all", totals(results), everything, sum(r.pages for r in results)))
    for site, scores, published, pages in rows:
        for name, score in scores.items():
            theirs = "".join(
                f"{published[n][name].f1:.3f} | " if name in published[n] else "- | " for n in names
            )
            lines.append(
                f"| {site} | {name} | {score.precision:.3f} | {score.recall:.3f} | "
                f"{score.f1:.3f} | {theirs}{score.support} | {pages} |"
            )
    return lines


def write_document(
    results: list[SiteResult], results_dir: Path, started: datetime, context: dict[str, Any]
) -> Path:
    """``accuracy-<time>.json`` beside the other scenarios' (``landmark bench report``)."""
    from landmark.benchmarks.report import save_result

    document = {
        "runs": [r.as_document() for r in results],
        "totals": {name: s.as_dict() for name, s in totals(results).items()},
        "published_totals": {
            system: {name: s.as_dict() for name, s in totals(results, system).items()}
            for system in systems(results)
        },
    }
    return save_result("accuracy", document, results_dir, started, context)
