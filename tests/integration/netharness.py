"""Helpers of the networking tests that run real pods on podman and docker
(test_networking_engines, test_service_semantics_engines): client pods that fetch URLs
and print what they got (there is no ``kubectl exec``; the tests read the pod log), the
host's view of the service proxy's iptables rules, ready endpoints and pods, plain HTTP
requests to the host ports and DNS questions to the cluster DNS."""

from __future__ import annotations

import functools
import subprocess
import urllib.error
import urllib.request
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped, unused-ignore]

from kubeclient.rest import Client
from tests.integration import harness
from tests.integration.harness import BUSYBOX

DEADLINE = 120.0

# Any API error only means "not yet" on a slow engine.
until = functools.partial(harness.until, timeout=DEADLINE, step=0.5, tolerate=harness.any_error)


def gitops_rules() -> list[str]:
    """Our chains and the rules in and jumping to them, in the nat and filter tables."""
    found: list[str] = []
    for table in ("nat", "filter"):
        out = subprocess.run(
            ["iptables", "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=True
        )
        found += [line for line in out.stdout.splitlines() if "GITOPS" in line]
    return found


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def web_service(name: str, **spec: Any) -> dict[str, Any]:
    """A Service selecting ``app: name`` on port 80 → the container port named http,
    with ``spec`` merged in (``type``, ``sessionAffinity``, ``clusterIP``, ...)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            **spec,
        },
    }


def fetch_script(urls: list[str], repeat: int = 1) -> str:
    """Shell that fetches every URL ``repeat`` times, printing ``GOT <url> <body>`` (or
    ``FAILED <url> <error>``) per request."""
    return (
        f"i=0; while [ $i -lt {repeat} ]; do i=$((i+1)); "
        f"for u in {' '.join(urls)}; do "
        'if out=$(busybox timeout 10 wget -qO- "$u" 2>&1); then echo "GOT $u $out"; '
        'else echo "FAILED $u $out"; fi; done; done'
    )


def client_pod(name: str, script: str) -> dict[str, Any]:
    """A busybox pod running ``script`` once (its resolv.conf printed first, each line
    prefixed ``RESOLV``)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "client",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "sed 's/^/RESOLV /' /etc/resolv.conf; " + script],
                }
            ],
        },
    }


def fetch_pod(name: str, urls: list[str], repeat: int = 1) -> dict[str, Any]:
    return client_pod(name, fetch_script(urls, repeat))


def http_get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    """GET ``path`` from 127.0.0.1:``port`` with ``Host: host``: (status, body), status 0
    and the error when the request fails."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


async def ready_endpoints(client: Client, ns: str, service: str) -> list[str]:
    """The first address of every ready endpoint of ``service``'s EndpointSlices."""
    slices = await client.list(
        "discovery.k8s.io/v1",
        "endpointslices",
        ns,
        labelSelector=f"kubernetes.io/service-name={service}",
    )
    return [
        ep["addresses"][0]
        for s in slices.get("items") or []
        for ep in s.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready") is not False
    ]


async def ready_pods(client: Client, ns: str, selector: str) -> dict[str, str]:
    """Name → pod IP of the Running and Ready pods that ``selector`` selects (pods being
    deleted left out)."""
    pods = await client.list("v1", "pods", ns, labelSelector=selector)
    return {
        p["metadata"]["name"]: p["status"].get("podIP", "")
        for p in pods.get("items") or []
        if harness.running_and_ready(p) and not p["metadata"].get("deletionTimestamp")
    }


async def run_client(client: Client, ns: str, pod: dict[str, Any]) -> list[str]:
    """Run a client pod to completion; its output lines."""
    name = pod["metadata"]["name"]
    await client.create("v1", "pods", pod, namespace=ns)

    async def finished() -> bool:
        got = await client.get("v1", "pods", name, namespace=ns)
        return got.get("status", {}).get("phase") in ("Succeeded", "Failed")

    await until(f"client pod {name} to finish", finished)
    return await pod_log(client, ns, name)


async def pod_log(client: Client, ns: str, name: str) -> list[str]:
    raw = await client.get_raw(f"/api/v1/namespaces/{ns}/pods/{name}/log")
    return raw.decode().splitlines()


def results(lines: list[str]) -> list[tuple[str, str, str]]:
    """The (verdict, url, body) triples a fetch script printed."""
    out: list[tuple[str, str, str]] = []
    for line in lines:
        verdict, _, rest = line.partition(" ")
        if verdict in ("GOT", "FAILED"):
            url, _, body = rest.partition(" ")
            out.append((verdict, url, body.strip()))
    return out


async def cluster_dns_address(client: Client) -> str:
    """Where the cluster DNS server listens on the host: the address of the
    ``kube-system/kube-dns`` EndpointSlice (the engine bridge's gateway)."""
    (address,) = await until(
        "the kube-dns endpoint",
        lambda: ready_endpoints(client, "kube-system", "kube-dns"),
    )
    return str(address)


def dns_lookup(server: str, name: str, qtype: str = "A") -> tuple[str, list[str]]:
    """Ask the cluster DNS at ``server``:53 (UDP) for ``name``: the reply's RCODE name
    and its answers' data."""
    question = DNSRecord.question(name, qtype)
    reply = DNSRecord.parse(question.send(server, 53, timeout=3))
    return str(RCODE.get(reply.header.rcode)), [
        str(rr.rdata) for rr in reply.rr if rr.rtype == getattr(QTYPE, qtype)
    ]
