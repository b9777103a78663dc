"""Media downloads: streamed to disk under a cap, safely named, hashed."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest

from landmark.actors.downloads import (
    DownloadError,
    Identity,
    Route,
    download_to_file,
    safe_file_name,
)
from landmark.benchmarks.site import GallerySite, SiteConfig


@pytest.fixture(scope="module")
def site():
    with GallerySite(SiteConfig(items=5)) as running:
        yield running


def test_safe_file_name_keeps_names_tame():
    assert safe_file_name("abc", "http://x/media/a%20b.png?x=1") == "abc-a_b.png"
    assert safe_file_name("../../etc", "http://x/passwd") == "etc-passwd"
    assert safe_file_name("id", "http://x/") == "id-download"
    assert len(safe_file_name("i" * 300, "http://x/y")) == 200


def test_download_streams_to_disk_with_its_sha256(run, site, tmp_path: Path):
    item = site.truth()[0]
    url = item["fields"]["image"]
    body = urllib.request.urlopen(url, timeout=10).read()
    result = run(download_to_file(url, tmp_path / "media", item["id"], max_bytes=10**7))
    saved = Path(result["path"])
    assert saved.parent == tmp_path / "media" and saved.read_bytes() == body
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["bytes"] == len(body)
    assert not list(saved.parent.glob("*.part"))


def test_download_over_the_cap_is_not_kept(run, site, tmp_path: Path):
    url = site.truth()[1]["fields"]["image"]
    with pytest.raises(DownloadError, match=r"over download\.max_bytes \(100 bytes\); not kept"):
        run(download_to_file(url, tmp_path, "x", max_bytes=100))
    assert list(tmp_path.iterdir()) == []


def test_download_http_error_names_the_status(run, site, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        run(download_to_file(site.url + "media/nope.png", tmp_path, "x", max_bytes=100))


def test_worker_downloads_the_field_it_resolved(run, site, tmp_path: Path):
    from landmark.actors.worker import BrowserWorker
    from landmark.config.loading import load_job

    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "gallery.yaml"
    job = load_job(
        example,
        {
            "sources.urls": [site.url],
            "containers.open": "link",
            "budget.pages_per_actor": 1,
            "download": {"field": "image", "max_bytes": "1MiB"},
            "timeouts.discovery_idle": "1s",
        },
    )

    async def extract_two():
        worker = BrowserWorker(job, "dl", out_dir=tmp_path)
        await worker.start()
        try:
            containers = [c async for chunk in worker.discover(site.url) for c in chunk]
            return await worker.extract(containers[:2])
        finally:
            await worker.close()

    records = run(extract_two())
    for record in records:
        assert record.status == "ok", record.errors
        saved = Path(record.download["path"])
        assert saved.parent == tmp_path / "downloads"
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == record.download["sha256"]
        assert "download" in record.timings


def test_download_goes_out_as_the_jobs_browser(run, tmp_path: Path):
    """User agent, extra headers and the context's cookies reach the site with a download."""
    from landmark.actors.downloads import identity_of
    from landmark.config.browser_spec import BrowserSpec

    spec = BrowserSpec(user_agent="LandmarkTest/2.0", headers={"X-Run": "r1"}, locale="fr-FR")

    async def identity_for(url: str) -> Identity:
        return identity_of(spec, "session=abc; theme=dark")

    with GallerySite(SiteConfig(items=2, log_requests=True)) as logged:
        url = logged.truth()[0]["fields"]["image"]
        route = Route(identity_for=identity_for)
        run(download_to_file(url, tmp_path, "a", max_bytes=10**7, route=route))
        [entry] = [e for e in logged.request_log() if e["path"].startswith("/media/")]
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    assert headers["user-agent"] == "LandmarkTest/2.0"
    assert headers["x-run"] == "r1" and headers["accept-language"] == "fr-FR"
    assert headers["cookie"] == "session=abc; theme=dark"


def test_download_never_bypasses_a_socks_proxy():
    from landmark.actors.downloads import identity_of
    from landmark.config.browser_spec import BrowserSpec

    spec = BrowserSpec(proxy={"server": "socks5://127.0.0.1:1080"})
    with pytest.raises(DownloadError, match="socks5"):
        identity_of(spec)
    proxied = identity_of(BrowserSpec(proxy={"server": "127.0.0.1:3128", "username": "u"}))
    assert "Basic" not in repr(proxied)  # the credentials stay out of logs and tracebacks
    assert proxied.proxy == "http://127.0.0.1:3128"
    assert proxied.proxy_headers == {"Proxy-Authorization": "Basic dTo="}  # base64 of "u:"


def test_a_redirect_is_followed_on_the_jobs_hosts_only_with_each_hops_cookies(run, tmp_path):
    """aiohttp would follow a redirect anywhere, cookies and headers included: each hop is
    checked against the job's hosts and gets the cookies of its own URL."""
    from urllib.parse import urlsplit

    from worker_helpers import PageServer

    from landmark.actors.downloads import identity_of
    from landmark.config.browser_spec import BrowserSpec

    def redirect(location: str):
        def route(handler) -> None:
            handler.send_response(302)
            handler.send_header("Location", location)
            handler.end_headers()

        return route

    asked: list[str] = []

    async def identity_for(url: str) -> Identity:
        asked.append(url)
        return identity_of(BrowserSpec(), f"for={urlsplit(url).path}")

    elsewhere = PageServer({"/file.png": "PNGDATA"}, host="127.0.0.2")
    pages = {"/start": redirect("/file.png"), "/file.png": "PNGDATA"}
    with elsewhere, PageServer(pages) as site:
        pages["/leave"] = redirect(f"{elsewhere.url}file.png")
        host = urlsplit(site.url).hostname
        route = Route(lambda url: urlsplit(url).hostname == host, identity_for)
        saved = run(download_to_file(f"{site.url}start", tmp_path, "a", 10**6, route=route))
        with pytest.raises(
            DownloadError, match=r"redirected off the job's hosts, to http://127\.0\.0\.2"
        ):
            run(download_to_file(f"{site.url}leave", tmp_path, "b", 10**6, route=route))
    assert Path(saved["path"]).read_bytes() == b"PNGDATA"
    assert asked == [f"{site.url}start", f"{site.url}file.png", f"{site.url}leave"]
    assert elsewhere.requests == []  # the other host never heard from us
    assert not list(tmp_path.glob("*.part"))
