"""Browser discovery order: explicit, then Playwright's own, then a system browser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from landmark.actors import browser
from landmark.actors.browser import BrowserNotFoundError, find_browser


def fake_browser(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\necho 'Fake Chromium 1.0'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def empty_path(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_explicit_path_wins_over_everything(tmp_path, empty_path, monkeypatch):
    fake_browser(empty_path, "chromium")
    explicit = fake_browser(tmp_path, "my-chrome")
    monkeypatch.setattr(browser, "playwright_chromium", lambda: tmp_path / "bundled")
    found = find_browser(explicit)
    assert (found.path, found.origin) == (explicit, "explicit")
    assert found.version() == "Fake Chromium 1.0"


def test_explicit_path_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, empty_path):
    fake_browser(empty_path, "chromium")
    with pytest.raises(BrowserNotFoundError, match=r"does not exist: .*nope"):
        find_browser(tmp_path / "nope")


def test_explicit_path_that_is_not_a_program_is_an_error(tmp_path, empty_path):
    data = tmp_path / "passwd"
    data.write_text("root:x:0:0")
    for explicit in (data, tmp_path):
        with pytest.raises(BrowserNotFoundError, match=r"not an executable program|does not exist"):
            find_browser(explicit)


def test_playwright_bundled_before_system(tmp_path, empty_path, monkeypatch):
    fake_browser(empty_path, "chromium")
    bundled = fake_browser(tmp_path, "chrome-bundled")
    monkeypatch.setattr(browser, "playwright_chromium", lambda: bundled)
    assert find_browser().origin == "playwright"


def test_an_actor_asks_its_running_playwright_not_a_second_driver(tmp_path, empty_path):
    """The actor has Playwright started already: its answer is used, and a Playwright that
    has no browser of its own falls through to the system one."""
    system = fake_browser(empty_path, "chromium")
    bundled = fake_browser(tmp_path, "chrome-bundled")
    assert find_browser(bundled=lambda: bundled).path == bundled

    class NoBrowser:  # what Playwright's chromium says when nothing is installed
        @property
        def executable_path(self) -> str:
            return str(tmp_path / "not-installed" / "chrome")

    class Running:
        chromium = NoBrowser()

    running = browser.running_playwright_chromium(Running())  # type: ignore[arg-type]
    assert running is None
    found = find_browser(bundled=lambda: running)
    assert (found.path, found.origin) == (system, "system")


def test_system_browsers_in_order(empty_path, monkeypatch):
    monkeypatch.setattr(browser, "playwright_chromium", lambda: None)
    fake_browser(empty_path, "google-chrome")
    assert find_browser().path.name == "google-chrome"
    fake_browser(empty_path, "chromium-browser")
    assert find_browser().path.name == "chromium-browser"
    fake_browser(empty_path, "chromium")
    found = find_browser()
    assert (found.path.name, found.origin) == ("chromium", "system")


def test_nothing_found_names_the_three_ways(empty_path, monkeypatch):
    monkeypatch.setattr(browser, "playwright_chromium", lambda: None)
    with pytest.raises(BrowserNotFoundError) as caught:
        find_browser()
    message = str(caught.value)
    assert "LANDMARK_BROWSER" in message
    assert "playwright install chromium" in message
    assert "apt-get install -y chromium" in message


def test_playwright_lookup_does_not_crash_here():
    result = browser.playwright_chromium()
    assert result is None or os.access(result, os.X_OK)
