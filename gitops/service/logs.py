"""Structured logging of the reconciler: structlog, one event name plus key/value context.

``gitops serve`` / ``gitops up`` (gitops/cli.py) call :func:`configure_logging` once at
start. Logs go to stderr: readable key=value lines on a terminal, one JSON object per
line otherwise (for log collectors). Callers never pass secrets as values.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from gitops.changeset import ChangeSet
from gitops.sync import Mode, SyncResult

log = structlog.get_logger("gitops.service")

_QUIET = ("apscheduler", "aiohttp.access", "watchdog")
MAX_LOGGED_OBJECTS = 20
"""Object keys named in one ``drift detected`` event (the rest are counted in ``more``)."""


def configure_logging(verbose: bool, stream: TextIO | None = None) -> None:
    """Configure structlog (and the standard library's logging of libraries) to write
    to ``stream`` (default stderr): debug events only when ``verbose``."""
    out = stream if stream is not None else sys.stderr
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(name)s: %(message)s",
        stream=out,
    )
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    renderer: Any
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _counts(changes: ChangeSet) -> dict[str, int]:
    return {k: v for k, v in changes.counts().items() if v}


def log_result(result: SyncResult, self_heal: bool, reasons: list[str]) -> None:
    """Log one run of the service: ``drift detected`` (with the object keys) when a drift
    check found drift, ``sync failed``, ``sync finished`` or ``drift check finished``."""
    base = {
        "app": result.app,
        "mode": result.mode.value,
        "revision": result.revision[:12],
        "reasons": reasons,
        "seconds": result.seconds,
    }
    if result.drifted and result.mode is not Mode.SYNC:
        keys = [str(e.key) for e in result.changes.changed]
        log.warning(
            "drift detected",
            **base,
            counts=_counts(result.changes),
            objects=keys[:MAX_LOGGED_OBJECTS],
            more=max(len(keys) - MAX_LOGGED_OBJECTS, 0),
            healed=result.mode is Mode.HEAL and self_heal and result.ok,
        )
    if not result.ok:
        log.error(
            "sync failed",
            **base,
            phase=result.error_phase,
            error=result.error,
            file=result.error_file,
            line=result.error_line,
            retryable=result.retryable,
        )
    elif result.mode is Mode.SYNC:
        log.info(
            "sync finished",
            **base,
            counts=_counts(result.changes),
            health=result.health.status.value,
        )
    else:
        log.debug("drift check finished", **base, drift=len(result.changes.changed))
