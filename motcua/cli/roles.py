"""Running the product: ``demo``, ``up`` and the one-role commands ``engine``, ``project``,
``alert`` and ``serve``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from motcua.cli.common import (
    PORT,
    Command,
    Subparsers,
    add_command,
    int_from,
    load_settings,
    positive_number,
    setup_logs,
)

if TYPE_CHECKING:
    from kernel.settings import Settings

# Each role command, the roles it runs and its help; in the order of `motcua --help`.
ROLE_COMMANDS = (
    ("up", {"engine", "project", "alert", "serve"}, "Run engine, projections, alerting and API "
     "against the configured broker and database (the engine in a child process unless "
     "MOTCUA_ENGINE_PROCESS=0)."),
    ("engine", {"engine"}, "Run the engine role: motcua.actions → event store → "
     "motcua.events / motcua.rejected."),
    ("project", {"project"}, "Run the projection role: motcua.events → views."),
    ("alert", {"alert"}, "Run the alerting role: motcua.events → alert decisions → webhook "
     "and e-mail deliveries."),
    ("serve", {"serve"}, "Serve the HTTP API and the scoreboard from the views."),
)


def register(sub: Subparsers) -> None:
    """Add ``demo``, ``up``, ``engine``, ``project``, ``alert`` and ``serve``."""
    sp = add_command(sub, "demo", "Run the whole product on the embedded default, fed by a "
                     "simulated province, and serve the scoreboard.", cmd_demo)
    _http_args(sp)
    sp.add_argument("--agencies", type=int_from(1, 10_000), default=20,
                    help="simulated units (default 20)")
    sp.add_argument("--dossiers", type=int_from(0, 10_000_000), default=15000,
                    help="simulated dossiers (default 15000)")
    sp.add_argument("--seed", type=int_from(0), default=766, help="simulation seed "
                    "(default 766)")
    sp.add_argument("--rate", type=positive_number, default=40.0, help="live actions per "
                    "second after the backlog (default 40)")
    sp.add_argument("--no-browser-hint", action="store_true", help=argparse.SUPPRESS)
    sp.add_argument("--verbose", action="store_true", help="show the JSON logs")
    sp.set_defaults(long_running=True)  # (ends without the interpreter's teardown: main)
    for name, roles, text in ROLE_COMMANDS:
        sp = add_command(sub, name, text, _role_command(frozenset(roles)))
        sp.set_defaults(long_running=True)
        if "serve" in roles:
            _http_args(sp)
        if name == "engine":  # the child engine of `motcua up` (motcua.engine_process)
            sp.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
            sp.set_defaults(fn=cmd_child)


def _http_args(sp: Any) -> None:
    sp.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1)")
    sp.add_argument("--port", type=PORT, default=None, help="HTTP port (default 8766)")


def _role_command(roles: frozenset[str]) -> Command:
    return lambda a: cmd_roles(a, roles)


ENGINE_ROLES = frozenset({"engine"})


def cmd_child(args: argparse.Namespace) -> int:
    """``motcua engine``, and ``motcua engine --child``: the child engine of ``motcua up``,
    which ``motcua.cli.main`` also runs without its parser (the same function)."""
    return cmd_roles(args, ENGINE_ROLES)


def _engine_in_child(roles: frozenset[str], settings: Settings) -> bool:
    """Whether the engine of these roles runs in a child process of this one (``motcua up``,
    ``demo``: more roles than the engine, and ``MOTCUA_ENGINE_PROCESS`` on)."""
    return "engine" in roles and len(roles) > 1 and settings.engine_process


def cmd_roles(args: argparse.Namespace, roles: frozenset[str]) -> int:
    """Run ``roles`` of the pipeline (serving HTTP if one is ``serve``) until a signal."""
    from motcua import engine_spawn

    child = bool(getattr(args, "child", False))
    # A child engine's settings come from its parent, once it is told to run (_run_roles).
    settings = None if child else load_settings()
    # Its start-up beside ours (motcua.engine_spawn).
    with engine_spawn.early(settings is not None and _engine_in_child(roles, settings)):
        return _run_roles(args, roles, settings)


def _run_roles(args: argparse.Namespace, roles: frozenset[str],
               settings: Settings | None) -> int:
    from motcua import engine_spawn
    from motcua.pipeline import Pipeline
    from motcua.serving import api, run_until_signal, serve_http, stop_http

    child = settings is None
    # This process runs the engine (it is the child, or the engine is not in one):
    if "engine" in roles and (settings is None or not _engine_in_child(roles, settings)):
        from kernel.calendar import warm

        warm()  # beside the wait for the parent's word, or for the first poll
    if settings is None:
        if not engine_spawn.await_go():
            return 0  # the parent ended before it needed this engine
        settings = load_settings()
    setup_logs(settings)
    # The one-role commands join consumer groups, so several processes share the partitions;
    # `up`'s child engine reads them all, as `up` would.
    group = len(roles) == 1 and roles != frozenset({"serve"}) and not child
    p = Pipeline(settings, roles=roles, group=group,
                 engine_child=_engine_in_child(roles, settings),
                 child=child).start()
    server = None
    try:
        if "serve" in roles:
            host = args.host or settings.http_host
            port = args.port or settings.http_port
            app = api(p, settings, live="project" in roles)
            server, _ = serve_http(app, host, port)
            print(f"motcua API on http://{host}:{port}/", file=sys.stderr)
        def stop() -> None:
            if server is not None:
                stop_http(server)
            p.stop()

        run_until_signal(stop, _parent_alive() if child else lambda: True)
    except BaseException:
        p.stop()
        raise
    return 0


def _parent_alive() -> Callable[[], bool]:
    """While the ``motcua up`` that started this child engine runs (a fallback to the kernel's
    parent-death signal, motcua.engine_process)."""
    parent = os.getppid()
    return lambda: os.getppid() == parent


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``motcua demo`` (quiet logs unless ``--verbose``)."""
    from motcua import engine_spawn

    settings = load_settings()
    with engine_spawn.early(settings.engine_process):  # its start-up beside ours
        from motcua.demo import run_demo

        setup_logs(settings, quiet=not args.verbose)
        return run_demo(settings, args)
