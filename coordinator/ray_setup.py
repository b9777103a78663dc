"""Starting or joining Ray for a run: local and loopback-only by default, token auth on.

A local run starts its own Ray bound to 127.0.0.1 with the dashboard off. Ray 2.59+ turns
token authentication on for local clusters; nothing here turns it off. ``--address`` (or
``RAY_ADDRESS``) joins an existing cluster instead; inside a Ray job (``ray job submit``)
the job's own runtime environment is kept.

Ray strips ``RAY_JOB_ID`` from a submitted job's entrypoint, so a job is recognised by the
``RAY_JOB_CONFIG_JSON_ENV_VAR`` that Ray's job supervisor sets for it (with the job's
runtime env, and ``RAY_ADDRESS`` set to the cluster's GCS).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from landmark.logs import DEFAULT_LEVEL, LEVEL_ENV

logger = logging.getLogger("landmark")

NAMESPACE = "landmark"
DEFAULT_TOKEN = Path.home() / ".ray" / "auth_token"
LOOPBACK = "127.0.0.1"
JOIN_PROBE_TIMEOUT_S = 5.0  # a head that does not accept a TCP connection in 5 s is not there
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
SUBPACKAGES = ("actors", "benchmarks", "cluster", "config", "coordinator")
NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "results", "*.html.gz", "runs")
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # ray._private.runtime_env.constants


# Ray starts its workers at nice 15 (``RAY_worker_niceness``), and what they start inherits
# it: a BrowserActor's Python and its Playwright driver ran at 15, while Chromium, run as
# root, raises its own browser process to -8 and keeps its renderers at 0 or 5; and the
# MetricsActor, which must act when the node is busiest, ran below everything it watches.
# At 0, ``bench throughput`` at 0 ms in four interleaved pairs: link mode faster in each
# (median 16.4 s against 17.5 s for 400 items), click mode unchanged (6.1 s against 6.0 s).
WORKER_NICENESS = 0
NICENESS_ENV = "RAY_worker_niceness"


class RayStartError(RuntimeError):
    """Ray could not be started or joined; the message names the address and the cause."""


def coordinator_name(job_name: str) -> str:
    """The Coordinator is a named actor, so ``landmark control`` can find a running job."""
    return f"coordinator:{job_name}"


def init_ray(address: str | None, actors: int) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), else start a local Ray on the loopback."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        _join(address)
        return
    # No job runtime env: the local Ray's processes inherit this one's environment, the log
    # level included. With one, Ray gives an actor none of the workers it prestarted, and has
    # its runtime-env agent prepare each new one: an actor took 1.5-2.4 s to start on the
    # 2-core machine against 0.2-1.2 s without.
    os.environ.update(worker_env())
    start_local_ray(num_cpus=max(os.cpu_count() or 1, actors + 1), logging_level="WARNING")


def worker_env() -> dict[str, str]:
    """What every worker of the run inherits from the driver, on every node: the log level
    (so ``-v`` reaches the actors). A local Ray's workers get it through the environment, a
    joined cluster's through the runtime env (:func:`joining_runtime_env`)."""
    return {LEVEL_ENV: os.environ.get(LEVEL_ENV, DEFAULT_LEVEL)}


def start_local_ray(num_cpus: int, **options: Any) -> None:
    """A single-node Ray on the loopback: every socket it listens on is on 127.0.0.1, and
    its token authentication stays on (``ray.init`` turns it on for local clusters). Its
    workers run at the normal priority (see :data:`WORKER_NICENESS`)."""
    import ray

    keep_loopback()
    keep_token_auth()
    system_config = {"worker_niceness": WORKER_NICENESS} | options.pop("_system_config", {})
    ray.init(
        address="local",
        namespace=options.pop("namespace", NAMESPACE),
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
        _system_config=system_config,
        **options,
    )
    with contextlib.suppress(OSError):  # Ray writes it readable by everyone on the machine
        DEFAULT_TOKEN.chmod(0o600)


def keep_token_auth() -> None:
    """Token authentication on, said explicitly (Ray then also skips its notice on how to
    turn it off); a token is generated in ``~/.ray/auth_token`` if there is none."""
    if os.environ.get("RAY_AUTH_MODE", "token") != "token":
        logger.warning(
            "RAY_AUTH_MODE=%s is ignored: a local run keeps Ray's token "
            "authentication on", os.environ["RAY_AUTH_MODE"]
        )  # fmt: skip
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config

    Config.initialize("")  # a Ray already imported reads its settings again, as Ray itself does


def keep_loopback() -> None:
    """Stop Ray from swapping 127.0.0.1 for the machine's outward address.

    Ray replaces a loopback node address with the one it finds "from its perspective" and
    then binds its servers (GCS, raylet, workers, agents) on every interface — unless its
    multi-node support is switched off, which a single-node run does not need (Ray issue
    #59110). The variable reaches child processes; the constant, a Ray already imported.
    """
    os.environ[LOOPBACK_ONLY_ENV] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def probe_address(address: str, timeout_s: float = JOIN_PROBE_TIMEOUT_S) -> None:
    """Fail in seconds when nothing listens at ``host:port`` (or ``ray://host:port``):
    ``ray.init`` would otherwise retry an address that never answers for minutes."""
    if address == "auto":
        return  # Ray finds the address itself, and says when it cannot
    if address.startswith(("http://", "https://")):
        raise RayStartError(
            f"cannot join the Ray cluster at {address!r}: that is a dashboard (Jobs API) "
            "address, for `ray job submit`; give the head's GCS as host:port, "
            "ray://host:10001, or auto"
        )
    target = address.removeprefix("ray://")
    host, colon, port = target.rpartition(":")
    if not colon or not port.isdigit() or not host:
        raise RayStartError(
            f"cannot reach the Ray cluster at {address!r}: not an address; give host:port "
            "(the head's GCS, port 6379 by default), ray://host:10001, or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RayStartError(
            f"cannot reach the Ray cluster at {address!r}: {reason}. Is the head running "
            "there (`ray start --head`, or cluster/local_cluster.sh)?"
        ) from None


def _join(address: str) -> None:
    import ray

    probe_address(address)

    _send_token_if_any()
    options: dict = {"address": address, "namespace": NAMESPACE, "logging_level": "WARNING"}
    if runtime_env := joining_runtime_env():
        options["runtime_env"] = runtime_env
    try:
        context = ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise RayStartError(f"cannot reach the Ray cluster at {address!r}: {error}") from None
    logger.info("joined the Ray cluster at %s (%s)", _joined_address(context, address), _size())


def connect_to_running(address: str) -> None:
    """Connect to the Ray a run is using, to call its named actors (``landmark control``).

    ``auto`` is resolved first (RAY_ADDRESS, else the running cluster Ray finds). A local
    run's Ray listens on the loopback only, and Ray would swap 127.0.0.1 for the machine's
    outward address and wait on it in vain: for a loopback address this process keeps
    the loopback, and token authentication, as the run did."""
    import ray
    from ray._private.services import get_ray_address_from_environment

    resolved = get_ray_address_from_environment(address, None)  # ConnectionError: none
    host = resolved.removeprefix("ray://").rpartition(":")[0]
    if host in {LOOPBACK, "localhost"}:
        keep_loopback()
        keep_token_auth()
    else:
        _send_token_if_any()
    ray.init(address=resolved, namespace=NAMESPACE, logging_level="ERROR")


def submitted_job_runtime_env() -> dict[str, Any] | None:
    """The runtime env of the Ray job this process is the entrypoint of, or None outside one."""
    injected = os.environ.get(JOB_CONFIG_ENV)
    if not injected:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        return json.loads(injected).get("runtime_env") or {}
    return {}


def joining_runtime_env() -> dict[str, Any]:
    """What a joining driver asks for its workers.

    Outside a job: the shipped package and ``worker_env()``. Inside a job (``ray job
    submit``): only the ``worker_env()`` variables the job does not set itself, since Ray
    merges a driver's runtime env into the job's and refuses any key both set; the code
    comes from the job's ``working_dir``/``py_modules``, or what the nodes have installed.
    """
    job_env = submitted_job_runtime_env()
    if job_env is None:
        return {"py_modules": [str(shipped_package())], "env_vars": worker_env()}
    taken = job_env.get("env_vars") or {}
    own = {key: value for key, value in worker_env().items() if key not in taken}
    return {"env_vars": own} if own else {}


def in_submitted_job() -> bool:
    """True in the entrypoint of a ``ray job submit`` job (on the cluster's head, usually)."""
    return submitted_job_runtime_env() is not None


def _joined_address(context: Any, asked: str) -> str:
    """Where ``auto`` (or RAY_ADDRESS) led: said, so a stale cluster is never joined silently."""
    found = getattr(context, "address_info", {}).get("gcs_address") or asked
    return found if found == asked else f"{found}, from {asked!r}"


def _size() -> str:
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    return f"{len(nodes)} node(s), {ray.cluster_resources().get('CPU', 0):g} CPUs"


def _send_token_if_any() -> None:
    """Joining does not turn token auth on by itself: send the token when there is one."""
    if _token_available():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _token_available() -> bool:
    """A Ray auth token this process can send: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or the
    default ``~/.ray/auth_token`` that ``ray get-auth-token --generate`` writes."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return DEFAULT_TOKEN.is_file()


@cache
def shipped_package() -> Path:
    """The ``landmark`` package as one folder, for Ray to ship to the cluster's nodes.

    An installed wheel is one folder already. An editable install maps the repository's
    folders (``actors/`` is ``landmark.actors``), so they are copied into one staging
    folder; Ray uploads a folder once per content hash, so an unchanged tree is not sent
    again. Shipping the package, not the caller's directory, keeps a user's own files
    (and their ``config.py``) off the nodes.
    """
    import importlib

    import landmark

    root = Path(landmark.__file__).resolve().parent
    if all((root / name / "__init__.py").is_file() for name in SUBPACKAGES):
        return root
    stage = Path(tempfile.mkdtemp(prefix="landmark-ship-")) / "landmark"
    shutil.copytree(root, stage, ignore=NOT_SHIPPED)
    for name in SUBPACKAGES:
        module = importlib.import_module(f"landmark.{name}")
        shutil.copytree(Path(module.__file__).resolve().parent, stage / name, ignore=NOT_SHIPPED)
    atexit.register(shutil.rmtree, stage.parent, ignore_errors=True)
    return stage
