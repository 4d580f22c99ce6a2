"""The kubelet's security settings (runtime.kubelet.security): each securityContext field
honoured or refused with the kubelet's words, never ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.kubelet.security import SecurityRefused, security_config, verify_run_as_non_root


def pod(container_sc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
        "spec": {"containers": [{"name": "c", "securityContext": container_sc or {}}], **spec},
    }


def config(p: dict[str, Any], root: Path = Path("/nonexistent")) -> Any:
    return security_config(p, p["spec"]["containers"][0], root)


def test_the_container_context_wins_over_the_pods_and_every_field_reaches_the_engine() -> None:
    p = pod(
        {"runAsUser": 1000, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        securityContext={"runAsUser": 5, "runAsGroup": 7, "supplementalGroups": [9]},
        hostPID=True,
        hostIPC=True,
    )
    sec = config(p)
    assert (sec.run_as_user, sec.run_as_group, sec.supplemental_groups) == (1000, 7, (9,))
    assert sec.no_new_privileges and sec.drop_capabilities == ("ALL",)
    assert sec.host_pid and sec.host_ipc
    assert sec.seccomp_profile == "unconfined"  # no profile asked: Kubernetes' default


def test_seccomp_profiles_map_to_the_engines_and_a_localhost_profile_must_exist(
    tmp_path: Path,
) -> None:
    assert config(pod({"seccompProfile": {"type": "Unconfined"}})).seccomp_profile == "unconfined"
    assert config(pod({})).seccomp_profile == "unconfined"
    assert (
        config(pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})).seccomp_profile
        == ""
    )
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "audit.json").write_text("{}")
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}
    assert config(pod(local), tmp_path).seccomp_profile == str(tmp_path / "profiles/audit.json")
    missing = {"seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}}
    with pytest.raises(SecurityRefused, match="does not exist on the node"):
        config(pod(missing), tmp_path)
    escape = {"seccompProfile": {"type": "Localhost", "localhostProfile": "../../etc/x"}}
    with pytest.raises(SecurityRefused, match=r"without '\.\.'"):
        config(pod(escape), tmp_path)


def test_an_unmasked_proc_mount_is_refused_not_ignored() -> None:
    with pytest.raises(SecurityRefused, match="procMount 'Unmasked' is not supported"):
        config(pod({"procMount": "Unmasked"}))
    assert config(pod({"procMount": "Default"})).run_as_user is None


def test_run_as_non_root_is_verified_as_the_kubelet_does() -> None:
    container = {"name": "c"}
    non_root = pod(securityContext={"runAsNonRoot": True})
    with pytest.raises(SecurityRefused) as caught:
        verify_run_as_non_root(non_root, container, "")
    assert caught.value.message == (
        'container has runAsNonRoot and image will run as root (pod: "web_shop(u-1)", container: c)'
    )
    assert caught.value.reason == "CreateContainerConfigError"
    verify_run_as_non_root(non_root, container, "1000")
    verify_run_as_non_root(non_root, container, "1000:1000")
    with pytest.raises(SecurityRefused, match=r"non-numeric user \(app\)"):
        verify_run_as_non_root(non_root, container, "app")
    as_root = pod(securityContext={"runAsNonRoot": True, "runAsUser": 0})
    with pytest.raises(SecurityRefused, match="runAsUser breaks non-root policy"):
        verify_run_as_non_root(as_root, container, "1000")
    verify_run_as_non_root(pod(), container, "")  # not asked: root is fine
