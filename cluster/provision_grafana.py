"""Put landmark's dashboard into a Grafana: a Prometheus data source, then the dashboard.

    python -m landmark.cluster.provision_grafana --url http://127.0.0.1:3000 --token TOKEN \\
        --prometheus http://127.0.0.1:9090

Both steps are idempotent (the data source is found by name and updated, the
dashboard is uploaded with overwrite), so running it again after editing
``grafana/landmark-dashboard.json`` or moving Prometheus is the way to update.
The dashboard selects its data source through a variable; we point that
variable's default at the data source we just made, so it opens with data.

Exit status: 0 done, 1 Grafana unreachable or refused, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DASHBOARD_FILE = Path(__file__).resolve().parent / "grafana" / "landmark-dashboard.json"
DATASOURCE_NAME = "landmark-prometheus"
DATASOURCE_VARIABLE = "datasource"
DEFAULT_TIMEOUT = timedelta(seconds=5)
# Ray's generated Prometheus config scrapes every 10 s; Grafana's $__rate_interval needs to know.
SCRAPE_INTERVAL = "10s"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

Credential = str | tuple[str, str] | None


class ProvisionError(Exception):
    """Grafana could not be reached or refused a step; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Provisioned:
    datasource_uid: str
    datasource_created: bool
    dashboard_uid: str
    dashboard_url: str


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ProvisionError(f"cannot read the dashboard {path}: {error}") from None


def datasource_payload(name: str, prometheus_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {"httpMethod": "POST", "timeInterval": SCRAPE_INTERVAL},
    }


def dashboard_payload(
    dashboard: dict[str, Any], datasource_uid: str, datasource_name: str, folder_uid: str | None
) -> dict[str, Any]:
    """The upload body: the dashboard with its data source variable defaulting to ours."""
    board = copy.deepcopy(dashboard)
    board.pop("id", None)  # Grafana matches by uid; a stale numeric id would be refused
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("name") == DATASOURCE_VARIABLE:
            variable["current"] = {"text": datasource_name, "value": datasource_uid}
    payload: dict[str, Any] = {
        "dashboard": board,
        "overwrite": True,
        "message": "provisioned by cluster/provision_grafana.py",
    }
    if folder_uid:
        payload["folderUid"] = folder_uid
    return payload


def ensure_datasource(api: Any, name: str, prometheus_url: str) -> tuple[str, bool]:
    """Create the data source, or update the one of that name; returns (uid, created)."""
    from grafana_client.client import GrafanaClientError

    payload = datasource_payload(name, prometheus_url)
    try:
        existing = api.datasource.get_datasource_by_name(name)
    except GrafanaClientError as error:
        if error.status_code != 404:
            raise
        created = api.datasource.create_datasource(payload)
        return str(created["datasource"]["uid"]), True
    uid = str(existing["uid"])
    api.datasource.update_datasource_by_uid(uid, {**payload, "uid": uid})
    return uid, False


def provision(
    url: str,
    credential: Credential,
    prometheus_url: str,
    *,
    datasource_name: str = DATASOURCE_NAME,
    folder_uid: str | None = None,
    dashboard_path: Path = DASHBOARD_FILE,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> Provisioned:
    """Create/update the data source and upload the dashboard; ProvisionError on any failure."""
    from grafana_client import GrafanaApi

    dashboard = load_dashboard(dashboard_path)
    api = GrafanaApi.from_url(url, credential=credential, timeout=timeout.total_seconds())
    with _explained(url, "reach Grafana"):
        api.health.check()
    with _explained(url, f"create or update the data source {datasource_name!r}"):
        uid, created = ensure_datasource(api, datasource_name, prometheus_url)
    with _explained(url, "upload the dashboard"):
        answer = api.dashboard.update_dashboard(
            dashboard_payload(dashboard, uid, datasource_name, folder_uid)
        )
    return Provisioned(
        datasource_uid=uid,
        datasource_created=created,
        dashboard_uid=str(answer.get("uid", dashboard.get("uid", ""))),
        dashboard_url=url.rstrip("/") + str(answer.get("url", "")),
    )


@contextlib.contextmanager
def _explained(url: str, step: str) -> Iterator[None]:
    """Turns what grafana-client and niquests raise into one ProvisionError sentence."""
    from grafana_client.client import GrafanaException, GrafanaUnauthorizedError
    from niquests.exceptions import ConnectionError, RequestException

    try:
        yield
    except ConnectionError:
        reason = f"cannot connect to {url} (is Grafana running there?)"
    except GrafanaUnauthorizedError:
        reason = "Grafana refused the credentials (check --token or --user/--password)"
    except GrafanaException as error:
        reason = f"Grafana answered: {error.message}"
    except RequestException as error:
        reason = f"request to {url} failed: {type(error).__name__}: {error}"
    else:
        return
    raise ProvisionError(f"could not {step}: {reason}")


def _http_url(text: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL, got {text!r}")
    return text.rstrip("/")


def _seconds(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return timedelta(seconds=value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m landmark.cluster.provision_grafana",
        description="Create/update a Prometheus data source in Grafana and upload landmark's "
        "dashboard (cluster/grafana/landmark-dashboard.json).",
    )
    parser.add_argument(
        "--url", type=_http_url, required=True, help="Grafana, e.g. http://127.0.0.1:3000"
    )
    parser.add_argument(
        "--prometheus",
        type=_http_url,
        required=True,
        help="Prometheus as Grafana's server reaches it, e.g. http://127.0.0.1:9090",
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="a service account token (env: GRAFANA_TOKEN)")
    auth.add_argument("--user", help="a Grafana user, with --password (env: GRAFANA_USER)")
    parser.add_argument("--password", help="the user's password (env: GRAFANA_PASSWORD)")
    parser.add_argument("--datasource-name", default=DATASOURCE_NAME, help="data source name")
    parser.add_argument("--folder-uid", help="a Grafana folder to put the dashboard in")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD_FILE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, help="seconds per request (5)"
    )
    return parser


def credential_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Credential:
    """Token, or (user, password), from the options first and the environment second."""
    env = os.environ if environ is None else environ
    token = args.token or (None if args.user else env.get("GRAFANA_TOKEN"))
    if token:
        return token
    user = args.user or env.get("GRAFANA_USER")
    password = args.password or env.get("GRAFANA_PASSWORD")
    if user and not password:
        raise ProvisionError("--user needs --password (or GRAFANA_PASSWORD)")
    if password and not user:
        raise ProvisionError("--password needs --user (or GRAFANA_USER)")
    return (user, password) if user and password else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        credential = credential_from(args)
    except ProvisionError as error:
        print(f"provision_grafana: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        done = provision(
            args.url,
            credential,
            args.prometheus,
            datasource_name=args.datasource_name,
            folder_uid=args.folder_uid,
            dashboard_path=args.dashboard,
            timeout=args.timeout,
        )
    except ProvisionError as error:
        print(f"provision_grafana: {error}", file=sys.stderr)
        return EXIT_FAILED
    verb = "created" if done.datasource_created else "updated"
    print(f"data source {args.datasource_name!r} {verb} (uid {done.datasource_uid})")
    print(f"dashboard {done.dashboard_uid!r}: {done.dashboard_url}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
