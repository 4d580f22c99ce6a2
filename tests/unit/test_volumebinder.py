"""The PersistentVolume binder's and local-path provisioner's pure decisions: which
volume a claim binds to, the default class, what a provisioned volume looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.api.storageclasses import claim_needs_default, default_class
from runtime.controllers.provisioner import (
    PROVISIONER,
    build_volume,
    default_storage_class,
    should_delete,
    wants_provisioning,
)
from runtime.controllers.volumebinder import (
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    claim_class,
    find_best_match,
    is_bound_to_claim,
    satisfy_problem,
)


def _pv(
    name: str,
    size: str,
    modes: list[str] | None = None,
    cls: str = "manual",
    labels: dict[str, str] | None = None,
    phase: str = "Available",
    claim_ref: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": modes or ["ReadWriteOnce"],
        "storageClassName": cls,
        "volumeMode": "Filesystem",
        "hostPath": {"path": f"/tmp/{name}"},
    }
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def _claim(
    size: str = "1Gi",
    modes: list[str] | None = None,
    cls: str | None = "manual",
    selector: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": modes or ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem",
    }
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    return {
        "metadata": {
            "name": "data",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "7",
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def _name(pv: Any) -> str | None:
    return None if pv is None else str(pv["metadata"]["name"])


def test_a_claim_binds_to_the_smallest_volume_that_is_big_enough() -> None:
    volumes = [_pv("big", "10Gi"), _pv("small", "500Mi"), _pv("fits", "2Gi"), _pv("ok", "5Gi")]
    assert _name(find_best_match(_claim("1Gi"), volumes, delay_binding=False)) == "fits"


def test_a_volume_lacking_the_claims_access_mode_is_never_chosen() -> None:
    volumes = [_pv("rwo", "1Gi"), _pv("rwx", "5Gi", ["ReadWriteMany", "ReadWriteOnce"])]
    claim = _claim("1Gi", ["ReadWriteMany"])
    assert _name(find_best_match(claim, volumes, delay_binding=False)) == "rwx"
    assert find_best_match(claim, volumes[:1], delay_binding=False) is None


def test_volumes_with_fewer_access_modes_are_preferred_over_smaller_ones() -> None:
    volumes = [_pv("many", "1Gi", ["ReadWriteOnce", "ReadOnlyMany"]), _pv("one", "5Gi")]
    assert _name(find_best_match(_claim("1Gi"), volumes, delay_binding=False)) == "one"


def test_the_claims_class_must_equal_the_volumes_and_empty_matches_only_classless() -> None:
    volumes = [_pv("fast", "1Gi", cls="fast"), _pv("none", "1Gi", cls="")]
    assert _name(find_best_match(_claim(cls="fast"), volumes, delay_binding=False)) == "fast"
    assert _name(find_best_match(_claim(cls=""), volumes, delay_binding=False)) == "none"
    assert find_best_match(_claim(cls="slow"), volumes, delay_binding=False) is None


def test_a_selector_limits_the_candidate_volumes() -> None:
    volumes = [_pv("a", "1Gi", labels={"tier": "a"}), _pv("b", "2Gi", labels={"tier": "b"})]
    claim = _claim(selector={"matchLabels": {"tier": "b"}})
    assert _name(find_best_match(claim, volumes, delay_binding=False)) == "b"
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["c"]}]}
    assert find_best_match(_claim(selector=expr), volumes, delay_binding=False) is None


def test_bound_released_and_block_volumes_are_not_candidates() -> None:
    ref = {"namespace": "default", "name": "other", "uid": "u-2"}
    block = _pv("block", "1Gi")
    block["spec"]["volumeMode"] = "Block"
    volumes = [
        _pv("bound", "1Gi", phase="Bound", claim_ref=ref),
        _pv("released", "1Gi", phase="Released", claim_ref=ref),
        block,
    ]
    assert find_best_match(_claim(), volumes, delay_binding=False) is None


def test_a_volume_pre_bound_to_the_claim_wins_even_when_binding_is_delayed() -> None:
    pre = _pv("pre", "8Gi", claim_ref={"namespace": "default", "name": "data"})
    volumes = [_pv("small", "1Gi"), pre]
    assert _name(find_best_match(_claim(), volumes, delay_binding=False)) == "pre"
    assert _name(find_best_match(_claim(), volumes, delay_binding=True)) == "pre"
    assert find_best_match(_claim(), volumes[:1], delay_binding=True) is None


def test_a_claim_ref_with_another_uid_is_not_this_claims() -> None:
    pv = _pv("x", "1Gi", claim_ref={"namespace": "default", "name": "data", "uid": "old"})
    assert not is_bound_to_claim(pv, _claim())
    pv["spec"]["claimRef"]["uid"] = "u-1"
    assert is_bound_to_claim(pv, _claim())


def test_a_requested_volume_that_cannot_serve_the_claim_says_why() -> None:
    assert satisfy_problem(_claim("2Gi"), _pv("x", "1Gi")) == "requested PV is too small"
    assert satisfy_problem(_claim(modes=["ReadWriteMany"]), _pv("x", "1Gi")) == (
        "incompatible accessMode"
    )
    assert satisfy_problem(_claim(cls="fast"), _pv("x", "1Gi")) == (
        "storageClassName does not match"
    )
    assert satisfy_problem(_claim(), _pv("x", "1Gi")) is None


def test_the_newest_default_class_is_the_default() -> None:
    def sc(name: str, created: str, default: bool) -> dict[str, Any]:
        ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann}}

    classes = [
        sc("old", "2024-01-01T00:00:00Z", True),
        sc("new", "2025-01-01T00:00:00Z", True),
        sc("newer-not-default", "2026-01-01T00:00:00Z", False),
    ]
    assert default_class(classes) == "new"
    assert default_class(classes[2:]) is None


def test_only_a_claim_without_any_class_gets_the_default() -> None:
    assert claim_needs_default(_claim(cls=None))
    assert not claim_needs_default(_claim(cls=""))
    beta = _claim(cls=None, annotations={"volume.beta.kubernetes.io/storage-class": "x"})
    assert not claim_needs_default(beta)
    assert claim_class(beta) == "x"


def test_the_default_local_path_class_waits_for_the_first_consumer_and_deletes() -> None:
    sc = default_storage_class()
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["provisioner"] == PROVISIONER


def test_a_wait_for_first_consumer_claim_is_provisioned_only_once_a_node_is_selected() -> None:
    sc = default_storage_class()
    claim = _claim(cls="local-path", annotations={ANN_STORAGE_PROVISIONER: PROVISIONER})
    assert not wants_provisioning(claim, sc)
    claim["metadata"]["annotations"][ANN_SELECTED_NODE] = "node-0"
    assert wants_provisioning(claim, sc)
    assert not wants_provisioning(claim, {**sc, "provisioner": "example.com/other"})
    immediate = {**sc, "volumeBindingMode": "Immediate"}
    no_node = _claim(cls="local-path", annotations={ANN_STORAGE_PROVISIONER: PROVISIONER})
    assert wants_provisioning(no_node, immediate)
    unannotated = _claim(cls="local-path")
    assert not wants_provisioning(unannotated, immediate)


def test_a_provisioned_volume_is_pre_bound_sized_and_pinned_to_the_selected_node() -> None:
    claim = _claim("3Gi", cls="local-path", annotations={ANN_SELECTED_NODE: "node-1"})
    pv = build_volume(claim, default_storage_class(), Path("/state/volumes/pvc-u-1"))
    assert pv["metadata"]["name"] == "pvc-u-1"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "3Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == "local-path"
    assert spec["hostPath"]["path"] == "/state/volumes/pvc-u-1"
    assert spec["claimRef"]["uid"] == "u-1"
    terms = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["node-1"]
    shared = _claim(modes=["ReadWriteMany"], annotations={ANN_SELECTED_NODE: "node-1"})
    assert "nodeAffinity" not in build_volume(shared, default_storage_class(), Path("/x"))["spec"]


def test_only_released_volumes_of_ours_with_delete_policy_are_deleted() -> None:
    claim = _claim(cls="local-path")
    pv = build_volume(claim, default_storage_class(), Path("/x"))
    pv["status"] = {"phase": "Bound"}
    assert not should_delete(pv)
    pv["status"] = {"phase": "Released"}
    assert should_delete(pv)
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert not should_delete(pv)
