"""landmark: structured metadata from JavaScript-rendered galleries, at scale.

The Python API, in five lines::

    import landmark

    job = landmark.load_job("job.yaml", overrides={"containers.limit": 50})
    result = landmark.run(job, out="runs/api")
    for record in result:
        print(record["id"], record["status"], record["fields"])

The repository's folders are this package's subpackages (``landmark.actors``,
``landmark.coordinator``, ``landmark.config``, …). Importing ``landmark`` is cheap: Ray and
Playwright load only when a run starts.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from landmark.api import RunResult, load_job, run, validate
from landmark.config.job import JobSpec
from landmark.config.loading import JobFileError
from landmark.coordinator.driver import RunFailedError

try:
    __version__ = version("landmark")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "JobFileError",
    "JobSpec",
    "RunFailedError",
    "RunResult",
    "__version__",
    "load_job",
    "run",
    "validate",
]
