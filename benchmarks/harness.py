"""``landmark bench``: run research scenarios against the Gallery site, write JSON and RESULTS.md.

The CLI (coordinator/cli.py) calls ``add_bench_arguments`` to define the
subcommand and ``run_bench_command`` to run it; ``python -m landmark.benchmarks`` does
the same. Every scenario writes ``benchmarks/results/<scenario>-<time>.json``
(machine, versions, command, parameters, every run); ``landmark bench
report`` rebuilds ``benchmarks/RESULTS.md`` from the newest file of each
scenario, so tables are never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from landmark.benchmarks.report import chaos_table, write_report
from landmark.benchmarks.scenarios import SCENARIOS, Bench

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
CHOICES = [*SCENARIOS, "all", "report", "chaos", "hostile", "accuracy", "profile", "service"]
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "scenario",
        choices=CHOICES,
        help="a scenario, 'all' of them in turn, or 'report' (rebuild RESULTS.md)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and fewer repeats ('all --quick' takes minutes)",
    )
    parser.add_argument("--repeats", type=_positive, help="runs per figure (default 3; quick 1-2)")
    parser.add_argument("--items", type=_positive, help="gallery items (overrides the scenario)")
    parser.add_argument(
        "--latencies",
        type=_floats,
        metavar="MS,MS",
        help="site latencies to test, e.g. 0,100 (overrides the scenario)",
    )
    parser.add_argument("--modes", type=_modes, metavar="click,link", help="open modes to test")
    parser.add_argument(
        "--contenders",
        type=_names,
        metavar="NAME,...",
        help="keep contenders whose name starts with one of these, e.g. "
        "landmark-auto,bare,baseline-0.1,crawlee",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where JSON results go (default: benchmarks/results)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=RESULTS_MD,
        dest="report_path",
        help="the Markdown report to rebuild (default: benchmarks/RESULTS.md)",
    )
    parser.add_argument("--no-report", action="store_true", help="write JSON only")
    chaos = parser.add_argument_group("chaos (kill trials; see benchmarks/chaos.py)")
    chaos.add_argument("--trials", type=_positive, default=7, help="kill trials (default 7)")
    chaos.add_argument("--seed", type=int, help="the first trial's seed (default: random)")
    chaos.add_argument(
        "--targets", type=_names, metavar="TARGET,...", help="what to kill (default: each in turn)"
    )
    from landmark.benchmarks.hostile import add_hostile_arguments
    from landmark.benchmarks.profile import add_profile_arguments

    add_hostile_arguments(parser)
    add_profile_arguments(parser)
    service = parser.add_argument_group(
        "service (many small jobs on a warm service; see benchmarks/service_bench.py)"
    )
    service.add_argument(
        "--jobs", type=_positive, help="jobs per mode (default 50; quick 5); --items sizes each"
    )
    service.add_argument(
        "--api-items", type=_positive, help="the API timing's job (default 400; quick 100)"
    )
    service.add_argument(
        "--api-calls", type=_positive, help="timed calls per endpoint (default 200; quick 50)"
    )
    service.add_argument(
        "--actors", metavar="N|auto", help="the service's and each run's actors (default auto)"
    )
    accuracy = parser.add_argument_group("accuracy (real pages; see benchmarks/accuracy/)")
    accuracy.add_argument("--sites", type=_names, metavar="SITE,...", help="these sites only")
    accuracy.add_argument(
        "--pages", type=_positive, help="the first N pages of each site (default: all)"
    )
    return parser


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the chosen scenario(s); 1 if any run lost or duplicated a container or failed."""
    if args.scenario == "report":
        return _report(args)
    if args.scenario == "chaos":
        return _chaos(args)
    if args.scenario == "hostile":
        return _hostile(args)
    if args.scenario == "accuracy":
        return _accuracy(args)
    if args.scenario == "service":
        return _service(args)
    if args.scenario == "profile":
        from landmark.benchmarks.profile import run_profile_command

        return run_profile_command(args)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    bench = Bench(
        quick=args.quick,
        repeats=args.repeats,
        items=args.items,
        latencies=args.latencies,
        modes=args.modes,
        only=args.contenders,
    )
    context = {"command": _command_line(), "machine": machine(), "versions": versions()}
    began = time.monotonic()
    written: dict[str, Path] = {}
    try:
        for name in names:
            try:
                written[name] = run_scenario(bench, name, context, args.results_dir)
            except Exception as error:  # one broken scenario must not stop 'all'
                bench.failures.append(f"{name}: {type(error).__name__}: {error}")
                bench.say(f"{name} failed: {error}")
                continue
            bench.say(f"{name}: wrote {written[name]}")
        if args.scenario == "all":
            _profile_after(bench, args, context, written.get("throughput"))
    except KeyboardInterrupt:
        bench.say("interrupted; results so far are in " + str(args.results_dir))
        return EXIT_FAILED
    finally:
        bench.close()
    bench.say(f"done in {time.monotonic() - began:.0f}s; scratch files in {bench.scratch}")
    if not args.no_report:
        _report(args)
    for failure in bench.failures:
        print(f"landmark bench: FAILED {failure}", file=sys.stderr)
    return EXIT_FAILED if bench.failures else EXIT_OK


def run_scenario(bench: Bench, name: str, context: dict[str, Any], results_dir: Path) -> Path:
    """Run one scenario and write its JSON file; the path written."""
    bench.say(f"scenario {name}{' (quick)' if bench.quick else ''}")
    started = datetime.now(UTC)
    began = time.monotonic()
    failures_before = len(bench.failures)
    try:
        section = SCENARIOS[name](bench)
    finally:
        bench.close()  # a fresh worker per scenario: memory figures start clean
    document = {
        "scenario": name,
        "quick": bench.quick,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        **context,
        **section,
        "failures": bench.failures[failures_before:],
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}-{started.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    return path


def _profile_after(
    bench: Bench, args: argparse.Namespace, context: dict[str, Any], throughput: Path | None
) -> None:
    """``bench all``'s last step: the cost per container, landmark beside bare, saved with
    the scenarios' context. The coordinator's figures come from the throughput scenario just
    run (``--summary`` wins if given); a failure is recorded and stops nothing."""
    from landmark.benchmarks.profile import (
        Options,
        run_profile,
        save_profile,
        throughput_coordinator,
    )

    bench.say(f"profile{' (quick)' if bench.quick else ''}")
    began = time.monotonic()
    try:
        options = Options.from_args(args, default_out=False)
        coordinator = None
        if throughput is not None and args.summary is None:
            ran = json.loads(throughput.read_text(encoding="utf-8"))
            coordinator = throughput_coordinator({**ran, "_file": throughput.name}, options)
        document = run_profile(options, coordinator)
        timed = {**context, "duration_s": round(time.monotonic() - began, 1)}
        paths = save_profile(document, options, args.results_dir, timed)
    except Exception as error:  # like a scenario's: recorded, and the report still comes
        bench.failures.append(f"profile: {type(error).__name__}: {error}")
        bench.say(f"profile failed: {error}")
        return
    bench.failures += [f"profile: {problem}" for problem in document["failures"]]
    bench.say(f"profile: wrote {', '.join(map(str, paths))}")


def machine() -> dict[str, Any]:
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("landmark", "playwright", "ray", "crawlee"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    try:
        from landmark.actors.browser import find_browser
        from landmark.config.settings import Settings

        browser = find_browser(Settings.from_env().browser)
        found["chromium"] = f"{browser.version()} ({browser.path})"
    except Exception as error:
        found["chromium"] = f"not found: {str(error).splitlines()[0]}"
    return found


def _chaos(args: argparse.Namespace) -> int:
    """Kill trials; JSON in the results folder and the table on stdout. The report is not
    rebuilt here: it is built from every scenario's newest file (``landmark bench report``)."""
    from landmark.benchmarks.chaos import TARGETS, as_documents, run_chaos, table

    targets = tuple(args.targets or TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        print(f"landmark bench: unknown chaos targets {unknown}; know {TARGETS}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"landmark bench chaos: {args.trials} trials, seed {seed}", flush=True)
    started = datetime.now(UTC)
    began = time.monotonic()
    trials = run_chaos(args.trials, seed, targets)
    rows = table(trials)
    document = {
        "scenario": "chaos",
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "command": _command_line(),
        "machine": machine(),
        "versions": versions(),
        "seed": seed,
        "rows": rows,
        "runs": as_documents(trials),
        "failures": [
            f"{t.target} (replay: landmark bench chaos --trials 1 --seed {t.seed} "
            f"--targets {t.target})"
            for t in trials
            if not t.passed
        ],
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"chaos-{started.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    print("\n".join(chaos_table(rows)))
    print(f"landmark bench chaos: wrote {path}", file=sys.stderr)
    for failure in document["failures"]:
        print(f"landmark bench chaos: FAILED {failure}", file=sys.stderr)
    return EXIT_FAILED if document["failures"] else EXIT_OK


def _hostile(args: argparse.Namespace) -> int:
    """Every hostile page as a real job; the table on stdout, JSON in the results folder.
    1 if any row is unbounded or left a file behind."""
    from landmark.benchmarks.hostile import pick, run_hostile, table, write_document

    try:
        names = pick(args.only)
    except ValueError as error:
        print(f"landmark bench: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"landmark bench hostile: {len(names)} scenarios, bound {args.bound:g}s", flush=True)
    started = datetime.now(UTC)
    began = time.monotonic()
    rows = run_hostile(names, args.bound, say=lambda line: print(line, flush=True))
    path = write_document(rows, args.results_dir, started, run_context(began))
    print("\n".join(table(rows)))
    print(f"landmark bench hostile: wrote {path}", file=sys.stderr)
    failed = [row for row in rows if not row.passed]
    for row in failed:
        print(f"landmark bench hostile: FAILED {row.scenario}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _accuracy(args: argparse.Namespace) -> int:
    """Each site's job over its real pages; the table on stdout, JSON in the results folder.
    1 if a site's run failed (a low score is a figure, not a failure)."""
    from landmark.benchmarks.accuracy.suite import (
        find_sites,
        pick,
        run_suite,
        table,
        write_document,
    )

    try:
        sites = pick(find_sites(), args.sites)
    except ValueError as error:
        print(f"landmark bench: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    pages = sum(min(len(s.truth), args.pages or len(s.truth)) for s in sites)
    print(f"landmark bench accuracy: {len(sites)} sites, {pages} pages", flush=True)
    started = datetime.now(UTC)
    began = time.monotonic()
    results = run_suite(sites, args.pages, say=lambda line: print(line, flush=True))
    params = {"sites": [s.name for s in sites], "pages": args.pages}
    context = {**run_context(began), "params": params}
    path = write_document(results, args.results_dir, started, context)
    print("\n".join(table(results)))
    print(f"landmark bench accuracy: wrote {path}", file=sys.stderr)
    failed = [r for r in results if r.problem]
    for result in failed:
        print(f"landmark bench accuracy: FAILED {result.site}: {result.problem}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _service(args: argparse.Namespace) -> int:
    """Many small jobs on a warm ``landmark serve`` against as many ``landmark run``s, and the
    API's latency under a running job; the table on stdout, JSON in the results folder.
    1 if a job's records are not the site's truth or a phase broke."""
    from landmark.benchmarks.report import save_result
    from landmark.benchmarks.service_bench import Params, run_service_bench, table

    if args.actors not in (None, "auto") and not args.actors.isdigit():
        print(f"landmark bench: --actors is a number or auto, not {args.actors!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    params = Params.from_args(args)
    print(
        f"landmark bench service: {params.jobs} jobs x {params.items} items, service then "
        "separate runs",
        flush=True,
    )
    started = datetime.now(UTC)
    began = time.monotonic()
    document = run_service_bench(params, say=lambda line: print(line, flush=True))
    path = save_result("service", document, args.results_dir, started, run_context(began))
    print("\n".join(table(document)))
    print(f"landmark bench service: wrote {path}", file=sys.stderr)
    for failure in document["failures"]:
        print(f"landmark bench service: FAILED {failure}", file=sys.stderr)
    return EXIT_FAILED if document["failures"] else EXIT_OK


def run_context(began: float) -> dict[str, Any]:
    """What every results document says about its run: how long, how, and where."""
    return {
        "duration_s": round(time.monotonic() - began, 1),
        "command": _command_line(),
        "machine": machine(),
        "versions": versions(),
    }


def _report(args: argparse.Namespace) -> int:
    path = write_report(args.results_dir, args.report_path)
    if path is None:
        print(
            f"landmark bench: no results in {args.results_dir}; run a scenario first",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(f"landmark bench: wrote {path}", file=sys.stderr)
    return EXIT_OK


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command_line() -> str:
    program = Path(sys.argv[0]).name
    if program in {"__main__.py", "-m"}:
        program = "python -m landmark.benchmarks"
    return " ".join([program, *map(shlex.quote, sys.argv[1:])])


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers such as 0,100, got {text!r}") from None
    if not values or any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def _modes(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    wrong = [mode for mode in modes if mode not in {"click", "link"}]
    if not modes or wrong:
        raise argparse.ArgumentTypeError(f"modes are click and link, got {text!r}")
    return modes


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one contender name")
    return names
