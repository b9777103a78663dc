"""``landmark serve``: start or join Ray, start the pool and the service, serve HTTP until
SIGTERM or Ctrl-C, then stop every job resumably.

The service binds 127.0.0.1 unless told otherwise; any other address needs a token
(``--token`` or ``LANDMARK_TOKEN``), since whoever reaches the port can make the service's
browsers fetch pages.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from landmark.config.job import BudgetSpec
from landmark.coordinator.preflight import actors_for, check_actors_fit

logger = logging.getLogger("landmark.serve")

DEFAULT_PORT = 8650
DEFAULT_DATA = Path("runs/service")


def serve_command(args: argparse.Namespace) -> int:
    from landmark.coordinator.api import bind_check
    from landmark.coordinator.driver import RunFailedError
    from landmark.coordinator.ray_setup import RayStartError, init_ray

    token = args.token or os.environ.get("LANDMARK_TOKEN") or None
    bind_check(args.host, token)
    pages = args.pages or BudgetSpec().first_pages  # a pool shares fixed pages out
    address = args.address or os.environ.get("RAY_ADDRESS")
    actors = None if args.actors in (None, "auto") else int(args.actors)
    if not address:
        actors = actors or actors_for([os.cpu_count() or 1])
        check_actors_fit(actors, os.cpu_count() or 1, "this machine")
    try:
        init_ray(address, actors or 1)
    except RayStartError as error:
        raise RunFailedError(str(error)) from None
    if actors is None:
        from landmark.coordinator.node_watch import read_alive_nodes

        actors = actors_for([node.cpus for node in read_alive_nodes()])
    data = Path(args.data or DEFAULT_DATA).expanduser().resolve()
    asyncio.run(_serve(args, token, data, actors, pages))
    return 0


async def _serve(
    args: argparse.Namespace, token: str | None, data: Path, actors: int, pages: int
) -> None:
    from aiohttp import web

    from landmark.coordinator.api import build_app
    from landmark.coordinator.pool import Pool
    from landmark.coordinator.service import Service

    budget = BudgetSpec(actors=actors, pages_per_actor=pages, pages_at_start=pages)
    service = Service(data, Pool(actors, budget), pages)
    app = build_app(service, token=token, allow_local_files=args.allow_local_files)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # from here on, a stop is a clean one
        loop.add_signal_handler(signum, stop.set)
    try:
        service.take_back_jobs()  # the API answers for them while the pool starts
        await _listen(runner, args.host, args.port)  # before the pool: a busy port fails fast
        await _start_pool(service, stop)
        if not stop.is_set():
            logger.info(
                "landmark serve: http://%s:%d/ (%d actor(s) x %d pages; jobs in %s)%s",
                args.host, args.port, len(service.pool.members), pages, data,
                "" if token is None else "; a token is required",
            )  # fmt: skip
        await stop.wait()
        logger.info("stopping: the jobs' batches in flight finish; the rest resumes next time")
    finally:
        await service.stop()
        await runner.cleanup()


async def _listen(runner, host: str, port: int) -> None:
    from aiohttp import web

    from landmark.coordinator.driver import RunFailedError

    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        raise RunFailedError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; is another "
            "service running there? Pick another --port"
        ) from None


async def _start_pool(service, stop: asyncio.Event) -> None:
    """Start the pool and take the jobs on disk back; a stop meanwhile ends the wait."""
    from landmark.coordinator.driver import RunFailedError
    from landmark.coordinator.pool import PoolError

    starting = asyncio.ensure_future(service.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        return
    stopping.cancel()
    try:
        starting.result()
    except PoolError as error:
        raise RunFailedError(str(error)) from None
