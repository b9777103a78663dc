"""The conventions a user of other crawlers expects from the command: --version, log levels,
a log file, colour only on a terminal, NO_COLOR, --set and LANDMARK_* settings."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import landmark
from landmark.config.settings import Settings, SettingsError, parse_set_options
from landmark.coordinator.cli import EXIT_BAD_INPUT, main
from landmark.logs import LoggingSetupError, configure_logging, level_from

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "gallery.yaml"
ESC = "\033["


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    """configure_logging changes the process's logging and environment: undo it."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("LANDMARK_LOG_LEVEL", raising=False)
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")
    root = logging.getLogger("landmark")
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_version_names_landmark_and_its_runtime(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"landmark {landmark.__version__} (Python ")
    assert "Ray " in out and "Playwright " in out


def test_version_of_the_installed_distribution():
    from importlib.metadata import version

    assert landmark.__version__ == version("landmark")


@pytest.mark.parametrize(
    ("verbose", "quiet", "explicit", "env", "expected"),
    [
        (0, 0, None, None, logging.INFO),
        (1, 0, None, None, logging.DEBUG),
        (0, 1, None, None, logging.WARNING),
        (0, 2, None, None, logging.ERROR),
        (0, 5, None, None, logging.ERROR),
        (0, 0, "warn", None, logging.WARNING),
        (0, 0, None, "debug", logging.DEBUG),
        (0, 0, "error", "debug", logging.ERROR),  # the option wins over the variable
        (1, 0, "warning", None, logging.INFO),
    ],
)
def test_log_level_from_options_and_environment(
    monkeypatch, verbose, quiet, explicit, env, expected
):
    if env:
        monkeypatch.setenv("LANDMARK_LOG_LEVEL", env)
    assert level_from(verbose, quiet, explicit) == expected


def test_unknown_log_level_is_a_usage_error(monkeypatch, capsys):
    with pytest.raises(LoggingSetupError, match="debug, info, warning, error"):
        level_from(0, 0, "loud")
    monkeypatch.setenv("LANDMARK_LOG_LEVEL", "chatty")
    assert main(["validate", str(EXAMPLE)]) == EXIT_BAD_INPUT
    assert "LANDMARK_LOG_LEVEL: unknown log level 'chatty'" in capsys.readouterr().err


def test_quiet_hides_information_and_keeps_warnings():
    stream = io.StringIO()
    configure_logging(level_from(0, 1, None), stream=stream)
    logging.getLogger("landmark.coordinator").info("resuming")
    logging.getLogger("landmark.coordinator").warning("store away")
    assert stream.getvalue() == "landmark: warning: store away\n"


def test_colour_on_a_terminal_only():
    terminal = Terminal()
    configure_logging(logging.INFO, stream=terminal)
    logging.getLogger("landmark").warning("careful")
    assert ESC in terminal.getvalue()

    piped = io.StringIO()
    configure_logging(logging.INFO, stream=piped)
    logging.getLogger("landmark").warning("careful")
    assert ESC not in piped.getvalue() and "landmark: warning: careful" in piped.getvalue()


def test_no_color_is_honoured_on_a_terminal(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    configure_logging(logging.INFO, stream=terminal)
    logging.getLogger("landmark").error("broken")
    assert terminal.getvalue() == "landmark: error: broken\n"
    # Ray's worker-line prefixes lose their colour too
    import os

    assert os.environ["RAY_COLOR_PREFIX"] == "0"


def test_log_file_gets_timestamps_and_the_level(tmp_path):
    log = tmp_path / "run.log"
    configure_logging(logging.DEBUG, log_file=log, stream=io.StringIO())
    logging.getLogger("landmark.coordinator").debug("leased 4 containers")
    for handler in logging.getLogger("landmark").handlers:
        handler.flush()
    line = log.read_text().strip()
    assert line.endswith("DEBUG   landmark.coordinator: leased 4 containers")
    assert line[:4].isdigit()  # starts with the date


def test_a_fatal_error_is_in_the_log_file_too(tmp_path, capsys):
    log = tmp_path / "run.log"
    status = main(["validate", str(EXAMPLE), "--set", "budget.actors=0", "--log-file", str(log)])
    assert status == EXIT_BAD_INPUT
    assert capsys.readouterr().err.count("budget.actors") == 1  # said once on the console
    for handler in logging.getLogger("landmark").handlers:
        handler.flush()
    assert "ERROR   landmark.cli:" in log.read_text() and "budget.actors" in log.read_text()


def test_counts_before_and_after_the_command_add_up(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(
        "landmark.coordinator.cli.configure_logging", lambda level, log_file: seen.append(level)
    )
    main(["-q", "validate", str(EXAMPLE), "-q"])
    main(["-v", "validate", str(EXAMPLE), "-q"])
    assert seen == [logging.ERROR, logging.INFO]


def test_log_file_in_a_missing_folder_is_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "run.log"
    assert main(["validate", str(EXAMPLE), "--log-file", str(missing)]) == EXIT_BAD_INPUT
    assert "--log-file" in capsys.readouterr().err


def test_logging_options_before_and_after_the_command(capsys):
    assert main(["-q", "validate", str(EXAMPLE)]) == 0
    assert main(["validate", str(EXAMPLE), "-v", "--log-level", "info"]) == 0
    assert capsys.readouterr().out.count("valid job") == 2


def test_set_overrides_a_job_setting_validated_like_the_file(capsys):
    assert main(["validate", str(EXAMPLE), "--set", "budget.actors=3"]) == 0
    assert main(["validate", str(EXAMPLE), "--set", "budget.actors=many"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "budget.actors: Input should be a valid integer" in err and "'many'" in err


def test_set_with_a_bad_path(capsys):
    assert main(["validate", str(EXAMPLE), "--set", "budget.actorz=3"]) == EXIT_BAD_INPUT
    assert "budget.actorz: unknown key" in capsys.readouterr().err
    assert main(["validate", str(EXAMPLE), "--set", "name.first=x"]) == EXIT_BAD_INPUT
    assert "name: not a mapping or list" in capsys.readouterr().err
    assert main(["validate", str(EXAMPLE), "--set", "fields.99.css=.x"]) == EXIT_BAD_INPUT
    assert "no item '99'" in capsys.readouterr().err
    assert main(["validate", str(EXAMPLE), "--set", "budget"]) == EXIT_BAD_INPUT
    assert "write it as path.to.key=value" in capsys.readouterr().err


def test_set_values_are_read_as_yaml():
    parsed = parse_set_options(["a.b=4", "c=false", "d=[x, y]", "e=.price", "f="])
    assert parsed == {"a.b": 4, "c": False, "d": ["x", "y"], "e": ".price", "f": ""}
    job = landmark.load_job(EXAMPLE, parse_set_options(["fields.0.css=.caption"]))
    assert job.fields[0].css == ".caption"


def test_landmark_environment_settings_override_the_job_file():
    env = {"LANDMARK_ACTORS": "3", "LANDMARK_PAGES_PER_ACTOR": "2", "LANDMARK_OUT": "/tmp/x"}
    settings = Settings.from_env(env)
    assert settings.job_overrides() == {
        "budget.actors": 3,
        "budget.pages_per_actor": 2,
        "output.dir": "/tmp/x",
    }
    machine = Settings.from_env({"LANDMARK_HEADLESS": "0", "LANDMARK_BROWSER": "/opt/chrome"})
    assert machine.job_overrides() == {
        "browser.headless": False,
        "browser.executable": "/opt/chrome",
    }
    assert Settings.from_env({}).job_overrides() == {}  # a default is not an override
    with pytest.raises(SettingsError, match="LANDMARK_ACTORS"):
        Settings.from_env({"LANDMARK_ACTORS": "lots"})


def test_run_reads_landmark_settings_before_starting_anything(tmp_path, monkeypatch, capsys):
    """A bad LANDMARK_* value stops `run` with exit 2 and the variable's name."""
    monkeypatch.setenv("LANDMARK_PAGES_PER_ACTOR", "0")
    assert main(["run", str(EXAMPLE), "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "LANDMARK_PAGES_PER_ACTOR" in capsys.readouterr().err
    assert main(["validate", str(EXAMPLE)]) == EXIT_BAD_INPUT  # validate reads them too
    assert "LANDMARK_PAGES_PER_ACTOR" in capsys.readouterr().err
    monkeypatch.setenv("LANDMARK_PAGES_PER_ACTOR", "65")
    monkeypatch.setenv("LANDMARK_ACTORS", "2")
    assert main(["validate", str(EXAMPLE)]) == EXIT_BAD_INPUT


def test_redirected_output_has_no_colour_codes(tmp_path):
    """A real process with its output in a pipe: errors and help carry no ANSI codes."""
    bad = tmp_path / "job.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "sources": {"urls": ["http://127.0.0.1:9/"]}}))
    command = [sys.executable, "-m", "landmark.coordinator.cli", "validate", str(bad)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_INPUT
    assert "fields: required but missing" in result.stderr
    assert ESC not in result.stdout + result.stderr
