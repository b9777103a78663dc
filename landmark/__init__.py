"""landmark: structured metadata from JavaScript-rendered galleries, at scale.

The Python API, in five lines::

    import landmark

    job = landmark.load_job("job.yaml", overrides={"containers.limit": 50})
    result = landmark.run(job, out="runs/api")
    for record in result:
        print(record["id"], record["status"], record["fields"])

The repository's folders are this package's subpackages (``landmark.actors``,
``landmark.coordinator``, ``landmark.config``, …). Importing ``landmark`` is cheap: the API
loads on first use, Ray and Playwright when a run starts. Every error a run can raise
for a user's mistake is importable from here (``landmark.JobFileError``, …).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

# A source checkout keeps the subpackages beside this folder (``actors/`` is
# ``landmark.actors``). An install maps them (setuptools' package-dir); a checkout that is
# only on sys.path — a Ray job's working_dir, PYTHONPATH — finds them through __path__.
_CHECKOUT = Path(__file__).resolve().parent.parent
if (
    not (Path(__file__).parent / "coordinator").is_dir()
    and (_CHECKOUT / "coordinator" / "cli.py").is_file()
):
    __path__.append(str(_CHECKOUT))

try:
    __version__ = version("landmark")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# The API, loaded on first use (PEP 562): `import landmark` stays cheap, and a node that
# only needs `landmark.actors` does not import the driver's side.
_EXPORTS = {
    "load_job": "landmark.api",
    "run": "landmark.api",
    "validate": "landmark.api",
    "RunResult": "landmark.api",
    "JobSpec": "landmark.config.job",
    "JobFileError": "landmark.config.loading",
    "SettingsError": "landmark.config.settings",
    "RunFailedError": "landmark.coordinator.driver",
    "BrowserNotFoundError": "landmark.actors.browser",
    "OutputError": "landmark.coordinator.preflight",
    "BudgetError": "landmark.coordinator.preflight",
    "JobChangedError": "landmark.coordinator.store",
    "StoreError": "landmark.coordinator.store",
    "StoreUrlError": "landmark.coordinator.store_config",
    "ExportError": "landmark.coordinator.exporters",
    "MissingExtraError": "landmark.coordinator.exporters",
}
__all__ = [
    "BrowserNotFoundError",
    "BudgetError",
    "ExportError",
    "JobChangedError",
    "JobFileError",
    "JobSpec",
    "MissingExtraError",
    "OutputError",
    "RunFailedError",
    "RunResult",
    "SettingsError",
    "StoreError",
    "StoreUrlError",
    "__version__",
    "load_job",
    "run",
    "validate",
]

if TYPE_CHECKING:
    from landmark.actors.browser import BrowserNotFoundError
    from landmark.api import RunResult, load_job, run, validate
    from landmark.config.job import JobSpec
    from landmark.config.loading import JobFileError
    from landmark.config.settings import SettingsError
    from landmark.coordinator.driver import RunFailedError
    from landmark.coordinator.exporters import ExportError, MissingExtraError
    from landmark.coordinator.preflight import BudgetError, OutputError
    from landmark.coordinator.store import JobChangedError, StoreError
    from landmark.coordinator.store_config import StoreUrlError


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'landmark' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
