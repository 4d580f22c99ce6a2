"""The service's scheduling decisions, as small functions of data (no clock, no I/O).

:mod:`gitops.service.core` asks these which mode a run uses (:func:`choose_mode`), when
a failed run is tried again (:class:`RetryTracker`), when drift that keeps coming back
is healed again (:class:`HealGuard`), which dependencies an Application still waits for
(:func:`blocking_dependencies`) and how the set of Applications declared by an
app-of-apps changed (:func:`reconcile_children`). The unit tests check them directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from gitops.config import Application, Retry
from gitops.status import AppStatus
from gitops.sync import Mode

DEFAULT_RETRY = Retry()
"""Retry of an Application without ``retry``: 5 s doubling up to 3 min, 5 times."""


def choose_mode(fetched: str | None, applied: str | None, *, heal_held: bool = False) -> Mode:
    """The mode of a run: ``sync`` when the source's commit (``fetched``; ``None`` when
    the fetch failed) differs from the last applied one (``None``: nothing applied by
    this process yet), else a drift check: ``heal`` (AppSync corrects drift only with
    selfHeal), or ``plan`` (report only) while healing is held back by :class:`HealGuard`."""
    if applied is None or (fetched is not None and fetched != applied):
        return Mode.SYNC
    return Mode.PLAN if heal_held else Mode.HEAL


def retry_delay(retry: Retry | None, failures: int) -> float | None:
    """Seconds before retry number ``failures`` (1-based) of a retryable failure, or
    ``None`` once the Application's retry limit is spent."""
    policy = retry or DEFAULT_RETRY
    if failures < 1 or failures > policy.limit:
        return None
    backoff = policy.backoff
    delay = backoff.duration * backoff.factor ** (failures - 1)
    return float(min(delay, backoff.max_duration)) if math.isfinite(delay) else backoff.max_duration


@dataclass
class RetryTracker:
    """Consecutive failures of one Application (counted per revision: a new commit that
    fails again starts over at the first delay)."""

    failures: int = 0
    revision: str = ""

    def failed(self, revision: str, retryable: bool, retry: Retry | None) -> float | None:
        """Record a failed run; the delay of the retry to schedule (``None``: no retry,
        wait for a new commit or the interval)."""
        self.failures = self.failures + 1 if revision == self.revision else 1
        self.revision = revision
        return retry_delay(retry, self.failures) if retryable else None

    def succeeded(self) -> None:
        self.failures, self.revision = 0, ""


@dataclass
class HealGuard:
    """Backoff of self-heal for drift that keeps coming back.

    After a drift check heals objects, a follow-up check runs after :attr:`wait` (first
    ``base``) to see whether the heal held. If an object healed within :attr:`window`
    drifts again, the wait doubles (capped at ``cap``, the Application's interval) and
    healing is held back until it has passed (drift checks meanwhile only report). A
    check that finds no drift resets the wait."""

    base: float
    cap: float
    healed: dict[str, float] = field(default_factory=dict)
    """Object key → when it was last healed."""
    wait: float = 0.0
    hold_until: float = 0.0

    @property
    def window(self) -> float:
        """How recent a heal must be for new drift of the same object to count as 'again'."""
        return 2 * self.cap

    def held(self, now: float) -> bool:
        return now < self.hold_until

    def checked(self, drifted: Collection[str], now: float) -> float | None:
        """Record a drift check at ``now`` that healed ``drifted`` (empty: no drift);
        the delay of the follow-up check, or ``None`` when none is needed."""
        self.healed = {k: t for k, t in self.healed.items() if now - t < self.window}
        if not drifted:
            self.wait = 0.0
            return None
        again = any(k in self.healed for k in drifted)
        first = min(self.base, self.cap)
        self.wait = min(max(first, self.wait * 2), self.cap) if again else first
        for key in drifted:
            self.healed[key] = now
        self.hold_until = now + self.wait
        return self.wait


def dependency_ready(status: AppStatus | None) -> bool:
    """A dependency lets its dependents run when it is Synced and Healthy."""
    return status is not None and status.sync_status == "Synced" and status.health == "Healthy"


def blocking_dependencies(app: Application, ready: Callable[[str], bool]) -> tuple[str, ...]:
    """The dependencies of ``app`` that are not ready yet (``ready(name)``), in order."""
    return tuple(name for name in app.depends_on if not ready(name))


@dataclass(frozen=True)
class AppSetChanges:
    """How the Applications one app-of-apps declares changed since its last run."""

    added: tuple[Application, ...] = ()
    updated: tuple[Application, ...] = ()
    removed: tuple[str, ...] = ()
    refused: tuple[tuple[Application, str], ...] = ()
    """Declared Applications not taken, with why (their name is already used)."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.updated or self.removed or self.refused)


def reconcile_children(
    parent: str,
    declared: Sequence[Application],
    current: Mapping[str, Application],
    owners: Mapping[str, str | None],
) -> AppSetChanges:
    """Compare what ``parent`` declares now with the Applications the service runs
    (``current``; ``owners`` maps each name to the Application that declared it, ``None``
    for the config's). A declared name already used by the config or by another
    Application's declaration is refused; the first declaration keeps it."""
    added: list[Application] = []
    updated: list[Application] = []
    refused: list[tuple[Application, str]] = []
    seen: set[str] = set()
    for app in declared:
        if app.name in seen:
            refused.append((app, f"{parent} declares {app.name} twice"))
            continue
        seen.add(app.name)
        if app.name == parent:
            refused.append((app, f"{parent} declares itself"))
        elif app.name not in current:
            added.append(app)
        elif owners.get(app.name) != parent:
            owner = owners.get(app.name)
            where = f"declared by {owner}" if owner else "in the config"
            refused.append((app, f"the name {app.name} is already used (an Application {where})"))
        elif current[app.name] != app:
            updated.append(app)
    removed = tuple(
        sorted(name for name, owner in owners.items() if owner == parent and name not in seen)
    )
    return AppSetChanges(tuple(added), tuple(updated), removed, tuple(refused))
