"""A pod uses its ServiceAccount token from inside, on podman AND on docker (issue 15):
the ServiceAccount admission gives the pod the ``kube-api-access-*`` projected volume,
the kubelet writes the token (requested through TokenRequest, bound to the pod), the
cluster CA and the namespace under ``/var/run/secrets/kubernetes.io/serviceaccount``,
and the pod lists pods through the ``kubernetes`` Service (``https://kubernetes.default.svc``,
the API server's endpoint on the bridge gateway) with that token — and gets a 403 for
what its Role does not grant (Secrets). A pod with ``automountServiceAccountToken:
false`` has no token at all."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kubeclient.rest import Client
from tests.integration.harness import run, started, until
from tests.integration.netharness import BUSYBOX, namespace, pod_log

pytestmark = pytest.mark.integration

NS = "sa"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://kubernetes.default.svc"

SCRIPT = (
    f"cat {SA_DIR}/namespace; echo; "
    f"head -c 27 {SA_DIR}/ca.crt; echo; "
    f"T=$(cat {SA_DIR}/token); "
    f'busybox wget -q --no-check-certificate --header "Authorization: Bearer $T" '
    f"-O /tmp/pods {API}/api/v1/namespaces/{NS}/pods && echo PODS-OK && "
    "busybox tr -d ' \\n' < /tmp/pods > /tmp/compact && head -c 30 /tmp/compact && echo && "
    'busybox grep -o \'"name":"lister"\' /tmp/compact | head -1; '
    f'busybox wget -q --no-check-certificate --header "Authorization: Bearer $T" '
    f"-O /tmp/secrets {API}/api/v1/namespaces/{NS}/secrets 2>&1 | head -c 300; echo; "
    "echo SECRETS-DONE"
)


def role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-lister"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }


def binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "pod-lister"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-lister"},
        "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": NS}],
    }


def client_pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                }
            ],
            **spec,
        },
    }


async def finished(client: Client, name: str) -> list[str]:
    async def done() -> bool:
        got = await client.get("v1", "pods", name, namespace=NS)
        return got.get("status", {}).get("phase") in ("Succeeded", "Failed")

    await until(f"pod {name} to finish", done, timeout=120)
    return await pod_log(client, NS, name)


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_a_pod_lists_pods_with_its_projected_token_and_only_what_its_role_allows(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with started(
        tmp_path_factory.mktemp(f"sa-{engine}"),
        runtime=engine,
        start_timeout=90.0,
        stop_timeout=90.0,
    ) as proc:

        async def body(client: Client) -> None:
            await client.create("v1", "namespaces", namespace(NS))
            await client.create(
                "v1", "serviceaccounts", {"metadata": {"name": "lister"}}, namespace=NS
            )
            await client.create("rbac.authorization.k8s.io/v1", "roles", role(), namespace=NS)
            await client.create(
                "rbac.authorization.k8s.io/v1", "rolebindings", binding(), namespace=NS
            )
            await client.create(
                "v1",
                "pods",
                client_pod("lister", SCRIPT, serviceAccountName="lister"),
                namespace=NS,
            )
            lines = await finished(client, "lister")
            print("\n".join(lines))
            assert lines[0] == NS, lines
            assert lines[1].startswith("-----BEGIN CERTIFICATE"), lines
            assert "PODS-OK" in lines, lines
            at = lines.index("PODS-OK")
            assert lines[at + 1].startswith('{"kind":"PodList"'), lines
            assert lines[at + 2] == '"name":"lister"', lines
            after = "\n".join(lines[at + 3 :])
            assert "403" in after and "SECRETS-DONE" in after, lines

            pod = await client.get("v1", "pods", "lister", namespace=NS)
            volume = next(
                v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")
            )
            sources = volume["projected"]["sources"]
            assert sources[0]["serviceAccountToken"]["expirationSeconds"] == 3607

            # The token is the pod's: bound to it, for the lister account.
            raw = await client.request(
                "POST",
                f"/api/v1/namespaces/{NS}/serviceaccounts/lister/token",
                body={
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "boundObjectRef": {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "name": "lister",
                            "uid": pod["metadata"]["uid"],
                        }
                    },
                },
            )
            claims_part = raw["status"]["token"].split(".")[1]
            claims = json.loads(
                base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4))
            )
            assert claims["sub"] == f"system:serviceaccount:{NS}:lister"
            assert claims["kubernetes.io"]["pod"]["name"] == "lister"

            await client.create(
                "v1",
                "pods",
                client_pod(
                    "no-token",
                    f"ls {SA_DIR} 2>&1; echo DONE",
                    automountServiceAccountToken=False,
                ),
                namespace=NS,
            )
            lines = await finished(client, "no-token")
            assert "No such file or directory" in "\n".join(lines), lines

        run(proc, body)
