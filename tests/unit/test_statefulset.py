"""Pure logic of the StatefulSet controller and the shared revision history: pod identity,
claims and their retention-policy ownerReferences, partitions, revision naming/pruning."""

from __future__ import annotations

from typing import Any

from runtime.controllers import history
from runtime.controllers.statefulset import (
    claim_owner_refs,
    new_claim,
    new_pod,
    ordinal_of,
    uses_current_revision,
)


def _sts(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
        "spec": {
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "c", "image": "i"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "data"}],
                },
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": {"tier": "db"}}, "spec": {}}
            ],
            **spec,
        },
    }


def test_a_stateful_pod_has_its_identity_and_mounts_its_own_claim() -> None:
    sts = _sts()
    pod = new_pod(sts, sts["spec"]["template"], 1, "web-abc")
    assert pod["metadata"]["name"] == "web-1"
    assert pod["spec"]["hostname"] == "web-1"
    assert pod["spec"]["subdomain"] == "nginx"
    assert pod["metadata"]["labels"] == {
        "app": "web",
        "statefulset.kubernetes.io/pod-name": "web-1",
        "apps.kubernetes.io/pod-index": "1",
        "controller-revision-hash": "web-abc",
    }
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


def test_a_claim_is_named_after_template_set_and_ordinal_with_the_selector_labels() -> None:
    claim = new_claim(_sts(), _sts()["spec"]["volumeClaimTemplates"][0], 2)
    assert claim["metadata"]["name"] == "data-web-2"
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert "ownerReferences" not in claim["metadata"]


def test_the_retention_policy_points_claims_at_the_set_or_the_scaled_away_pod() -> None:
    pod = {"metadata": {"name": "web-3", "uid": "pod-uid"}}
    deleted = _sts(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})
    assert [r["uid"] for r in claim_owner_refs([], deleted, pod, True)] == ["set-uid"]
    both = _sts(
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"}
    )
    refs = claim_owner_refs([], both, pod, True)
    assert [r["uid"] for r in refs] == ["set-uid"]
    assert [(r["kind"], r["uid"]) for r in claim_owner_refs(refs, both, pod, False)] == [
        ("Pod", "pod-uid")
    ]
    assert claim_owner_refs(refs, _sts(), pod, True) == []
    stale = [{"uid": "old-pod", "kind": "Pod", "name": "web-3"}]
    assert [r["uid"] for r in claim_owner_refs(stale, deleted, pod, True)] == ["set-uid"]
    other = [{"uid": "x", "kind": "Thing"}]
    assert claim_owner_refs(other, _sts(), pod, False) == other


def test_ordinals_are_parsed_only_from_the_sets_own_pod_names() -> None:
    assert ordinal_of("web", "web-12") == 12
    assert ordinal_of("web", "webx-1") is None
    assert ordinal_of("web", "web-a") is None


def test_pods_below_the_partition_are_created_at_the_current_revision() -> None:
    sts = _sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert uses_current_revision(sts, 1)
    assert not uses_current_revision(sts, 2)
    assert not uses_current_revision(_sts(updateStrategy={"type": "OnDelete"}), 0)


def test_a_revision_is_named_by_owner_and_hash_and_changes_with_the_template() -> None:
    sts = _sts()
    data = history.template_patch(sts)
    assert data["spec"]["template"]["$patch"] == "replace"
    rev = history.new_revision(sts, data, 1, 0, hash_label=history.REVISION_HASH_LABEL)
    hash_ = rev["metadata"]["labels"][history.REVISION_HASH_LABEL]
    assert rev["metadata"]["name"] == f"web-{hash_}"
    assert set(hash_) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert history.template_of(rev) == sts["spec"]["template"]
    assert history.hash_data(data, 1) != hash_
    changed = _sts()
    changed["spec"]["template"]["metadata"]["annotations"] = {"v": "2"}
    assert history.hash_data(history.template_patch(changed), 0) != hash_


def test_history_beyond_the_limit_is_pruned_oldest_first_keeping_live_revisions() -> None:
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    pruned = history.prunable(revs, {"r1", "r5"}, 2)
    assert [r["metadata"]["name"] for r in pruned] == ["r2"]
    assert history.next_revision(revs) == 6
