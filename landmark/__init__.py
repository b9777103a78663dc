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
from pathlib import Path

# A source checkout keeps the subpackages beside this folder (``actors/`` is
# ``landmark.actors``). An install maps them (setuptools' package-dir); a checkout that is
# only on sys.path — a Ray job's working_dir, PYTHONPATH — finds them through __path__.
_CHECKOUT = Path(__file__).resolve().parent.parent
if (
    not (Path(__file__).parent / "coordinator").is_dir()
    and (_CHECKOUT / "coordinator" / "cli.py").is_file()
):
    __path__.append(str(_CHECKOUT))

from landmark.api import RunResult, load_job, run, validate  # noqa: E402 (after __path__ is complete)
from landmark.config.job import JobSpec  # noqa: E402
from landmark.config.loading import JobFileError  # noqa: E402
from landmark.coordinator.driver import RunFailedError  # noqa: E402

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
