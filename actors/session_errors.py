"""How a browser session fails, apart from the session itself: the Coordinator imports
the BrowserActor's module for its class, and these names, without loading Playwright."""

from __future__ import annotations


class OffSiteError(Exception):
    """A navigation ended on a host the job does not allow (the resolver rules should have
    stopped it; this is the check that does not depend on them)."""


class BrowserGone(Exception):
    """The browser crashed or disconnected under a container; retry it elsewhere."""


class SessionBroken(Exception):
    """The browser cannot be brought back: the actor should be replaced."""
