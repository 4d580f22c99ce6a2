"""A pod's volumes on the host (runtime.kubelet.volumes), pinned to Kubernetes'
volume plugins (emptyDir, hostPath, configMap, secret, downwardAPI, projected,
persistentVolumeClaim), its AtomicWriter, and the kubelet's subPath handling."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.kubelet.cri import Mount
from runtime.kubelet.env import ContainerConfigError
from runtime.kubelet.volumes import (
    AtomicWriter,
    FileProjection,
    VolumeError,
    VolumeManager,
    is_tmpfs,
)

SHM = Path("/dev/shm")


class MemorySource:
    """API objects held in memory, as test data."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def put(self, plural: str, obj: dict[str, Any], namespace: str = "default") -> None:
        self.objects[(plural, namespace, obj["metadata"]["name"])] = obj

    def drop(self, plural: str, name: str, namespace: str = "default") -> None:
        del self.objects[(plural, namespace, name)]

    async def get(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))


def cm(name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name}, "data": data}
    if binary:
        obj["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return obj


def secret(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return {"metadata": {"name": name}, "data": encoded}


def make_pod(
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]] | None = None,
    uid: str = "pod-uid-1",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": uid,
            "labels": {"app": "web"},
            "annotations": {"build": "42"},
        },
        "spec": {
            "nodeName": "node-1",
            "volumes": volumes,
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "volumeMounts": mounts or [],
                    "resources": {"limits": {"memory": "64Mi"}},
                }
            ],
            **spec,
        },
    }


def container(pod: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = pod["spec"]["containers"][0]
    return c


@pytest.fixture
def memory_root() -> Iterator[Path]:
    path = SHM / f"gitops-test-{uuid.uuid4().hex}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def source() -> MemorySource:
    return MemorySource()


@pytest.fixture
def manager(tmp_path: Path, source: MemorySource, memory_root: Path) -> VolumeManager:
    return VolumeManager(
        tmp_path / "pods",
        source,
        node_allocatable={"cpu": "4", "memory": "8Gi"},
        memory_root=memory_root,
    )


def setup(manager: VolumeManager, pod: dict[str, Any]) -> None:
    asyncio.run(manager.setup(pod, pod_ip="10.88.0.9", node_name="node-1", node_ip="10.0.0.1"))


def refresh(manager: VolumeManager, pod: dict[str, Any]) -> bool:
    return asyncio.run(manager.refresh(pod))


def setup_error(manager: VolumeManager, pod: dict[str, Any]) -> VolumeError:
    with pytest.raises(VolumeError) as err:
        setup(manager, pod)
    assert err.value.reason == "FailedMount"
    return err.value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def link(path: Path) -> str:
    """Where a symlink points, as written."""
    return str(path.readlink())


def vol_dir(manager: VolumeManager, plugin: str, name: str, uid: str = "pod-uid-1") -> Path:
    return manager.root / uid / "volumes" / plugin / name


# --- emptyDir -----------------------------------------------------------------------


def test_an_empty_dir_is_a_world_writable_directory_under_the_pods_dir(
    manager: VolumeManager,
) -> None:
    pod = make_pod([{"name": "scratch", "emptyDir": {}}], [{"name": "scratch", "mountPath": "/s"}])
    setup(manager, pod)
    path = vol_dir(manager, "kubernetes.io~empty-dir", "scratch")
    assert path.is_dir() and not path.is_symlink() and mode(path) == 0o777
    assert manager.mounts(pod, container(pod)) == [Mount(str(path), "/s", False)]


def test_a_volume_without_a_source_is_an_empty_dir_as_api_defaulting_makes_it(
    manager: VolumeManager,
) -> None:
    setup(manager, make_pod([{"name": "plain"}]))
    assert vol_dir(manager, "kubernetes.io~empty-dir", "plain").is_dir()


def test_setting_up_twice_keeps_what_containers_wrote(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "scratch", "emptyDir": {}}])
    setup(manager, pod)
    (vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "f").write_text("kept")
    setup(manager, pod)
    assert (vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "f").read_text() == "kept"


def test_a_memory_empty_dir_lives_on_tmpfs(manager: VolumeManager, memory_root: Path) -> None:
    assert is_tmpfs(SHM), "/dev/shm is a tmpfs on the machines this runs on"
    pod = make_pod(
        [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
        [{"name": "cache", "mountPath": "/c"}],
    )
    setup(manager, pod)
    visible = vol_dir(manager, "kubernetes.io~empty-dir", "cache")
    real = memory_root / "pod-uid-1" / "volumes" / "kubernetes.io~empty-dir" / "cache"
    assert visible.is_symlink() and visible.resolve() == real
    assert is_tmpfs(real) and mode(real) == 0o1777
    assert manager.mounts(pod, container(pod)) == [Mount(str(real), "/c", False)]


def test_a_memory_empty_dir_without_a_tmpfs_fails_clearly(
    tmp_path: Path, source: MemorySource
) -> None:
    manager = VolumeManager(tmp_path / "pods", source, memory_root=tmp_path / "not-tmpfs")
    err = setup_error(manager, make_pod([{"name": "cache", "emptyDir": {"medium": "Memory"}}]))
    assert err.message.startswith('MountVolume.SetUp failed for volume "cache" : ')
    assert "needs a tmpfs" in err.message and str(tmp_path / "not-tmpfs") in err.message
    assert not err.retryable


def test_an_unsupported_empty_dir_medium_is_an_error(manager: VolumeManager) -> None:
    err = setup_error(manager, make_pod([{"name": "h", "emptyDir": {"medium": "HugePages"}}]))
    assert 'emptyDir medium "HugePages" is not supported' in err.message


def test_the_default_memory_root_is_on_dev_shm_and_torn_down_with_the_pod(
    tmp_path: Path, source: MemorySource
) -> None:
    manager = VolumeManager(tmp_path / "pods", source)
    try:
        assert manager.memory_root.parent == SHM / "gitops-kubelet"
        setup(manager, make_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}]))
        assert (manager.memory_root / "pod-uid-1").is_dir()
        asyncio.run(manager.teardown("pod-uid-1"))
        assert not (manager.memory_root / "pod-uid-1").exists()
    finally:
        shutil.rmtree(manager.memory_root, ignore_errors=True)


# --- hostPath -----------------------------------------------------------------------


def host_pod(path: Path | str, kind: str | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"path": str(path)}
    if kind is not None:
        source["type"] = kind
    return make_pod([{"name": "h", "hostPath": source}], [{"name": "h", "mountPath": "/h"}])


def test_a_host_path_is_mounted_as_it_is(manager: VolumeManager, tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    pod = host_pod(target)
    setup(manager, pod)
    assert manager.mounts(pod, container(pod)) == [Mount(str(target), "/h", False)]


def test_an_untyped_missing_host_path_becomes_a_directory_as_containerd_makes_it(
    manager: VolumeManager, tmp_path: Path
) -> None:
    setup(manager, host_pod(tmp_path / "new" / "dir"))
    assert (tmp_path / "new" / "dir").is_dir()


def test_directory_or_create_makes_a_0755_directory(manager: VolumeManager, tmp_path: Path) -> None:
    old = os.umask(0o022)  # the kubelet's usual umask; Go's MkdirAll honours it too
    try:
        setup(manager, host_pod(tmp_path / "made" / "deep", "DirectoryOrCreate"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "made") == 0o755 and mode(tmp_path / "made" / "deep") == 0o755


def test_file_or_create_makes_an_empty_file_and_needs_its_directory(
    manager: VolumeManager, tmp_path: Path
) -> None:
    setup(manager, host_pod(tmp_path / "f.log", "FileOrCreate"))
    assert (tmp_path / "f.log").is_file() and (tmp_path / "f.log").read_bytes() == b""
    err = setup_error(manager, host_pod(tmp_path / "missing" / "f.log", "FileOrCreate"))
    assert "No such file or directory" in err.message


@pytest.mark.parametrize(
    ("kind", "make", "message"),
    [
        ("Directory", "nothing", "is not a directory"),
        ("Directory", "file", "is not a directory"),
        ("DirectoryOrCreate", "file", "is not a directory"),
        ("File", "nothing", "is not a file"),
        ("File", "dir", "is not a file"),
        ("FileOrCreate", "dir", "is not a file"),
        ("Socket", "file", "is not a socket file"),
        ("CharDevice", "file", "is not a character device"),
        ("BlockDevice", "file", "is not a block device"),
    ],
)
def test_host_path_types_are_checked_with_the_kubelets_messages(
    manager: VolumeManager, tmp_path: Path, kind: str, make: str, message: str
) -> None:
    path = tmp_path / "thing"
    if make == "file":
        path.write_text("x")
    elif make == "dir":
        path.mkdir()
    err = setup_error(manager, host_pod(path, kind))
    assert err.message == (
        f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {path} {message}'
    )
    assert err.volume == "h" and err.retryable


def test_sockets_and_character_devices_pass_their_checks(
    manager: VolumeManager, tmp_path: Path
) -> None:
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        setup(manager, host_pod(sock_path, "Socket"))
    setup(manager, host_pod("/dev/null", "CharDevice"))
    err = setup_error(manager, host_pod("/dev/null", "BlockDevice"))
    assert err.message.endswith("/dev/null is not a block device")


def test_an_invalid_host_path_type_or_a_backstep_is_refused(
    manager: VolumeManager, tmp_path: Path
) -> None:
    err = setup_error(manager, host_pod(tmp_path, "Folder"))
    assert err.message.endswith(": Folder is an invalid volume type") and not err.retryable
    err = setup_error(manager, host_pod(f"{tmp_path}/../etc", "Directory"))
    assert "must not contain '..'" in err.message


# --- configMap and the atomic writer --------------------------------------------------


def cm_pod(source: dict[str, Any], mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return make_pod(
        [{"name": "cfg", "configMap": source}], mounts or [{"name": "cfg", "mountPath": "/etc/cfg"}]
    )


def test_a_config_map_volume_has_one_symlink_per_key_through_the_data_link(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"color": "blue", "app.conf": "x=1\n"}))
    pod = cm_pod({"name": "app"})
    setup(manager, pod)
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert mode(target) == 0o777
    data = target / "..data"
    assert data.is_symlink()
    ts_name = link(data)
    assert ts_name.startswith("..") and "/" not in ts_name and (target / ts_name).is_dir()
    assert mode(target / ts_name) == 0o755
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["..data", ts_name, "app.conf", "color"]
    )
    for key, value in (("color", "blue"), ("app.conf", "x=1\n")):
        assert link(target / key) == f"..data/{key}"
        assert (target / key).read_text() == value
        assert mode(target / ts_name / key) == 0o644
    assert manager.mounts(pod, container(pod)) == [Mount(str(target), "/etc/cfg", True)]


def test_items_choose_keys_paths_and_modes(manager: VolumeManager, source: MemorySource) -> None:
    source.put("configmaps", cm("app", {"a": "1", "b": "2", "c": "3"}, {"bin": b"\x00\x01"}))
    pod = cm_pod(
        {
            "name": "app",
            "defaultMode": 0o440,
            "items": [
                {"key": "a", "path": "conf/deep/a.txt", "mode": 0o600},
                {"key": "b", "path": "b.txt"},
                {"key": "bin", "path": "blob"},
            ],
        }
    )
    setup(manager, pod)
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == [
        "b.txt",
        "blob",
        "conf",
    ]
    assert link(target / "conf") == "..data/conf"
    assert (target / "conf" / "deep" / "a.txt").read_text() == "1"
    assert mode((target / "conf" / "deep" / "a.txt").resolve()) == 0o600
    assert mode((target / "b.txt").resolve()) == 0o440
    assert (target / "blob").read_bytes() == b"\x00\x01"
    assert mode((target / "conf").resolve()) == 0o755


def test_a_missing_config_map_fails_the_mount_with_the_kubelets_message(
    manager: VolumeManager,
) -> None:
    err = setup_error(manager, cm_pod({"name": "app"}))
    assert err.message == 'MountVolume.SetUp failed for volume "cfg" : configmap "app" not found'
    assert err.volume == "cfg" and err.retryable


def test_a_missing_item_key_fails_unless_optional(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"a": "1"}))
    items = [{"key": "a", "path": "a"}, {"key": "nope", "path": "n"}]
    err = setup_error(manager, cm_pod({"name": "app", "items": items}))
    assert err.message.endswith(": configmap references non-existent config key: nope")
    setup(manager, cm_pod({"name": "app", "items": items, "optional": True}))
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert (target / "a").exists() and not (target / "n").exists()


def test_an_optional_missing_config_map_is_empty_until_it_appears(
    manager: VolumeManager, source: MemorySource
) -> None:
    pod = cm_pod({"name": "app", "optional": True})
    setup(manager, pod)
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert [p.name for p in target.iterdir() if not p.name.startswith("..")] == []
    assert (target / "..data").is_dir()
    source.put("configmaps", cm("app", {"color": "red"}))
    assert refresh(manager, pod) is True
    assert (target / "color").read_text() == "red"


def test_an_update_swaps_the_data_link_and_a_mounted_directory_sees_it(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"color": "blue", "gone": "soon"}))
    pod = cm_pod({"name": "app"})
    setup(manager, pod)
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    old_ts = link(target / "..data")
    # A container's bind mount holds the volume directory itself, as this descriptor does.
    held = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert refresh(manager, pod) is False  # nothing changed: nothing rewritten
        assert link(target / "..data") == old_ts
        source.put("configmaps", cm("app", {"color": "green", "new": "here"}))
        assert refresh(manager, pod) is True
        new_ts = link(target / "..data")
        assert new_ts != old_ts and not (target / old_ts).exists()
        fd = os.open("color", os.O_RDONLY, dir_fd=held)
        with os.fdopen(fd) as fh:
            assert fh.read() == "green"
        assert not os.path.lexists(target / "gone")
        assert link(target / "new") == "..data/new"
        visible = sorted(p.name for p in target.iterdir())
        assert visible == sorted(["..data", new_ts, "color", "new"])
    finally:
        os.close(held)


def test_a_sub_path_mount_keeps_the_file_it_started_with(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"color": "blue"}))
    pod = cm_pod({"name": "app"}, [{"name": "cfg", "mountPath": "/color", "subPath": "color"}])
    setup(manager, pod)
    (first,) = manager.mounts(pod, container(pod))
    target = vol_dir(manager, "kubernetes.io~configmap", "cfg")
    assert first.read_only and first.container_path == "/color"
    host = Path(first.host_path)
    assert not host.is_symlink() and host.parent == target / link(target / "..data")
    with host.open() as bound:  # what a running container's bind mount holds
        source.put("configmaps", cm("app", {"color": "green"}))
        assert refresh(manager, pod) is True
        assert bound.read() == "blue"
    (second,) = manager.mounts(pod, container(pod))  # a restarted container gets the new file
    assert Path(second.host_path).read_text() == "green"


def test_a_deleted_config_map_fails_the_refresh_and_keeps_the_old_files(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"color": "blue"}))
    pod = cm_pod({"name": "app"})
    setup(manager, pod)
    source.drop("configmaps", "app")
    with pytest.raises(VolumeError, match='configmap "app" not found'):
        refresh(manager, pod)
    assert (vol_dir(manager, "kubernetes.io~configmap", "cfg") / "color").read_text() == "blue"


def test_files_are_readable_by_other_users_exactly_when_their_mode_says_so(
    source: MemorySource, memory_root: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="vol-perm-"))
    try:
        manager = VolumeManager(base / "pods", source, memory_root=memory_root)
        source.put("configmaps", cm("app", {"open": "hello", "closed": "secret"}))
        pod = cm_pod(
            {
                "name": "app",
                "items": [
                    {"key": "open", "path": "open"},
                    {"key": "closed", "path": "closed", "mode": 0o600},
                ],
            }
        )
        setup(manager, pod)
        held = os.open(vol_dir(manager, "kubernetes.io~configmap", "cfg"), os.O_RDONLY)
        # As user nobody, from the held directory only (as a bind mount would show it).
        script = (
            f"cd /proc/self/fd/{held} && cat open && echo && "
            "if cat closed >/dev/null 2>&1; then echo readable; else echo denied; fi"
        )
        try:
            result = subprocess.run(
                ["/bin/sh", "-c", script],
                pass_fds=[held],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            os.close(held)
        assert result.stdout.split() == ["hello", "denied"]
    finally:
        shutil.rmtree(base)


def test_an_fs_group_owns_the_files_and_may_read_them(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"k": "v"}))
    pod = cm_pod({"name": "app", "defaultMode": 0o400})
    pod["spec"]["securityContext"] = {"fsGroup": 2000}
    pod["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}})
    setup(manager, pod)
    real = (vol_dir(manager, "kubernetes.io~configmap", "cfg") / "k").resolve()
    assert real.stat().st_gid == 2000 and mode(real) == 0o440
    scratch = vol_dir(manager, "kubernetes.io~empty-dir", "scratch")
    assert scratch.stat().st_gid == 2000 and scratch.stat().st_mode & stat.S_ISGID


def test_the_atomic_writer_refuses_paths_that_escape_or_are_reserved(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    for bad, message in (
        ("../x", "must not contain '..'"),
        ("a/../../x", "must not contain '..'"),
        ("..hidden", "must not start with '..'"),
        ("/abs", "must be relative path"),
        ("", "must not be empty"),
        ("x" * 256, "filenames must be less than or equal to 255 characters"),
    ):
        with pytest.raises(ValueError, match=message):
            writer.write({bad: FileProjection(b"")})
    assert list(tmp_path.iterdir()) == []


def test_the_atomic_writer_cleans_up_after_an_interrupted_write(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    assert writer.write({"a": FileProjection(b"1")})
    (tmp_path / "..2001_01_01_00_00_00.crashed").mkdir()
    (tmp_path / "..data_tmp").symlink_to("..2001_01_01_00_00_00.crashed")
    assert writer.write({"a": FileProjection(b"2")})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["..data", link(tmp_path / "..data"), "a"])
    assert (tmp_path / "a").read_text() == "2"
    # A user-visible link lost in a crash comes back even when the data is unchanged.
    (tmp_path / "a").unlink()
    assert writer.write({"a": FileProjection(b"2")}) is False
    assert (tmp_path / "a").read_text() == "2"


def test_links_of_a_lost_version_are_removed_on_the_next_write(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"a": FileProjection(b"1"), "b": FileProjection(b"2")})
    shutil.rmtree(tmp_path / link(tmp_path / "..data"))  # the data went away under us
    assert writer.write({"a": FileProjection(b"1")})
    assert (tmp_path / "a").read_text() == "1" and not os.path.lexists(tmp_path / "b")


def test_a_removed_nested_item_disappears_with_its_top_directory(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(
        {"d/x": FileProjection(b"1"), "d/y": FileProjection(b"2"), "e/z": FileProjection(b"3")}
    )
    writer.write({"d/x": FileProjection(b"1")})
    assert (tmp_path / "d" / "x").read_text() == "1"
    assert not (tmp_path / "d" / "y").exists()
    assert not os.path.lexists(tmp_path / "e")


# --- secret -------------------------------------------------------------------------


def test_a_secret_volume_decodes_its_data_keeps_it_in_memory_and_honours_modes(
    manager: VolumeManager, source: MemorySource, memory_root: Path
) -> None:
    source.put("secrets", secret("creds", {"token": b"t0k3n", "key.pem": b"\x00PEM"}))
    pod = make_pod(
        [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
        [{"name": "creds", "mountPath": "/var/run/creds", "readOnly": False}],
    )
    setup(manager, pod)
    visible = vol_dir(manager, "kubernetes.io~secret", "creds")
    real = visible.resolve()
    assert visible.is_symlink() and memory_root in real.parents and is_tmpfs(real)
    assert (real / "token").read_bytes() == b"t0k3n"
    assert (real / "key.pem").read_bytes() == b"\x00PEM"
    assert mode((real / "token").resolve()) == 0o400
    # Secrets are mounted read-only whatever the volumeMount says, as Kubernetes does.
    assert manager.mounts(pod, container(pod)) == [Mount(str(real), "/var/run/creds", True)]


def test_a_missing_secret_fails_and_an_optional_one_is_empty(manager: VolumeManager) -> None:
    err = setup_error(manager, make_pod([{"name": "s", "secret": {"secretName": "nope"}}]))
    assert err.message == 'MountVolume.SetUp failed for volume "s" : secret "nope" not found'
    setup(manager, make_pod([{"name": "s", "secret": {"secretName": "nope", "optional": True}}]))


def test_a_missing_secret_key_uses_the_kubelets_message(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("secrets", secret("s", {"a": b"1"}))
    pod = make_pod(
        [{"name": "s", "secret": {"secretName": "s", "items": [{"key": "b", "path": "b"}]}}]
    )
    assert setup_error(manager, pod).message.endswith(": references non-existent secret key: b")


def test_secrets_fall_back_to_disk_when_there_is_no_tmpfs(
    tmp_path: Path, source: MemorySource
) -> None:
    manager = VolumeManager(tmp_path / "pods", source, memory_root=tmp_path / "no-tmpfs")
    source.put("secrets", secret("s", {"a": b"1"}))
    setup(manager, make_pod([{"name": "s", "secret": {"secretName": "s"}}]))
    path = vol_dir(manager, "kubernetes.io~secret", "s")
    assert path.is_dir() and not path.is_symlink() and (path / "a").read_text() == "1"


# --- downwardAPI ----------------------------------------------------------------------


def downward_pod(items: list[dict[str, Any]], **source: Any) -> dict[str, Any]:
    return make_pod(
        [{"name": "info", "downwardAPI": {"items": items, **source}}],
        [{"name": "info", "mountPath": "/etc/podinfo"}],
    )


def test_downward_api_files_hold_metadata_and_resources(manager: VolumeManager) -> None:
    pod = downward_pod(
        [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
            {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "meta/build", "fieldRef": {"fieldPath": "metadata.annotations['build']"}},
            {
                "path": "mem_limit",
                "resourceFieldRef": {
                    "containerName": "app",
                    "resource": "limits.memory",
                    "divisor": "1Mi",
                },
            },
            {
                "path": "cpu_limit",
                "mode": 0o600,
                "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"},
            },
        ],
        defaultMode=0o444,
    )
    setup(manager, pod)
    target = vol_dir(manager, "kubernetes.io~downward-api", "info")
    assert {
        p: (target / p).read_text()
        for p in ("name", "ns", "uid", "labels", "meta/build", "mem_limit", "cpu_limit")
    } == {
        "name": "web-0",
        "ns": "default",
        "uid": "pod-uid-1",
        "labels": 'app="web"',
        "meta/build": "42",
        "mem_limit": "64",
        "cpu_limit": "4",  # no limit: the node's allocatable
    }
    assert mode((target / "name").resolve()) == 0o444
    assert mode((target / "cpu_limit").resolve()) == 0o600
    assert manager.mounts(pod, container(pod))[0].read_only


def test_downward_api_files_follow_label_changes_on_refresh(manager: VolumeManager) -> None:
    pod = downward_pod([{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}])
    setup(manager, pod)
    pod["metadata"]["labels"] = {"app": "web", "version": "v2"}
    assert refresh(manager, pod) is True
    target = vol_dir(manager, "kubernetes.io~downward-api", "info")
    assert (target / "labels").read_text() == 'app="web"\nversion="v2"'
    assert refresh(manager, pod) is False


def test_a_downward_api_field_the_kubelet_cannot_extract_fails_the_mount(
    manager: VolumeManager,
) -> None:
    pod = downward_pod(
        [
            {"path": "a", "fieldRef": {"fieldPath": "spec.containers"}},
            {"path": "b", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}},
        ]
    )
    err = setup_error(manager, pod)
    assert err.message == (
        'MountVolume.SetUp failed for volume "info" : '
        "[field label not supported: spec.containers, container ghost not found]"
    )


# --- projected ----------------------------------------------------------------------


def test_a_projected_volume_merges_config_maps_secrets_and_downward_api(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("configmaps", cm("app", {"color": "blue", "size": "L"}))
    source.put("secrets", secret("creds", {"token": b"abc"}))
    pod = make_pod(
        [
            {
                "name": "all",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "configMap": {
                                "name": "app",
                                "items": [{"key": "color", "path": "c/color"}],
                            }
                        },
                        {"secret": {"name": "creds"}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}
                                ]
                            }
                        },
                        {"configMap": {"name": "absent", "optional": True}},
                    ],
                },
            }
        ],
        [{"name": "all", "mountPath": "/all"}],
    )
    setup(manager, pod)
    real = vol_dir(manager, "kubernetes.io~projected", "all").resolve()
    assert is_tmpfs(real)
    assert (real / "c" / "color").read_text() == "blue"
    assert (real / "token").read_text() == "abc"
    assert (real / "name").read_text() == "web-0"
    assert mode((real / "token").resolve()) == 0o440
    assert manager.mounts(pod, container(pod)) == [Mount(str(real), "/all", True)]


def test_projected_sources_report_every_failure(manager: VolumeManager) -> None:
    pod = make_pod(
        [
            {
                "name": "all",
                "projected": {"sources": [{"configMap": {"name": "a"}}, {"secret": {"name": "b"}}]},
            }
        ]
    )
    assert setup_error(manager, pod).message == (
        'MountVolume.SetUp failed for volume "all" : '
        '[configmap "a" not found, secret "b" not found]'
    )


def test_a_projected_service_account_token_is_refused_rather_than_faked(
    manager: VolumeManager,
) -> None:
    pod = make_pod(
        [
            {
                "name": "kube-api-access",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            }
        ]
    )
    err = setup_error(manager, pod)
    assert err.message.startswith('MountVolume.SetUp failed for volume "kube-api-access" : ')
    assert "serviceAccountToken" in err.message and "not supported yet" in err.message
    assert not err.retryable


# --- persistentVolumeClaim ----------------------------------------------------------


def pvc(
    name: str, phase: str = "Bound", volume: str = "pv-1", uid: str = "claim-uid"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid},
        "spec": {"volumeName": volume},
        "status": {"phase": phase},
    }


def pv(name: str, source: dict[str, Any], claim_uid: str | None = "claim-uid") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        **source,
    }
    if claim_uid is not None:
        spec["claimRef"] = {"name": "data", "namespace": "default", "uid": claim_uid}
    return {"metadata": {"name": name}, "spec": spec}


def claim_pod(read_only: bool = False, **mount: Any) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": "data"}
    if read_only:
        source["readOnly"] = True
    return make_pod(
        [{"name": "data", "persistentVolumeClaim": source}],
        [{"name": "data", "mountPath": "/data", **mount}],
    )


def test_a_bound_claim_mounts_its_volumes_host_path(
    manager: VolumeManager, source: MemorySource, tmp_path: Path
) -> None:
    store = tmp_path / "pv-1"
    source.put("persistentvolumeclaims", pvc("data"))
    source.put(
        "persistentvolumes",
        pv("pv-1", {"hostPath": {"path": str(store), "type": "DirectoryOrCreate"}}),
        "",
    )
    pod = claim_pod()
    setup(manager, pod)
    assert store.is_dir()
    assert manager.mounts(pod, container(pod)) == [Mount(str(store), "/data", False)]
    read_only = claim_pod(read_only=True)
    setup(manager, read_only)
    assert manager.mounts(read_only, container(read_only))[0].read_only


def test_a_local_volume_must_exist(
    manager: VolumeManager, source: MemorySource, tmp_path: Path
) -> None:
    source.put("persistentvolumeclaims", pvc("data"))
    source.put("persistentvolumes", pv("pv-1", {"local": {"path": str(tmp_path / "disk")}}), "")
    err = setup_error(manager, claim_pod())
    assert err.message == (
        'MountVolume.NewMounter initialization failed for volume "pv-1" : '
        f'path "{tmp_path / "disk"}" does not exist'
    )
    (tmp_path / "disk").mkdir()
    pod = claim_pod()
    setup(manager, pod)
    assert manager.mounts(pod, container(pod))[0].host_path == str(tmp_path / "disk")


@pytest.mark.parametrize(
    ("claim", "volume", "detail"),
    [
        (
            None,
            None,
            'failed to fetch PVC from API server: persistentvolumeclaims "data" not found',
        ),
        (pvc("data", phase="Pending"), None, "PVC is not bound"),
        (pvc("data", volume=""), None, "PVC has empty pvc.Spec.VolumeName"),
        (
            pvc("data"),
            None,
            'failed to fetch PV pv-1 from API server: persistentvolumes "pv-1" not found',
        ),
        (
            pvc("data"),
            pv("pv-1", {"hostPath": {"path": "/tmp"}}, claim_uid=None),
            "nil pv.Spec.ClaimRef",
        ),
        (
            pvc("data"),
            pv("pv-1", {"hostPath": {"path": "/tmp"}}, claim_uid="other"),
            "does not point to claim.UID",
        ),
    ],
)
def test_claims_that_cannot_be_used_yet_say_why(
    manager: VolumeManager,
    source: MemorySource,
    claim: dict[str, Any] | None,
    volume: dict[str, Any] | None,
    detail: str,
) -> None:
    if claim is not None:
        source.put("persistentvolumeclaims", claim)
    if volume is not None:
        source.put("persistentvolumes", volume, "")
    err = setup_error(manager, claim_pod())
    assert err.message.startswith(
        "Unable to attach or mount volumes: unmounted volumes=[data]: "
        "error processing PVC default/data: "
    )
    assert detail in err.message and err.retryable


def test_a_claim_being_deleted_is_not_mounted(manager: VolumeManager, source: MemorySource) -> None:
    claim = pvc("data")
    claim["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    source.put("persistentvolumeclaims", claim)
    assert setup_error(manager, claim_pod()).message.endswith("PVC is being deleted")


def test_a_volume_type_the_kubelet_cannot_mount_is_named(
    manager: VolumeManager, source: MemorySource
) -> None:
    source.put("persistentvolumeclaims", pvc("data"))
    source.put("persistentvolumes", pv("pv-1", {"nfs": {"server": "nas", "path": "/x"}}), "")
    err = setup_error(manager, claim_pod())
    assert 'persistent volume type "nfs" of PV pv-1 is not supported' in err.message
    assert not err.retryable
    err = setup_error(manager, make_pod([{"name": "share", "csi": {"driver": "x"}}]))
    assert err.message.startswith(
        'MountVolume.SetUp failed for volume "share" : volume type "csi" is not supported'
    )
    assert not err.retryable


def test_an_ephemeral_volume_uses_the_claim_made_for_the_pod(
    manager: VolumeManager, source: MemorySource, tmp_path: Path
) -> None:
    claim = pvc("web-0-scratch")
    claim["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    source.put("persistentvolumeclaims", claim)
    source.put("persistentvolumes", pv("pv-1", {"hostPath": {"path": str(tmp_path)}}), "")
    pod = make_pod(
        [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}],
        [{"name": "scratch", "mountPath": "/scratch"}],
    )
    assert "(pod is not owner)" in setup_error(manager, pod).message
    claim["metadata"]["ownerReferences"] = [{"uid": "pod-uid-1", "controller": True}]
    setup(manager, pod)
    assert manager.mounts(pod, container(pod)) == [Mount(str(tmp_path), "/scratch", False)]


def test_every_failing_volume_is_reported_and_the_others_are_set_up(
    manager: VolumeManager,
) -> None:
    pod = make_pod(
        [
            {"name": "a", "configMap": {"name": "nope"}},
            {"name": "ok", "emptyDir": {}},
            {"name": "b", "secret": {"secretName": "nope"}},
        ]
    )
    err = setup_error(manager, pod)
    assert [f.volume for f in err.failures] == ["a", "b"] and err.volume == "a"
    assert vol_dir(manager, "kubernetes.io~empty-dir", "ok").is_dir()


# --- mounts: readOnly, subPath, subPathExpr -----------------------------------------


def scratch_pod(*mounts: dict[str, Any]) -> dict[str, Any]:
    return make_pod([{"name": "scratch", "emptyDir": {}}], list(mounts))


def test_read_only_and_sub_path_mounts_of_an_empty_dir(manager: VolumeManager) -> None:
    pod = scratch_pod(
        {"name": "scratch", "mountPath": "/ro", "readOnly": True},
        {"name": "scratch", "mountPath": "/logs", "subPath": "logs/app"},
    )
    setup(manager, pod)
    base = vol_dir(manager, "kubernetes.io~empty-dir", "scratch")
    assert manager.mounts(pod, container(pod)) == [
        Mount(str(base), "/ro", True),
        Mount(str(base / "logs" / "app"), "/logs", False),
    ]
    # The sub path was made as a directory with the volume's mode, as the kubelet does.
    assert mode(base / "logs") == 0o777 and mode(base / "logs" / "app") == 0o777


def test_sub_path_expr_expands_from_the_containers_environment(manager: VolumeManager) -> None:
    pod = scratch_pod({"name": "scratch", "mountPath": "/out", "subPathExpr": "pods/$(POD_NAME)"})
    setup(manager, pod)
    (m,) = manager.mounts(pod, container(pod), [("POD_NAME", "web-0")])
    assert m.host_path == str(
        vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "pods" / "web-0"
    )
    with pytest.raises(ContainerConfigError, match="missing value for POD_NAME"):
        manager.mounts(pod, container(pod), {"POD_NAME": ""})
    with pytest.raises(ContainerConfigError, match="missing value for POD_NAME"):
        manager.mounts(pod, container(pod))


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ("/etc", "error SubPath `/etc` must not be an absolute path"),
        ("a/../../etc", "unable to provision SubPath `a/../../etc`: must not contain '..'"),
        ("escape/passwd", 'failed to prepare subPath for volumeMount "scratch" of container "app"'),
    ],
)
def test_sub_paths_cannot_leave_the_volume(manager: VolumeManager, sub: str, message: str) -> None:
    pod = scratch_pod({"name": "scratch", "mountPath": "/x", "subPath": sub})
    setup(manager, pod)
    (vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "escape").symlink_to("/etc")
    with pytest.raises(ContainerConfigError) as err:
        manager.mounts(pod, container(pod))
    assert err.value.message == message and err.value.reason == "CreateContainerConfigError"


def test_a_mount_of_an_unknown_volume_is_a_config_error(manager: VolumeManager) -> None:
    pod = scratch_pod({"name": "other", "mountPath": "/x"})
    with pytest.raises(
        ContainerConfigError, match='cannot find volume "other" to mount into container "app"'
    ):
        manager.mounts(pod, container(pod))


def test_mounts_before_setup_say_the_volume_is_not_set_up(manager: VolumeManager) -> None:
    pod = scratch_pod({"name": "scratch", "mountPath": "/x"})
    with pytest.raises(ContainerConfigError, match="not set up"):
        manager.mounts(pod, container(pod))


# --- teardown and orphans -----------------------------------------------------------


def test_teardown_removes_the_pods_volumes_but_keeps_host_paths_and_volume_data(
    manager: VolumeManager, source: MemorySource, tmp_path: Path, memory_root: Path
) -> None:
    host = tmp_path / "host"
    store = tmp_path / "pv-data"
    source.put("persistentvolumeclaims", pvc("data"))
    source.put(
        "persistentvolumes",
        pv("pv-1", {"hostPath": {"path": str(store), "type": "DirectoryOrCreate"}}),
        "",
    )
    source.put("secrets", secret("s", {"a": b"1"}))
    pod = make_pod(
        [
            {"name": "scratch", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory"}},
            {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "s", "secret": {"secretName": "s"}},
        ]
    )
    setup(manager, pod)
    (host / "keep").write_text("1")
    (store / "keep").write_text("2")
    locked = vol_dir(manager, "kubernetes.io~empty-dir", "scratch") / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "f").write_text("x")
    locked.chmod(0o555)  # left behind by a container
    assert manager.pod_dirs() == ["pod-uid-1"]
    asyncio.run(manager.teardown("pod-uid-1"))
    assert not (manager.root / "pod-uid-1").exists()
    assert not (memory_root / "pod-uid-1").exists()
    assert (host / "keep").read_text() == "1" and (store / "keep").read_text() == "2"
    assert manager.pod_dirs() == []
    asyncio.run(manager.teardown("pod-uid-1"))  # idempotent


def test_pod_dirs_lists_every_pod_with_a_directory_on_disk(
    manager: VolumeManager, memory_root: Path
) -> None:
    assert manager.pod_dirs() == []
    setup(manager, make_pod([{"name": "a", "emptyDir": {}}], uid="uid-a"))
    setup(manager, make_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}], uid="uid-b"))
    (memory_root / "uid-c").mkdir()  # left on the tmpfs by a kubelet that died
    (manager.root / "stray-file").write_text("")
    assert manager.pod_dirs() == ["uid-a", "uid-b", "uid-c"]
    asyncio.run(manager.teardown("uid-c"))
    assert manager.pod_dirs() == ["uid-a", "uid-b"]


def test_a_pod_without_a_uid_is_refused(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "a", "emptyDir": {}}], uid="../x")
    with pytest.raises(VolumeError, match="uid"):
        setup(manager, pod)
    with pytest.raises(VolumeError, match="refusing"):
        asyncio.run(manager.teardown(".."))
