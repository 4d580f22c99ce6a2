"""The data every step returns and every edge renders: what a sync did or would do.

:func:`gitops.plan.plan` produces a :class:`ChangeSet` (created / configured with a
field-level diff / unchanged / pruned), :mod:`gitops.apply` fills in what happened
(failed, skipped), and the CLI, the service's status, the drift reports and the metrics
render it. Values of Secrets never enter a ChangeSet: :func:`masked` replaces them
before a diff is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from gitops.manifest import ObjectKey, Origin


class Action(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class FieldChange:
    """One changed field: ``path`` in dotted form with list items by key or index
    (``spec.template.spec.containers[name=web].image``); ``None`` means absent."""

    path: str
    before: Any = None
    after: Any = None


@dataclass
class Entry:
    """What happens (or happened) to one object."""

    key: ObjectKey
    action: Action
    api_version: str = ""
    origin: Origin | None = None
    diff: list[FieldChange] = field(default_factory=list)
    message: str = ""
    """Why it was skipped or failed, or a note (e.g. 'prune disabled by annotation')."""

    @property
    def changed(self) -> bool:
        return self.action in (Action.CREATED, Action.CONFIGURED, Action.PRUNED)


@dataclass
class ChangeSet:
    """Entries in apply order (pruned ones last, in prune order)."""

    entries: list[Entry] = field(default_factory=list)
    revision: str = ""

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def counts(self) -> dict[str, int]:
        counter = Counter(e.action.value for e in self.entries)
        return {a.value: counter.get(a.value, 0) for a in Action}

    @property
    def changed(self) -> list[Entry]:
        return [e for e in self.entries if e.changed]

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.entries if e.action is Action.FAILED]

    def entry(self, key: ObjectKey) -> Entry | None:
        for e in self.entries:
            if e.key == key:
                return e
        return None


SECRET_MASK = "********"


MASK_KEY_FILE = "mask.key"
_mask_key: bytes = secrets.token_bytes(32)
"""The key of the stand-ins: random per process unless :func:`use_mask_key` loads the
state directory's (so the service's history keeps comparable stand-ins)."""


def use_mask_key(state_dir: Path) -> None:
    """Use the key in ``state_dir/mask.key`` (32 random bytes, written 0600 when missing)."""
    global _mask_key
    path = state_dir / MASK_KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) < 32:
        state_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    path.chmod(0o600)
    _mask_key = key


def masked(value: Any) -> Any:
    """A stand-in for a Secret value: equal values give equal stand-ins (so a diff still
    shows *that* a value changed) but nothing of the value can be read back or guessed
    offline: it is a keyed HMAC-SHA256 (the key never leaves the reconciler)."""
    if value is None:
        return None
    text = json.dumps(value, sort_keys=True, default=str).encode()
    digest = hmac.new(_mask_key, text, hashlib.sha256).hexdigest()[:12]
    return f"{SECRET_MASK} (hmac:{digest})"
