"""Local storage eviction of pods whose emptyDir volumes outgrow their ``sizeLimit``, as
Kubernetes' eviction manager does it (``localStorageEviction``).

Who calls it: the kubelet's eviction loop (:meth:`runtime.kubelet.kubelet.Kubelet`), every
``KubeletOptions.eviction_interval`` seconds (10 s, Kubernetes' eviction monitoring
period), with each pod it runs. :func:`check_pod` measures every emptyDir volume of the
pod that has a ``sizeLimit`` (disk and ``medium: Memory`` alike) and returns the eviction
when one uses more than its limit; the kubelet then hands it to the pod syncer, which kills
the pod at once and reports phase ``Failed``, reason ``Evicted``, Kubernetes' message
(``Usage of EmptyDir volume "cache" exceeds the limit "1Mi". ``) and the
``DisruptionTarget`` condition, and records a ``Warning Evicted`` event.

Usage is counted as ``du`` counts it, as Kubernetes' kubelet does without filesystem
quotas: the blocks allocated to every file and directory below the volume, each inode once,
symlinks not followed. Not built (documented in the README): node-pressure eviction, the
pod-level and container ``ephemeral-storage`` limits (they would need the size of each
container's writable layer).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime.api import quantity
from runtime.kubelet.status import KubeletFailure

EVICTED = "Evicted"


def empty_dir_message(volume: str, limit: str) -> str:
    """Kubernetes' wording (the trailing space included)."""
    return f'Usage of EmptyDir volume "{volume}" exceeds the limit "{limit}". '


def disk_usage(path: Path) -> int:
    """Bytes allocated below ``path`` (``du``: blocks of each inode once, symlinks not
    followed); 0 when it does not exist."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def count(st: os.stat_result) -> None:
        nonlocal total
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            total += st.st_blocks * 512

    try:
        count(os.lstat(path))
    except FileNotFoundError:
        return 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            try:
                count((Path(root) / name).lstat())
            except FileNotFoundError:  # removed while we walk
                continue
    return total


def size_limits(pod: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(volume, sizeLimit as written, bytes)`` of the pod's emptyDir volumes that have a
    valid limit."""
    found: list[tuple[str, str, int]] = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if not isinstance(source, dict) or source.get("sizeLimit") in (None, ""):
            continue
        parsed = quantity.parse(source["sizeLimit"])
        if parsed is not None:
            found.append((str(volume.get("name")), str(source["sizeLimit"]), int(parsed)))
    return found


def check_pod(
    pod: Mapping[str, Any], volume_path: Callable[[str, str], Path | None]
) -> KubeletFailure | None:
    """The eviction of ``pod`` when one of its emptyDir volumes (found on the host with
    ``volume_path(pod uid, volume name)``) uses more than its ``sizeLimit``, else None.
    Blocking (walks directories): call it in a thread."""
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    for name, written, limit in size_limits(pod):
        path = volume_path(uid, name)
        if path is not None and disk_usage(path) > limit:
            return KubeletFailure(EVICTED, empty_dir_message(name, written), disruption=True)
    return None
