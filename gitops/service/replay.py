"""Webhook deliveries seen recently, so that a replayed delivery triggers nothing.

``POST /webhook`` (:mod:`gitops.service.http`) asks :meth:`DeliveryLog.claim` with the
keys of an authenticated push before triggering anything: the provider's delivery ID
(GitHub ``X-GitHub-Delivery``, GitLab ``Idempotency-Key`` / ``X-Gitlab-Event-UUID`` /
``X-Gitlab-Webhook-UUID``, Gitea/Forgejo ``X-Gitea-Delivery`` / ``X-Forgejo-Delivery``)
and, for a body whose HMAC signature was verified (GitHub, Gitea), the body's digest,
because the delivery header is not covered by the signature and a captured request can
be sent again with a new one. A key seen within the window makes the delivery a
duplicate. Keys are forgotten after the window or, beyond the capacity, oldest first.

A GitLab push without a delivery header (GitLab before 15.x) cannot be recognised as a
replay: its body is not signed, only accompanied by the shared token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence


class DeliveryLog:
    """Keys of deliveries accepted in the last ``window`` seconds (at most ``capacity``)."""

    def __init__(
        self, window: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if window <= 0 or capacity < 1:
            raise ValueError("the replay window and capacity must be positive")
        self.window = window
        self.capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.window:
                break
            del self._seen[key]

    def claim(self, keys: Sequence[str]) -> bool:
        """Remember ``keys`` and return True; False when one of them was seen within the
        window (its window starts again: a replay keeps it remembered). No keys: always
        True (such a delivery cannot be recognised)."""
        now = self._clock()
        self._expire(now)
        seen = [k for k in keys if k in self._seen]
        if seen:
            for key in seen:  # least recently used goes first: a replay keeps it remembered
                self._seen[key] = now
                self._seen.move_to_end(key)
            return False
        for key in keys:
            self._seen[key] = now
            self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def release(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` (the delivery could not be handled: let the provider retry)."""
        for key in keys:
            self._seen.pop(key, None)
