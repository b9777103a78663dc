"""The synthetic Gallery site: a deterministic target that serves its own ground truth.

Shaped like the AI-generation galleries this project was born from: a
scrolling container that loads cards in pages, hashed class names, a detail
panel filled by a delayed API call, labelled rows, a media download, and knobs
for latency, failures, missing fields, label variants and virtualisation.
"""

from __future__ import annotations

from landmark.benchmarks.site.config import (
    SiteConfig,
    SiteConfigError,
    add_site_arguments,
    site_config_from_args,
    site_config_to_args,
)
from landmark.benchmarks.site.data import class_prefix, item_at, latency_ms, truth
from landmark.benchmarks.site.runner import GallerySite, SiteProcess, run_site, start_site_process
from landmark.benchmarks.site.server import SiteError, create_app, serve, start_site

__all__ = [
    "GallerySite",
    "SiteConfig",
    "SiteConfigError",
    "SiteError",
    "SiteProcess",
    "add_site_arguments",
    "class_prefix",
    "create_app",
    "item_at",
    "latency_ms",
    "run_site",
    "serve",
    "site_config_from_args",
    "site_config_to_args",
    "start_site",
    "start_site_process",
    "truth",
]
