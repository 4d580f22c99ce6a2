"""Where pods reach the host (runtime.kubelet.runtimes.bridge) and the docker sandbox
image made from the host's static binaries (runtime.kubelet.runtimes.sandbox_image),
including what a first-start dockerd reports (its bridge network with no IPAM gateway)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import sys
import tarfile
from pathlib import Path

import pytest

from runtime.kubelet.cri import RuntimeError_
from runtime.kubelet.runtimes.bridge import (
    GatewayUnknown,
    bridge_gateway,
    first_host,
    interface_ipv4,
)
from runtime.kubelet.runtimes.docker import DockerRuntime
from runtime.kubelet.runtimes.sandbox_image import NoPauseBinary, is_static_elf, pause_rootfs


def elf64(*segment_types: int) -> bytes:
    """A minimal little-endian ELF64 executable header with these program headers."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # 64-bit
    header[5] = 1  # little endian
    struct.pack_into("<Q", header, 32, 64)  # e_phoff
    struct.pack_into("<HH", header, 54, 56, len(segment_types))  # e_phentsize, e_phnum
    table = b"".join(struct.pack("<I", kind) + bytes(52) for kind in segment_types)
    return bytes(header) + table


# --- the bridge gateway ----------------------------------------------------------------
def test_the_gateway_the_engine_states_is_used_first() -> None:
    assert (
        bridge_gateway("bridge", gateways=["172.18.0.1"], subnets=["172.17.0.0/16"], interface="lo")
        == "172.18.0.1"
    )


def test_without_a_stated_gateway_the_bridge_interface_address_is_used() -> None:
    assert (
        bridge_gateway("bridge", gateways=[""], subnets=["127.0.0.0/8"], interface="lo")
        == "127.0.0.1"
    )


def test_an_interface_address_outside_the_subnet_is_not_taken_for_the_gateway() -> None:
    assert (
        bridge_gateway("bridge", gateways=[], subnets=["172.17.0.0/16"], interface="lo")
        == "172.17.0.1"
    )


def test_a_bridge_that_does_not_exist_yet_falls_back_to_the_subnets_first_host() -> None:
    assert interface_ipv4("gitops-nope0") is None
    assert (
        bridge_gateway("podman", gateways=[], subnets=["10.88.0.0/16"], interface="gitops-nope0")
        == "10.88.0.1"
    )


def test_ipv6_gateways_and_subnets_are_passed_over_for_ipv4_ones() -> None:
    assert (
        bridge_gateway(
            "bridge", gateways=["fd00::1"], subnets=["fd00::/64", "10.0.5.0/24"], interface=None
        )
        == "10.0.5.1"
    )


def test_a_network_with_nothing_to_go_by_raises_saying_what_was_seen() -> None:
    with pytest.raises(GatewayUnknown) as caught:
        bridge_gateway("bridge", gateways=[], subnets=[], interface="gitops-nope0")
    message = str(caught.value)
    assert "'bridge'" in message and "gitops-nope0" in message and "no IPv4 subnet" in message


def test_first_host_refuses_subnets_too_small_or_malformed() -> None:
    assert first_host("10.1.2.0/24") == "10.1.2.1"
    assert first_host("10.1.2.0/31") is None
    assert first_host("not-a-subnet") is None


def test_interface_names_that_cannot_name_an_interface_give_no_address() -> None:
    assert interface_ipv4("") is None
    assert interface_ipv4("x" * 20) is None
    assert interface_ipv4("../lo") is None


FIRST_START_BRIDGE = [
    {
        "Name": "bridge",
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.17.0.0/16"}]},
        "Options": {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.name": "gitops-nope0",
        },
    }
]


def fake_docker(tmp_path: Path, output: object, code: int = 0) -> str:
    script = tmp_path / "docker"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + json.dumps(output) + f"\nEOF\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_a_first_start_dockerd_without_an_ipam_gateway_still_gives_the_bridge_address(
    tmp_path: Path,
) -> None:
    # What `docker network inspect bridge` prints on a dockerd started for the first time.
    runtime = DockerRuntime(binary=fake_docker(tmp_path, FIRST_START_BRIDGE))
    assert asyncio.run(runtime.network_gateway()) == "172.17.0.1"


def test_docker_without_a_usable_bridge_network_raises_instead_of_answering_none(
    tmp_path: Path,
) -> None:
    network = [
        {
            "Name": "bridge",
            "IPAM": {"Config": []},
            "Options": {"com.docker.network.bridge.name": "gitops-nope0"},
        }
    ]
    runtime = DockerRuntime(binary=fake_docker(tmp_path, network))
    with pytest.raises(RuntimeError_, match="no IPv4 subnet"):
        asyncio.run(runtime.network_gateway())
    (tmp_path / "broken").mkdir()
    broken = DockerRuntime(binary=fake_docker(tmp_path / "broken", [], code=1))
    with pytest.raises(RuntimeError_, match="cannot inspect docker's bridge network"):
        asyncio.run(broken.network_gateway())


# --- the pause image -------------------------------------------------------------------
def test_static_elf_detection_looks_for_a_program_interpreter(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.write_bytes(elf64(1, 1, 4))  # LOAD, LOAD, NOTE
    dynamic = tmp_path / "dynamic"
    dynamic.write_bytes(elf64(6, 3, 1))  # PHDR, INTERP, LOAD
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert is_static_elf(static)
    assert not is_static_elf(dynamic)
    assert not is_static_elf(script)
    assert not is_static_elf(tmp_path / "missing")
    assert not is_static_elf(Path(sys.executable).resolve())  # CPython is dynamically linked


def members(tar_bytes: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_pause_image_prefers_a_static_catatonit_in_pause_mode(tmp_path: Path) -> None:
    (tmp_path / "catatonit").write_bytes(elf64(1))
    (tmp_path / "busybox").write_bytes(elf64(1))
    rootfs = pause_rootfs([str(tmp_path / "catatonit")], [str(tmp_path / "busybox")])
    assert rootfs.cmd == ("/bin/pause", "-P")
    found = members(rootfs.tar)
    assert found["bin/pause"].mode == 0o755 and found["bin/pause"].size == len(elf64(1))
    assert rootfs.import_changes() == ["ENV PATH=/bin", 'CMD ["/bin/pause", "-P"]']


def test_a_dynamic_catatonit_is_passed_over_for_a_static_busybox(tmp_path: Path) -> None:
    (tmp_path / "catatonit").write_bytes(elf64(3, 1))
    (tmp_path / "busybox").write_bytes(elf64(1))
    rootfs = pause_rootfs([str(tmp_path / "catatonit")], [str(tmp_path / "busybox")])
    assert rootfs.cmd[:2] == ("/bin/sh", "-c") and "trap exit TERM INT" in rootfs.cmd[2]
    found = members(rootfs.tar)
    assert found["bin/sh"].linkname == "busybox" and found["bin/sleep"].linkname == "busybox"
    assert found["tmp"].mode == 0o1777


def test_without_any_static_binary_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(NoPauseBinary, match="apt-get install catatonit"):
        pause_rootfs([str(tmp_path / "none")], [str(tmp_path / "none-either")])


def test_docker_gets_container_env_from_a_private_file_and_multi_line_values_by_name(
    tmp_path: Path,
) -> None:
    from runtime.kubelet.cri import InvalidConfig
    from runtime.kubelet.runtimes.docker import container_env

    env = (("A", "1"), ("PASSWORD", "hunter2 = x"), ("PEM", "line1\nline2"))
    args, cli_env = container_env(env, tmp_path / "env", {"DOCKER_HOST": "unix:///x"})
    assert args == ["--env-file", str(tmp_path / "env"), "-e", "PEM"]
    assert (tmp_path / "env").read_text() == "A=1\nPASSWORD=hunter2 = x\n"
    assert (tmp_path / "env").stat().st_mode & 0o777 == 0o600
    assert cli_env == {"DOCKER_HOST": "unix:///x", "PEM": "line1\nline2"}
    with pytest.raises(InvalidConfig, match="DOCKER_HOST"):
        container_env((("DOCKER_HOST", "tcp://evil\n"),), tmp_path / "env2", {})
