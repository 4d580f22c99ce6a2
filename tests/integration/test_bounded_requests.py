"""The API server reads request bodies within bounds (issue 15): a body over kube-apiserver's
3 MiB is refused unread (413), one nested deeper than 128 levels or a YAML alias bomb is
a 400, a media type it does not decode a 415, an object over etcd's 1.5 MiB a 413 — each
a Status, nothing stored, and the server's memory stays where it was. Real HTTPS against
a ``gitops cluster up`` process."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ClusterProcess

pytestmark = pytest.mark.integration

CMS = "/api/v1/namespaces/default/configmaps"


def post(
    proc: ClusterProcess, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        proc.url + path,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {proc.token}", "Content-Type": content_type},
    )
    context = ssl.create_default_context(cafile=str(proc.ca))
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def exists(proc: ClusterProcess, name: str) -> bool:
    request = urllib.request.Request(
        f"{proc.url}{CMS}/{name}", headers={"Authorization": f"Bearer {proc.token}"}
    )
    try:
        with urllib.request.urlopen(
            request, context=ssl.create_default_context(cafile=str(proc.ca)), timeout=30
        ):
            return True
    except urllib.error.HTTPError as err:
        assert err.code == 404
        return False


def rss_kib(proc: ClusterProcess) -> int:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_hostile_bodies_get_a_status_and_nothing_is_stored(cluster: ClusterProcess) -> None:
    before = rss_kib(cluster)
    # Over the 3 MiB body limit: refused before it is read whole.
    code, status = post(cluster, CMS, json.dumps(configmap("huge", a="x" * (4 << 20))).encode())
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge")
    assert status["message"] == "Request entity too large: limit is 3145728"
    # Under the body limit, over etcd's object limit (a PodTemplate: ConfigMaps and
    # Secrets stop at 1 MiB of data in validation already).
    template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "big"},
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "env": [{"name": "A", "value": "x" * (2 << 20)}],
                    }
                ]
            }
        },
    }
    code, status = post(
        cluster, "/api/v1/namespaces/default/podtemplates", json.dumps(template).encode()
    )
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge"), status
    assert "at most 1572864 bytes" in str(status["message"])
    for depth in (300, 990):
        nested = '{"a":' * depth + '"leaf"' + "}" * depth
        meta = '"metadata":{"name":"deep-' + str(depth) + '","x":' + nested + "}"
        body = '{"apiVersion":"v1","kind":"ConfigMap",' + meta + "}"
        code, status = post(cluster, CMS, body.encode())
        assert code == 400, status
        assert "nested deeper than 128 levels" in str(status["message"])
    # The 412-byte class of YAML alias bomb.
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx:\n"
    bomb += "  a: &a [x,x,x,x,x,x,x,x,x]\n"
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        bomb += f"  {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    code, status = post(cluster, CMS, bomb.encode(), "application/yaml")
    assert code == 400 and "aliasing" in str(status["message"]), status
    code, status = post(cluster, CMS, b"name=plain", "text/plain")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    for name in ("huge", "deep-300", "deep-990", "bomb"):
        assert not exists(cluster, name), name
    assert rss_kib(cluster) - before < 100 * 1024, "the server's memory grew by over 100 MiB"
    # Within bounds, YAML and JSON still work.
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {port: '1:30'}\n"
    code, created = post(cluster, CMS, yaml_body, "application/yaml")
    assert code == 201 and created["data"] == {"port": "1:30"}
