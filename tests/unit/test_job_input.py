"""Every input is checked where it enters: a job file, a sources file, an output folder.

A bad input ends with exit 2 and one readable message naming the file, the field path or
line number and the reason — never a traceback, and never silently accepted. The corpus in
``fixtures/bad_jobs`` holds the nasty cases found so far (each file's first line says what
its message must contain); the hypothesis tests look for the ones nobody thought of.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landmark.config.job import JobSpec
from landmark.config.sources import SourcesFileError, normalise_url, read_sources_file
from landmark.coordinator.cli import main
from landmark.coordinator.preflight import BudgetError, OutputError, check_actors_fit, check_output

CORPUS = Path(__file__).parent / "fixtures" / "bad_jobs"
PROBLEM_LINE = re.compile(  # "<field path>: <reason>", or the file's own trouble
    r"^  (\(top level\)|\(file\)|[^\W\d]\w*|\[)[^\n]*?: \S|^  not valid (YAML|JSON)"
)
VALID = {
    "name": "fuzz",
    "sources": {"urls": ["http://127.0.0.1:9/gallery"]},
    "fields": [{"name": "title", "labels": ["Title"]}],
}


def validate(path: Path, capsys) -> tuple[int, str]:
    status = main(["validate", str(path)])
    captured = capsys.readouterr()
    return status, captured.err


def expected_fragment(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    if first.startswith("# expect: "):
        return first.removeprefix("# expect: ")
    return f"not valid {path.suffix.lstrip('.').upper()}"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_every_nasty_job_in_the_corpus_is_refused_with_its_reason(path, capsys, monkeypatch):
    monkeypatch.chdir(path.parent)  # relative sources files resolve next to the job
    status, err = validate(path, capsys)
    assert status == 2, err
    assert expected_fragment(path).lower() in err.lower(), err
    assert "Traceback" not in err
    assert err.startswith(f"landmark: {path}: invalid job file"), err
    assert all(PROBLEM_LINE.match(line) for line in err.splitlines()[1:] if line.strip()), err


def test_a_sources_file_with_every_bad_scheme_names_each_line(tmp_path, capsys):
    bad = [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "chrome://settings",
        "data:text/html,<b>x</b>",
        "about:blank",
        "ftp://example.org/x",
        "not a url",
        "//no-scheme.example/",
        "http://",
    ]
    lines = ["# a comment", "http://127.0.0.1:9/ok", "", *bad]
    (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
    job = dict(VALID, sources={"file": "urls.txt"})
    (tmp_path / "job.json").write_text(json.dumps(job))
    status, err = validate(tmp_path / "job.json", capsys)
    assert status == 2
    for number in range(4, 4 + len(bad)):
        assert f"line {number}:" in err, err
    assert "line 2:" not in err  # the good line is not blamed


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a binary file"),
        (b"http://127.0.0.1:9/a\n\xff\xfe broken\n", "line 2: not UTF-8"),
        (b"# only comments\n\n", "no URL in it"),
    ],
)
def test_a_sources_file_that_is_not_a_list_of_urls_is_refused(tmp_path, content, fragment):
    path = tmp_path / "urls.txt"
    path.write_bytes(content)
    with pytest.raises(SourcesFileError, match=fragment):
        read_sources_file(path)


def test_urls_are_normalised_wherever_they_come_from(tmp_path):
    (tmp_path / "urls.txt").write_text(
        "  HTTP://Example.ORG/Path?Q=1  \nhttp://example.org/Path?Q=1\n"
    )
    job = JobSpec.model_validate(
        dict(VALID, sources={"urls": [" HTTPS://A.Example:8443"], "file": tmp_path / "urls.txt"})
    )
    assert job.source_urls() == ["https://a.example:8443/", "http://example.org/Path?Q=1"]


def test_a_scheme_is_allowed_only_when_the_job_says_so():
    with pytest.raises(ValueError, match="file: is not allowed"):
        normalise_url("file:///tmp/page.html")
    assert normalise_url("file:///tmp/page.html", ["file"]) == "file:///tmp/page.html"


def test_an_output_folder_that_is_a_file_or_under_one_is_refused(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    for out in (blocker, blocker / "under"):
        with pytest.raises(OutputError, match="is a file, not a folder"):
            check_output(out, create=False)
        with pytest.raises(OutputError, match="is a file, not a folder"):
            check_output(out)


def test_an_unwritable_output_folder_is_refused_before_anything_starts(tmp_path):
    unwritable = Path("/sys/landmark-test/out")  # refused even to root
    with pytest.raises(OutputError, match="not writable"):
        check_output(unwritable, create=False)
    with pytest.raises(OutputError, match="not writable"):
        check_output(unwritable)
    (tmp_path / "out" / "results.jsonl").mkdir(parents=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path / "out", ["results.jsonl"])


def test_validate_checks_the_output_folder_without_creating_it(tmp_path, capsys):
    out = tmp_path / "not" / "yet"
    (tmp_path / "job.json").write_text(json.dumps(dict(VALID, output={"dir": str(out)})))
    status, err = validate(tmp_path / "job.json", capsys)
    assert status == 0, err
    assert not (tmp_path / "not").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "job.json"]  # no probe left behind


def test_more_actors_than_the_cpus_can_hold_is_refused_with_the_reason():
    check_actors_fit(8, 2, "this machine")
    with pytest.raises(BudgetError, match=r"more than 4 × the 2 CPUs of this machine \(8\)"):
        check_actors_fit(9, 2, "this machine")


# -- fuzzing -----------------------------------------------------------------------------

NASTY_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            " ",
            "..",
            "../../x",
            "/etc/passwd",
            "\x00",
            "a" * 10_000,
            "file:///etc/passwd",
            "javascript:alert(1)",
            " HTTP://Example.org ",
            "http://[::1",
            "http://a:99999/",
            "5s",
            "-5s",
            "1e308",
            "75%",
            "200%",
            "4GiB",
            "99999999999999999999TiB",
            "([",
            "(a)(b)",
            "click",
            "attr",
            "datetime",
        ]
    ),
    st.text(max_size=30),
)
JSON_LIKE = st.recursive(
    NASTY_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "name", "sources", "urls", "file", "allow_schemes", "containers", "open", "selector",
    "id_from", "limit", "fields", "labels", "relation", "type", "pattern", "label_regex",
    "download", "field", "dir", "max_bytes", "budget", "actors", "pages_per_actor",
    "domain_rate", "memory_shed", "timeouts", "navigation", "container", "lease", "retries",
    "output", "results", "summary", "browser", "viewport", "recycle_rss", "cache", "ttl",
]  # fmt: skip


def _paths(node, prefix=()):
    """Every (path) in a nested job, so a mutation can land anywhere in it."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated_jobs(draw):
    """A valid job with a few of its values replaced, or keys added, at random places."""
    job = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(job))
        where = draw(st.sampled_from(paths))
        parent = job
        for step in where[:-1]:
            parent = parent[step]
        if not where or not isinstance(parent, dict | list):
            continue
        if draw(st.booleans()) or not isinstance(parent, dict):
            parent[where[-1]] = draw(JSON_LIKE)
        else:
            parent[draw(st.sampled_from(KEYS))] = draw(JSON_LIKE)
    return job


FUZZ = settings(  # LANDMARK_FUZZ_EXAMPLES=5000 for a longer hunt
    max_examples=int(os.environ.get("LANDMARK_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _assert_clean_verdict(path: Path, capsys) -> None:
    status, err = validate(path, capsys)
    assert status in (0, 2), err
    if status == 2:
        lines = err.splitlines()
        assert lines[0].startswith("landmark: "), err
        assert all(PROBLEM_LINE.match(line) for line in lines[1:] if line.strip()), err


@FUZZ
@given(job=mutated_jobs(), as_json=st.booleans())
def test_any_mutated_job_validates_or_fails_with_a_path(job, as_json, tmp_path, capsys):
    path = tmp_path / ("job.json" if as_json else "job.yaml")
    text = json.dumps(job) if as_json else yaml.safe_dump(job, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    _assert_clean_verdict(path, capsys)


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_job_file_fail_cleanly(data, tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_bytes(data)
    _assert_clean_verdict(path, capsys)


@FUZZ
@given(lines=st.lists(st.text(max_size=60) | NASTY_SCALARS.map(str), max_size=8))
def test_any_sources_file_gives_urls_or_numbered_lines(lines, tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        urls = read_sources_file(path)
    except SourcesFileError as error:
        assert str(error).startswith(f"{path}: ")
    else:
        assert urls and all(u.split(":", 1)[0] in ("http", "https") for u in urls)


def test_actors_auto_is_one_per_two_cpus_and_an_explicit_count_is_kept():
    from importlib import resources

    from landmark.config.loading import JobFileError, load_job
    from landmark.coordinator.preflight import actors_for, resolve_actors

    example = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
    assert [actors_for([cpus]) for cpus in (0, 1, 2, 3, 8, 64.5)] == [1, 1, 1, 1, 4, 32]
    assert actors_for([1, 1]) == 2  # per node: each node's browser runs there
    assert actors_for([0, 8, 8, 3]) == 9  # a head with no CPU takes none
    auto = load_job(example, {"budget.actors": "auto"})
    assert auto.budget.actors is None  # the default, and the example job's setting
    assert load_job(example).budget.actors is None
    assert resolve_actors(auto, [8]).budget.actors == 4
    assert resolve_actors(auto, [2]).budget.actors == 1
    fixed = load_job(example, {"budget.actors": 3})
    assert resolve_actors(fixed, [64]) is fixed
    with pytest.raises(JobFileError, match=r"budget\.actors: Input should be a valid integer"):
        load_job(example, {"budget.actors": "many"})
