"""What the podman runtime asks the libpod API for (runtime/kubelet/runtimes/podman.py):
the pod and container specs carry every setting of the kubelet's configs."""

from __future__ import annotations

from runtime.kubelet import cri
from runtime.kubelet.cri import (
    ContainerConfig,
    DNSConfig,
    Mount,
    PortMapping,
    Resources,
    SandboxConfig,
    SecurityConfig,
)
from runtime.kubelet.runtimes.podman import _Pod, container_spec, sandbox_spec


def _sandbox(**kw: object) -> SandboxConfig:
    return SandboxConfig(
        pod_uid="u1", name="web", namespace="ns", hostname="web-0", labels={"x": "y"}, **kw
    )  # type: ignore[arg-type]


def test_a_pod_sandbox_shares_net_ipc_uts_and_carries_hostname_ports_dns_and_aliases() -> None:
    spec = sandbox_spec(
        _sandbox(
            port_mappings=(
                PortMapping(80, 8080, "TCP", "127.0.0.1"),
                PortMapping(53, 0, "UDP"),  # not published: left out
                PortMapping(53, 5353, "UDP"),
            ),
            dns=DNSConfig(("10.0.0.10",), ("ns.svc.cluster.local",), ("ndots:5",)),
            host_aliases=(("1.2.3.4", ("foo", "bar")),),
        )
    )
    assert spec["name"] == "k8s_web_ns_u1_0" and spec["infra_name"] == "k8s_web_ns_u1_0-infra"
    assert spec["shared_namespaces"] == ["net", "ipc", "uts"]
    assert spec["hostname"] == "web-0"
    assert spec["portmappings"] == [
        {"host_ip": "127.0.0.1", "container_port": 80, "host_port": 8080, "protocol": "tcp"},
        {"host_ip": "", "container_port": 53, "host_port": 5353, "protocol": "udp"},
    ]
    assert spec["dns_server"] == ["10.0.0.10"]
    assert spec["dns_search"] == ["ns.svc.cluster.local"]
    assert spec["dns_option"] == ["ndots:5"]
    assert spec["hostadd"] == ["foo:1.2.3.4", "bar:1.2.3.4"]
    assert spec["labels"]["x"] == "y"
    assert spec["labels"][cri.LABEL_POD_UID] == "u1"
    assert "netns" not in spec


def test_a_host_network_sandbox_uses_the_hosts_network_and_uts_namespaces() -> None:
    spec = sandbox_spec(_sandbox(host_network=True))
    assert spec["netns"] == {"nsmode": "host"} and spec["utsns"] == {"nsmode": "host"}
    assert "net" in spec["shared_namespaces"] and "uts" not in spec["shared_namespaces"]
    assert "hostname" not in spec and "portmappings" not in spec


POD = _Pod("k8s_web_ns_u1_0", "infra-id", {cri.LABEL_POD_UID: "u1", cri.LABEL_NODE: "n1"})


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    both = container_spec(
        POD, "pod-id", ContainerConfig("c", "img", command=("sh", "-c"), args=("echo hi",)),
        swap_limit=True,
    )  # fmt: skip
    assert both["entrypoint"] == ["sh"] and both["command"] == ["-c", "echo hi"]
    only_args = container_spec(
        POD, "pod-id", ContainerConfig("c", "img", args=("x",)), swap_limit=True
    )
    assert "entrypoint" not in only_args and only_args["command"] == ["x"]
    neither = container_spec(POD, "pod-id", ContainerConfig("c", "img"), swap_limit=True)
    assert "entrypoint" not in neither and "command" not in neither


def test_a_container_spec_carries_env_mounts_user_security_limits_and_log_path() -> None:
    config = ContainerConfig(
        name="app",
        image="localhost/busybox:latest",
        working_dir="/w",
        env=(("A", "1"), ("B", "two")),
        mounts=(Mount("/h/a", "/a"), Mount("/h/b", "/b", read_only=True)),
        labels={"k": "v"},
        resources=Resources(cpu_millis=500, memory_bytes=64 << 20, cpu_request_millis=250),
        security=SecurityConfig(
            run_as_user=1000,
            run_as_group=2000,
            read_only_root_filesystem=True,
            add_capabilities=("NET_ADMIN",),
            drop_capabilities=("ALL",),
            supplemental_groups=(3000,),
        ),
        stdin=True,
        tty=True,
        log_path="/var/log/pods/x/app/0.log",
    )
    spec = container_spec(POD, "pod-id", config, swap_limit=True)
    assert spec["pod"] == "pod-id" and spec["image"] == "localhost/busybox:latest"
    assert spec["name"].startswith("k8s_web_ns_u1_0--app--")
    assert spec["labels"][cri.LABEL_POD_UID] == "u1" and spec["labels"]["k"] == "v"
    assert spec["labels"][cri.LABEL_CONTAINER_NAME] == "app"
    assert spec["env"] == {"A": "1", "B": "two"} and spec["work_dir"] == "/w"
    assert spec["mounts"] == [
        {"destination": "/a", "source": "/h/a", "type": "bind", "options": ["rbind", "rw"]},
        {"destination": "/b", "source": "/h/b", "type": "bind", "options": ["rbind", "ro"]},
    ]
    assert spec["user"] == "1000:2000" and spec["groups"] == ["3000"]
    assert spec["read_only_filesystem"] is True and spec["read_only_tmpfs"] is False
    assert spec["privileged"] is False
    assert spec["cap_add"] == ["NET_ADMIN"] and spec["cap_drop"] == ["ALL"]
    assert spec["resource_limits"] == {
        "cpu": {"period": 100_000, "quota": 50_000, "shares": 256},
        "memory": {"limit": 64 << 20, "swap": 64 << 20},
    }
    assert spec["stdin"] is True and spec["terminal"] is True
    assert spec["log_configuration"] == {"driver": "k8s-file", "path": "/var/log/pods/x/app/0.log"}


def test_a_group_without_a_user_keeps_root_and_no_swap_limit_where_unsupported() -> None:
    config = ContainerConfig(
        "c", "img", security=SecurityConfig(run_as_group=5), resources=Resources(memory_bytes=1)
    )
    spec = container_spec(POD, "p", config, swap_limit=False)
    assert spec["user"] == "0:5"
    assert spec["resource_limits"] == {"memory": {"limit": 1}}
