"""``landmark bench accuracy``: landmark on real pages that nobody here wrote.

``data/`` holds page snapshots of third-party product sites with their ground truth, taken
from a public benchmark under its licence (``data/SOURCE.md``). ``jobs/`` holds one job
file per site, written the way a user writes one from looking at a few of the site's
pages: no per-page tailoring. ``suite.py`` serves the pages on 127.0.0.1, runs each job
through ``run_job`` like a user's run, and ``scoring.py`` scores the records.
"""
