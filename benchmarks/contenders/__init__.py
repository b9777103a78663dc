"""The contenders a benchmark compares, each run in a worker process of its own.

- ``landmark``: the product, end to end (``coordinator.driver.run_job``);
- ``bare``: bare Playwright, the ceiling of what the browser can do;
- ``baseline``: the seeds' sequential, fixed-delay extractor;
- ``crawlee``: Crawlee for Python's ``PlaywrightCrawler`` (optional extra ``peers``).
"""

from __future__ import annotations

from landmark.benchmarks.contenders.pool import ContenderProcess, Sampler, Samples, WorkerError
from landmark.benchmarks.contenders.spec import ItemResult, Kind, Mode, Outcome, RunSpec

__all__ = [
    "ContenderProcess",
    "ItemResult",
    "Kind",
    "Mode",
    "Outcome",
    "RunSpec",
    "Sampler",
    "Samples",
    "WorkerError",
]
