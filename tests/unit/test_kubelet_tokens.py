"""Projected ``serviceAccountToken`` volume sources (runtime.kubelet.volumes with
runtime.kubelet.tokens): the TokenRequest the kubelet sends, the token file, the token
manager's refresh at 80 % of the TTL or 24 h, keeping a still-valid token when a
refresh fails, and the retryable failure while the ServiceAccount does not exist."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from kubeclient.rest import Client, KubeError
from runtime.auth.serviceaccount_admission import token_volume_source
from runtime.kubelet.tokens import ClientTokenRequester, TokenError, TokenManager
from runtime.kubelet.volumes import VolumeError, VolumeManager
from tests.unit.test_kubelet_volumes import MemorySource, cm, make_pod

NOW = 1_800_000_000.0
VOLUME = "kube-api-access-abcde"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class FakeRequester:
    """Answers TokenRequests as the API server would, or fails as told."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: str = ""

    async def request_token(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.sent.append((namespace, name, body))
        if self.fail:
            raise TokenError(self.fail)
        expires = dt.datetime.fromtimestamp(
            self.clock.now + body["spec"]["expirationSeconds"], dt.UTC
        )
        return {
            "status": {
                "token": f"token-{len(self.sent)}",
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }


@pytest.fixture
def memory_root() -> Iterator[Path]:
    path = Path("/dev/shm") / f"gitops-test-{uuid.uuid4().hex}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Setup:
    def __init__(self, tmp_path: Path, memory_root: Path) -> None:
        self.clock = Clock()
        self.requester = FakeRequester(self.clock)
        self.tokens = TokenManager(self.requester, clock=self.clock, jitter=lambda: 0.0)
        self.source = MemorySource()
        self.source.put("configmaps", cm("kube-root-ca.crt", {"ca.crt": "PEM"}))
        self.manager = VolumeManager(
            tmp_path / "pods", self.source, memory_root=memory_root, tokens=self.tokens
        )
        self.pod = make_pod(
            [{"name": VOLUME, "projected": token_volume_source()}],
            [{"name": VOLUME, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            serviceAccountName="robot",
        )

    def setup(self) -> None:
        asyncio.run(self.manager.setup(self.pod, node_name="node-1"))

    def refresh(self) -> bool:
        return asyncio.run(self.manager.refresh(self.pod))

    def file(self, name: str) -> Path:
        root = self.manager.root / "pod-uid-1" / "volumes" / "kubernetes.io~projected" / VOLUME
        return root.resolve() / name


@pytest.fixture
def kubelet(tmp_path: Path, memory_root: Path) -> Setup:
    return Setup(tmp_path, memory_root)


def test_the_kube_api_access_volume_gets_a_pod_bound_token_ca_and_namespace(
    kubelet: Setup,
) -> None:
    kubelet.setup()
    assert kubelet.requester.sent == [
        (
            "default",
            "robot",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": [],
                    "expirationSeconds": 3607,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": "web-0",
                        "uid": "pod-uid-1",
                    },
                },
            },
        )
    ]
    assert kubelet.file("token").read_text() == "token-1"
    assert stat.S_IMODE(kubelet.file("token").resolve().stat().st_mode) == 0o644
    assert kubelet.file("ca.crt").read_text() == "PEM"
    assert kubelet.file("namespace").read_text() == "default"


def test_a_projected_audience_is_asked_for(kubelet: Setup) -> None:
    source = token_volume_source()
    source["sources"][0]["serviceAccountToken"]["audience"] = "vault"
    kubelet.pod["spec"]["volumes"][0]["projected"] = source
    kubelet.setup()
    assert kubelet.requester.sent[0][2]["spec"]["audiences"] == ["vault"]


def test_the_token_is_reused_until_eighty_percent_of_its_ttl_then_refreshed(
    kubelet: Setup,
) -> None:
    kubelet.setup()
    kubelet.clock.now = NOW + 3607 * 0.8 - 1
    assert kubelet.refresh() is False
    assert len(kubelet.requester.sent) == 1
    kubelet.clock.now = NOW + 3607 * 0.8 + 1
    assert kubelet.refresh() is True
    assert len(kubelet.requester.sent) == 2
    assert kubelet.file("token").read_text() == "token-2"


def test_a_long_lived_token_is_refreshed_after_a_day(kubelet: Setup) -> None:
    kubelet.pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"][
        "expirationSeconds"
    ] = 7 * 24 * 3600
    kubelet.setup()
    kubelet.clock.now = NOW + 24 * 3600 - 1
    kubelet.refresh()
    assert len(kubelet.requester.sent) == 1
    kubelet.clock.now = NOW + 24 * 3600 + 1
    kubelet.refresh()
    assert len(kubelet.requester.sent) == 2


def test_a_failed_refresh_keeps_the_token_while_it_is_valid(kubelet: Setup) -> None:
    kubelet.setup()
    kubelet.requester.fail = "the server is currently unable to handle the request"
    kubelet.clock.now = NOW + 3607 - 10
    assert kubelet.refresh() is False
    assert kubelet.file("token").read_text() == "token-1"
    kubelet.clock.now = NOW + 3607 + 1
    with pytest.raises(VolumeError) as err:
        kubelet.refresh()
    assert "expired and refresh failed" in err.value.message


def test_a_missing_service_account_fails_the_mount_retryably_until_it_exists(
    kubelet: Setup,
) -> None:
    kubelet.requester.fail = 'serviceaccounts "robot" not found'
    with pytest.raises(VolumeError) as err:
        kubelet.setup()
    assert err.value.retryable
    assert err.value.message == (
        f'MountVolume.SetUp failed for volume "{VOLUME}" : '
        'failed to fetch token: serviceaccounts "robot" not found'
    )
    kubelet.requester.fail = ""
    kubelet.setup()
    assert kubelet.file("token").read_text() == "token-2"


def test_teardown_forgets_the_pods_tokens(kubelet: Setup) -> None:
    kubelet.setup()
    asyncio.run(kubelet.manager.teardown("pod-uid-1"))
    kubelet.setup()
    assert len(kubelet.requester.sent) == 2


def test_the_client_requester_posts_to_the_token_subresource() -> None:
    class FakeClient:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, Any]] = []

        async def request(self, method: str, path: str, *, body: Any = None) -> Any:
            self.calls.append((method, path, body))
            if path.endswith("/ghost/token"):
                raise KubeError(404, "NotFound", 'serviceaccounts "ghost" not found')
            return {"status": {"token": "t"}}

    fake = FakeClient()
    requester = ClientTokenRequester(cast(Client, fake))
    out = asyncio.run(requester.request_token("ns", "robot", {"spec": {}}))
    assert out == {"status": {"token": "t"}}
    assert fake.calls == [
        ("POST", "/api/v1/namespaces/ns/serviceaccounts/robot/token", {"spec": {}})
    ]
    with pytest.raises(TokenError) as err:
        asyncio.run(requester.request_token("ns", "ghost", {}))
    assert err.value.message == 'serviceaccounts "ghost" not found' and err.value.retryable
