"""structlog set up once at the edge: JSON lines in production, readable lines on a terminal.

Tracebacks are logged without local variables: the frames of the engine and the bridge hold
actions and request bodies (and a token on its way to be checked), which must not end up in a log.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    """A logger on the ``sys.stderr`` of the moment (not the one at configure time, which a
    test harness or a daemonizing wrapper may have closed since)."""
    return structlog.PrintLogger(sys.stderr)


# The level and format configured last: what a child process of this one is told to log at.
CONFIGURED = {"level": "info", "format": "json"}


def configure(level: str = "info", fmt: str = "json") -> None:
    """Logs go to stderr; ``fmt`` is ``json`` or ``console``."""
    CONFIGURED.update(level=level, format=fmt)
    lvl = getattr(logging, level.upper(), logging.INFO)
    tail: list[structlog.typing.Processor]
    if fmt == "console":
        # The console renderer formats exceptions itself (dict tracebacks would break it).
        tail = [structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))]
    else:
        tail = [structlog.processors.ExceptionRenderer(
                    ExceptionDictTransformer(show_locals=False)),
                structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
