"""The job's browser identity as configured: a storage state is read where the job is loaded
(resolved against the job file's folder, checked, carried with the job to the actors), a bad
one is a JobFileError that names ``browser.storage_state``, and no secret — the proxy's
password, a cookie's value — shows in a repr, a dump, an error or the job's identity."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from landmark.actors.browser import StorageStateMissing, context_options
from landmark.config.job import JobSpec
from landmark.config.loading import JobFileError, load_job
from landmark.coordinator.cli import main
from landmark.coordinator.store import JobIdentity

PASSWORD = "proxy-canary-7f3a"
COOKIE_VALUE = "cookie-canary-91bc"
STATE = {
    "cookies": [
        {"name": "session", "value": COOKIE_VALUE, "domain": "127.0.0.1", "path": "/"},
    ],
    "origins": [{"origin": "http://127.0.0.1:9", "localStorage": [{"name": "k", "value": "v"}]}],
}
JOB = {
    "name": "identity",
    "sources": {"urls": ["http://127.0.0.1:9/gallery"]},
    "fields": [{"name": "title", "labels": ["Title"]}],
}


def write_job(folder: Path, **browser) -> Path:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(JOB | {"browser": browser}))
    return path


def write_state(folder: Path, state, name: str = "state.json") -> Path:
    path = folder / name
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


def test_relative_storage_state_is_read_from_the_job_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "jobs"
    folder.mkdir()
    write_state(folder, STATE)
    monkeypatch.chdir(tmp_path)  # not the job's folder: the path must not depend on it
    job = load_job(write_job(folder, storage_state="state.json"))

    assert job.browser.storage_state == (folder / "state.json").resolve()
    assert job.browser.storage_state_data == STATE
    assert context_options(job.browser)["storage_state"] == STATE


def test_storage_state_travels_with_the_job_but_shows_nowhere(tmp_path):
    write_state(tmp_path, STATE)
    proxy = {"server": "http://127.0.0.1:3128", "username": "u", "password": PASSWORD}
    job = load_job(write_job(tmp_path, storage_state="state.json", proxy=proxy))

    copy = pickle.loads(pickle.dumps(job))  # what Ray does to send it to an actor
    assert copy.browser.storage_state_data == STATE
    assert copy.browser.proxy.password.get_secret_value() == PASSWORD
    shown = [repr(job), str(job), job.model_dump_json(), json.dumps(job.model_dump(mode="json"))]
    for text in shown:
        assert PASSWORD not in text and COOKIE_VALUE not in text
    assert context_options(job.browser)["proxy"]["password"] == PASSWORD  # for Playwright only


def test_identity_settings_do_not_change_the_jobs_identity(tmp_path):
    """A run may be resumed with another user agent or a fresh login: the output is the same."""
    write_state(tmp_path, STATE)
    plain = load_job(write_job(tmp_path))
    dressed = load_job(
        write_job(tmp_path, storage_state="state.json", user_agent="Bot/1", locale="de-DE")
    )
    sources = plain.source_urls()
    assert JobIdentity.of(plain, sources).hash == JobIdentity.of(dressed, sources).hash


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ([], "expected a JSON object"),
        ({"origins": []}, "'cookies' must be a list"),
        ({"cookies": [{"value": "x", "domain": "a", "path": "/"}]}, "cookies[0]: no text name"),
        ({"cookies": [{"name": "n", "value": "x"}]}, "cookies[0]: needs a 'url'"),
        ({"cookies": [], "origins": [{"localStorage": []}]}, "origins[0]: needs an 'origin'"),
    ],
)
def test_a_file_that_is_not_a_storage_state_is_refused(tmp_path, content, problem):
    write_state(tmp_path, content)
    with pytest.raises(JobFileError) as caught:
        load_job(write_job(tmp_path, storage_state="state.json"))
    message = str(caught.value)
    assert "browser.storage_state:" in message
    assert "is not a Playwright storage state" in message and problem in message
    assert "context.storage_state(path=...)" in message  # what to do about it


def test_a_missing_storage_state_fails_validate(tmp_path, capsys):
    status = main(["validate", str(write_job(tmp_path, storage_state="gone.json"))])
    err = capsys.readouterr().err
    assert status == 2
    assert f"browser.storage_state: no such file: {tmp_path / 'gone.json'}" in err
    assert "context.storage_state(path=...)" in err


def test_a_storage_state_not_loaded_with_the_job_is_said_at_once(tmp_path):
    """A JobSpec built by hand has the path but not the contents; the actor must not read
    the file from its own disk, so the session refuses to start, saying why."""
    job = JobSpec.model_validate(JOB | {"browser": {"storage_state": str(tmp_path / "s.json")}})
    with pytest.raises(StorageStateMissing, match="load_job"):
        context_options(job.browser)


def test_context_options_carry_every_identity_setting():
    job = JobSpec.model_validate(
        JOB
        | {
            "browser": {
                "user_agent": "LandmarkTest/1.0",
                "headers": {"X-Run": "7"},
                "locale": "de-DE",
                "timezone": "Asia/Tokyo",
                "proxy": {"server": "socks5://127.0.0.1:1080", "bypass": ".local"},
            }
        }
    )
    options = context_options(job.browser)
    assert options == {
        "viewport": {"width": 1280, "height": 900},
        "user_agent": "LandmarkTest/1.0",
        "extra_http_headers": {"X-Run": "7"},
        "locale": "de-DE",
        "timezone_id": "Asia/Tokyo",
        "proxy": {"server": "socks5://127.0.0.1:1080", "bypass": ".local"},
    }


def test_a_proxy_written_as_a_url_is_split_and_its_password_never_echoed(tmp_path):
    job = load_job(write_job(tmp_path), {"browser.proxy": "http://me%40corp:se:cret@proxy:3128"})
    proxy = job.browser.proxy
    assert (proxy.server, proxy.username) == ("http://proxy:3128", "me@corp")
    assert proxy.password.get_secret_value() == "se:cret" and "se:cret" not in repr(job)

    numeric = load_job(write_job(tmp_path), {"browser.proxy.server": "http://p:1",
                                             "browser.proxy.password": 12345678})  # fmt: skip
    assert numeric.browser.proxy.password.get_secret_value() == "12345678"

    for bad in [{"browser.proxy": "ftp://u:sekret@p:1"},
                {"browser.proxy": {"server": "http://p:1", "password": ["sekret"]}},
                {"browser.headers": {"X-Key": ["sekret-token"]}}]:  # fmt: skip
        with pytest.raises(JobFileError) as refused:
            load_job(write_job(tmp_path), bad)
        assert "sekret" not in str(refused.value), refused.value
