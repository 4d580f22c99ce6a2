"""emptyDir sizeLimit eviction (runtime.kubelet.eviction): usage counted as ``du`` counts
it, limits read from the pod, Kubernetes' message, and the Failed/Evicted status with the
DisruptionTarget condition that the pod syncer reports for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runtime.kubelet.eviction import check_pod, disk_usage, size_limits
from runtime.kubelet.status import PodView, pod_status


def pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": "Always",
            "containers": [{"name": "c"}],
            "volumes": list(volumes),
        },
        "status": {"phase": "Running"},
    }


def test_usage_counts_allocated_blocks_each_inode_once_and_does_not_follow_symlinks(
    tmp_path: Path,
) -> None:
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "data").write_bytes(os.urandom(100_000))
    before = disk_usage(vol)
    assert before >= 100_000
    os.link(vol / "sub" / "data", vol / "again")  # the same inode
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(500_000))
    (vol / "link").symlink_to(outside)
    assert before <= disk_usage(vol) < before + 16_384
    assert disk_usage(tmp_path / "missing") == 0


def test_only_empty_dirs_with_a_valid_size_limit_count() -> None:
    spec = pod(
        {"name": "a", "emptyDir": {"sizeLimit": "1Mi"}},
        {"name": "b", "emptyDir": {}},
        {"name": "c", "emptyDir": {"medium": "Memory", "sizeLimit": "64k"}},
        {"name": "d", "configMap": {"name": "x"}},
        {"name": "e", "emptyDir": {"sizeLimit": "lots"}},
    )
    assert size_limits(spec) == [("a", "1Mi", 1 << 20), ("c", "64k", 64_000)]


def test_a_volume_over_its_limit_evicts_with_kubernetes_message(tmp_path: Path) -> None:
    dirs = {"small": tmp_path / "small", "big": tmp_path / "big"}
    for d in dirs.values():
        d.mkdir()
    (dirs["small"] / "f").write_bytes(b"x" * 10_000)
    (dirs["big"] / "f").write_bytes(b"x" * 300_000)
    spec = pod(
        {"name": "small", "emptyDir": {"sizeLimit": "100Ki"}},
        {"name": "big", "emptyDir": {"sizeLimit": "200Ki"}},
    )
    seen: list[tuple[str, str]] = []

    def path_of(uid: str, name: str) -> Path:
        seen.append((uid, name))
        return dirs[name]

    failure = check_pod(spec, path_of)
    assert failure is not None
    assert failure.reason == "Evicted" and failure.disruption
    assert failure.message == 'Usage of EmptyDir volume "big" exceeds the limit "200Ki". '
    assert seen == [("u1", "small"), ("u1", "big")]
    (dirs["big"] / "f").unlink()
    assert check_pod(spec, path_of) is None
    assert check_pod(spec, lambda uid, name: None) is None  # not set up yet


def test_an_evicted_pod_is_failed_with_the_reason_message_and_disruption_target(
    tmp_path: Path,
) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10_000)
    spec = pod({"name": "big", "emptyDir": {"sizeLimit": "1Ki"}})
    failure = check_pod(spec, lambda uid, name: tmp_path)
    assert failure is not None
    status = pod_status(
        PodView(spec, sandbox_ready=False, pod_ip="", host_ip="10.0.0.1", failure=failure),
        now=1_700_000_000.0,
    )
    assert (status["phase"], status["reason"]) == ("Failed", "Evicted")
    assert status["message"] == failure.message
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["DisruptionTarget"]["status"] == "True"
    assert conditions["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert conditions["Ready"]["status"] == "False"
