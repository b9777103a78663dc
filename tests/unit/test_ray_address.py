"""A wrong ``--address`` fails in seconds with a sentence that names it, instead of Ray
retrying an address that never answers for minutes (observed: still retrying at 617 s);
``RAY_ADDRESS`` is honoured; inside ``ray job submit`` the job's runtime env is kept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from landmark.coordinator import driver, ray_setup
from landmark.coordinator.ray_setup import RayStartError, probe_address
from landmark.logs import LEVEL_ENV

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_nothing_listening_fails_in_seconds_naming_the_address(scheme):
    address = f"{scheme}127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RayStartError, match=f"cannot reach the Ray cluster at '{address}'"):
        probe_address(address, timeout_s=2)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("address", ["not-an-address", "127.0.0.1", "host:port", ":6379"])
def test_something_that_is_not_an_address_says_what_one_looks_like(address):
    with pytest.raises(RayStartError, match="not an address; give host:port"):
        probe_address(address)


def test_a_listening_head_and_auto_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe_address(f"127.0.0.1:{server.getsockname()[1]}")
    probe_address("auto")


def test_a_dashboard_url_says_it_is_for_ray_job_submit():
    with pytest.raises(RayStartError, match=r"dashboard .*`ray job submit`; give the head's GCS"):
        probe_address("http://127.0.0.1:8265")


# -- init_ray and the runtime env, without a cluster -----------------------------------------
def test_init_ray_joins_the_address_in_ray_address(monkeypatch):
    """``RAY_ADDRESS`` alone makes a run join, as ``--address`` does (it used to be ignored)."""
    import ray

    joined: list[str] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_setup, "_join", joined.append)
    monkeypatch.setattr(ray_setup, "start_local_ray", lambda **_: pytest.fail("started Ray"))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    ray_setup.init_ray(None, actors=2)
    ray_setup.init_ray("ray://head:10001", actors=2)  # the option wins over the variable
    assert joined == ["10.0.0.7:6379", "ray://head:10001"]


def test_outside_a_job_the_package_and_log_level_are_shipped(monkeypatch):
    monkeypatch.delenv(ray_setup.JOB_CONFIG_ENV, raising=False)
    monkeypatch.setattr(ray_setup, "shipped_package", lambda: Path("/staged/landmark"))
    monkeypatch.setenv(LEVEL_ENV, "DEBUG")
    assert ray_setup.joining_runtime_env() == {
        "py_modules": ["/staged/landmark"],
        "env_vars": {LEVEL_ENV: "DEBUG"},
    }


def _in_job(monkeypatch, runtime_env: dict) -> None:
    """What Ray's job supervisor sets for a ``ray job submit`` entrypoint (no RAY_JOB_ID)."""
    config = {"runtime_env": runtime_env, "metadata": {}}
    monkeypatch.setenv(ray_setup.JOB_CONFIG_ENV, json.dumps(config))
    monkeypatch.delenv("RAY_JOB_ID", raising=False)


def test_inside_a_job_its_runtime_env_is_kept(monkeypatch):
    """Ray merges the driver's runtime env into the job's and refuses a key both set: only
    the log level is added, and not even that when the job sets it."""
    monkeypatch.setenv(LEVEL_ENV, "DEBUG")
    _in_job(monkeypatch, {"working_dir": "gcs://_ray_pkg_0123.zip"})
    assert ray_setup.in_submitted_job()
    assert ray_setup.joining_runtime_env() == {"env_vars": {LEVEL_ENV: "DEBUG"}}
    _in_job(monkeypatch, {"working_dir": "gcs://_ray_pkg_0123.zip", "env_vars": {LEVEL_ENV: "x"}})
    assert ray_setup.joining_runtime_env() == {}


def test_a_relative_out_inside_a_job_is_said_with_where_it_lands(monkeypatch, tmp_path):
    said: list[str] = []
    monkeypatch.setattr(driver.logger, "warning", said.append)
    monkeypatch.chdir(tmp_path)
    driver.warn_relative_out_in_job(Path("runs/x"))  # not in a job: nothing to say
    _in_job(monkeypatch, {})
    driver.warn_relative_out_in_job(tmp_path / "abs")  # absolute: nothing to say
    driver.warn_relative_out_in_job(Path("runs/x"))
    assert len(said) == 1
    assert str(tmp_path / "runs" / "x") in said[0] and "pass an absolute --out" in said[0]


# -- `landmark run` end to end: exit 1, one sentence naming the address, no traceback ---------
def _run_cli(tmp_path: Path, *options: str, env: dict[str, str] | None = None):
    command = [sys.executable, "-m", "landmark.coordinator.cli", "run", str(EXAMPLE_JOB)]
    command += ["--out", str(tmp_path / "out"), "--browser", sys.executable, *options]
    environ = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NO_COLOR")}
    return subprocess.run(
        command,
        cwd=tmp_path,
        env=environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,  # a hang (Ray retrying for minutes) fails here; a refusal takes seconds
    )


@pytest.mark.parametrize(
    ("options", "env", "reason"),
    [
        (["--address", "127.0.0.1:{port}"], {}, "Connection refused"),
        (["--address", "not-an-address"], {}, "not an address"),
        ([], {"RAY_ADDRESS": "127.0.0.1:{port}"}, "Connection refused"),
    ],
    ids=["closed-port", "not-an-address", "RAY_ADDRESS"],
)
def test_run_with_a_wrong_address_exits_1_naming_it(tmp_path, options, env, reason):
    port = str(closed_port())
    options = [option.replace("{port}", port) for option in options]
    env = {key: value.replace("{port}", port) for key, value in env.items()}
    address = options[-1] if options else env["RAY_ADDRESS"]
    done = _run_cli(tmp_path, *options, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    expected = f"landmark: the run could not finish: cannot reach the Ray cluster at '{address}'"
    assert last.startswith(expected), done.stderr
    assert reason in last, last


def test_through_ray_client_an_output_folder_the_head_cannot_see_is_refused(tmp_path):
    """Through ray:// the Coordinator writes results on the head: a folder that is not the
    same disk there is an OutputError naming what to do, and the probe file is removed."""
    from landmark.coordinator.preflight import OutputError

    seen: list[str] = []

    def elsewhere(path: str) -> bool:  # the head looks for the driver's file and misses it
        seen.append(path)
        return False

    with pytest.raises(OutputError, match=r"not on a disk the Ray head shares.*shared file sys"):
        driver.check_out_dir_is_shared(tmp_path, seen_on_head=elsewhere)
    assert seen and not Path(seen[0]).exists() and list(tmp_path.iterdir()) == []

    driver.check_out_dir_is_shared(tmp_path, seen_on_head=os.path.exists)  # a shared disk
    assert list(tmp_path.iterdir()) == []
