"""The scheduler's plugins, scores, cycle and messages on hand-built node and pod dicts
(no server): each filter's verdict and reason, each score, kube-scheduler's
unschedulable message word for word, preemption's choices, the queue's ordering and
backoff, and event correlation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubeclient.events import EventRecorder
from runtime.scheduler.framework import (
    FitError,
    Framework,
    FrameworkOptions,
    NoNodesAvailable,
    fit_error_message,
)
from runtime.scheduler.labels import NodeSelector, label_selector
from runtime.scheduler.nodeinfo import ClusterState
from runtime.scheduler.plugins import interpodaffinity, noderesources, nodes, podtopologyspread
from runtime.scheduler.podinfo import PodInfo
from runtime.scheduler.preemption import preempt
from runtime.scheduler.queue import SchedulingQueue
from runtime.scheduler.resources import pod_requests
from runtime.scheduler.status import UNRESOLVABLE, UNSCHEDULABLE

GI = 1024**3


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str | None = "True",
    unschedulable: bool = False,
    conditions: dict[str, str] | None = None,
    images: list[dict[str, Any]] | None = None,
    **extra: str,
) -> dict[str, Any]:
    conds = [{"type": "Ready", "status": ready}] if ready else []
    conds += [{"type": k, "status": v} for k, v in (conditions or {}).items()]
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **extra},
            "conditions": conds,
            "images": images or [],
        },
    }


_uid = 0


def pod(
    name: str = "p",
    cpu: str | None = "100m",
    memory: str | None = None,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    node_name: str = "",
    priority: int = 0,
    **spec: Any,
) -> dict[str, Any]:
    global _uid
    _uid += 1
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    containers = spec.pop("containers", None) or [
        {"name": "c", "image": spec.pop("image", "busybox"), "resources": {"requests": requests}}
    ]
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}-{_uid}",
            "labels": labels or {},
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {"containers": containers, "priority": priority, **spec},
    }
    if node_name:
        body["spec"]["nodeName"] = node_name
    return body


def state(
    *nodes_: dict[str, Any], pods: list[dict[str, Any]] | None = None, **kw: Any
) -> ClusterState:
    return ClusterState.from_objects(nodes_, pods or [], **kw)


def schedule(p: dict[str, Any], st: ClusterState, **options: Any) -> str:
    return Framework(FrameworkOptions(seed=1, **options)).schedule(PodInfo(p), st).node


def failure(p: dict[str, Any], st: ClusterState) -> FitError:
    with pytest.raises(FitError) as err:
        Framework(FrameworkOptions(seed=1)).schedule(PodInfo(p), st)
    return err.value


def reasons(err: FitError) -> dict[str, tuple[str, ...]]:
    return {name: s.reasons for name, s in err.statuses.items()}


# --- resources ----------------------------------------------------------------------------


def test_init_containers_count_by_their_maximum_and_sidecars_add_to_the_sum() -> None:
    spec = {
        "initContainers": [
            {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
            {
                "name": "sidecar",
                "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "500m"}},
            },
            {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3Gi"}}},
        ],
        "containers": [
            {"name": "c1", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "c2", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
        ],
    }
    reqs = pod_requests(spec)
    # containers 1.5 + sidecar 0.5 = 2 cpu; i2 runs beside the sidecar: 2.5 cpu, 3Gi.
    assert reqs == {"cpu": 2500, "memory": 3 * GI}


def test_overhead_and_pod_level_requests_are_counted() -> None:
    spec = {
        "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
        "overhead": {"cpu": "250m", "memory": "120Mi"},
        "resources": {"requests": {"cpu": "1"}},
    }
    assert pod_requests(spec) == {"cpu": 1250, "memory": (64 + 120) * 1024**2}


def test_containers_without_requests_count_as_100m_and_200mi_for_scoring_only() -> None:
    pi = PodInfo(pod(cpu=None))
    assert (pi.cpu, pi.mem, pi.nz_cpu, pi.nz_mem) == (0, 0, 100, 200 * 1024**2)
    assert pi.best_effort


def test_node_resources_fit_names_every_insufficient_resource() -> None:
    st = state(
        node(
            "n",
            cpu="1",
            memory="1Gi",
            pods="1",
            **{"example.com/gpu": "1", "ephemeral-storage": "1Gi"},
        ),
        pods=[pod("existing", cpu="500m", node_name="n")],
    )
    big = pod(
        "big",
        containers=[
            {
                "name": "c",
                "resources": {
                    "requests": {
                        "cpu": "600m",
                        "memory": "2Gi",
                        "ephemeral-storage": "2Gi",
                        "example.com/gpu": "2",
                    }
                },
            }
        ],
    )
    status = noderesources.fit(PodInfo(big), st.nodes["n"])
    assert status is not None
    assert status.reasons == (
        "Too many pods",
        "Insufficient cpu",
        "Insufficient memory",
        "Insufficient ephemeral-storage",
        "Insufficient example.com/gpu",
    )
    assert status.code == UNRESOLVABLE  # more memory than the node has at all


def test_a_request_that_fits_an_empty_node_is_resolvable_by_preemption() -> None:
    st = state(node("n", cpu="2"), pods=[pod("existing", cpu="1500m", node_name="n")])
    status = noderesources.fit(PodInfo(pod(cpu="1")), st.nodes["n"])
    assert status is not None and status.code == UNSCHEDULABLE
    assert noderesources.fit(PodInfo(pod(cpu="3")), st.nodes["n"]).code == UNRESOLVABLE  # type: ignore[union-attr]


def test_bound_and_assumed_pods_use_up_allocatable() -> None:
    st = state(
        node("a", cpu="1"), node("b", cpu="1"), pods=[pod("on-a", cpu="800m", node_name="a")]
    )
    first = PodInfo(pod("first", cpu="600m"))
    assert schedule(first.pod, st) == "b"
    st.assume(first, "b")
    err = failure(pod("second", cpu="600m"), st)
    assert reasons(err) == {"a": ("Insufficient cpu",), "b": ("Insufficient cpu",)}
    st.forget(first.uid)
    assert schedule(pod("third", cpu="600m"), st) == "b"


# --- node filters ----------------------------------------------------------------------------


def test_a_cordoned_node_is_filtered_unless_the_pod_tolerates_it() -> None:
    st = state(node("cordoned", unschedulable=True))
    err = failure(pod(), st)
    assert reasons(err) == {"cordoned": ("node(s) were unschedulable",)}
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert schedule(tolerant, st) == "cordoned"


def test_not_ready_and_unreachable_nodes_are_filtered_through_their_condition_taints() -> None:
    st = state(node("down", ready="False"), node("lost", ready="Unknown"), node("up"))
    assert st.nodes["down"].taints == (("node.kubernetes.io/not-ready", "", "NoSchedule"),)
    assert st.nodes["lost"].taints == (("node.kubernetes.io/unreachable", "", "NoSchedule"),)
    for _ in range(5):
        assert schedule(pod(), st) == "up"
    err = failure(pod(nodeSelector={"kubernetes.io/hostname": "down"}), st)
    assert reasons(err)["down"] == ("node(s) had untolerated taint(s)",)
    daemon = pod(
        tolerations=[{"operator": "Exists"}], nodeSelector={"kubernetes.io/hostname": "lost"}
    )
    assert schedule(daemon, st) == "lost"


def test_pressure_conditions_and_existing_taints_are_not_duplicated() -> None:
    st = state(
        node(
            "n",
            conditions={"MemoryPressure": "True", "DiskPressure": "False"},
            taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}],
        )
    )
    assert st.nodes["n"].taints == (("node.kubernetes.io/memory-pressure", "", "NoSchedule"),)
    assert state(node("n"), condition_taints=False).nodes["n"].taints == ()


def test_taints_filter_on_no_schedule_and_no_execute_only() -> None:
    st = state(
        node("ns", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        node("ne", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]),
        node("pref", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]),
    )
    err_nodes = {n for n, r in reasons(failure(pod(nodeSelector={"x": "y"}), st)).items()}
    assert err_nodes == {"ns", "ne", "pref"}
    assert schedule(pod(), st) == "pref"
    equal = [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]
    p = PodInfo(pod(tolerations=equal))
    assert nodes.taint_toleration(p, st.nodes["ns"]) is None
    assert nodes.taint_toleration(p, st.nodes["ne"]) is not None
    wrong_value = PodInfo(pod(tolerations=[{"key": "k", "value": "w"}]))
    assert nodes.taint_toleration(wrong_value, st.nodes["ns"]) is not None
    any_effect = PodInfo(pod(tolerations=[{"key": "k", "operator": "Exists"}]))
    assert nodes.taint_toleration(any_effect, st.nodes["ne"]) is None


def test_node_name_must_match() -> None:
    st = state(node("a"))
    assert nodes.node_name(PodInfo(pod(node_name="b")), st.nodes["a"]) is not None
    assert nodes.node_name(PodInfo(pod(node_name="a")), st.nodes["a"]) is None


def test_node_selector_and_required_affinity_operators() -> None:
    st = state(node("n", labels={"zone": "a", "gen": "5", "ssd": "yes"}))
    ni = st.nodes["n"]

    def fits(**spec: Any) -> bool:
        return nodes.node_affinity(PodInfo(pod(**spec)), ni) is None

    def req(*exprs: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        term: dict[str, Any] = {"matchExpressions": list(exprs)}
        if fields:
            term["matchFields"] = fields
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }

    assert fits(nodeSelector={"zone": "a"})
    assert not fits(nodeSelector={"zone": "a", "ssd": "no"})
    assert fits(affinity=req({"key": "zone", "operator": "In", "values": ["a", "b"]}))
    assert not fits(affinity=req({"key": "zone", "operator": "NotIn", "values": ["a"]}))
    assert fits(affinity=req({"key": "rack", "operator": "NotIn", "values": ["r1"]}))
    assert fits(affinity=req({"key": "ssd", "operator": "Exists"}))
    assert not fits(affinity=req({"key": "ssd", "operator": "DoesNotExist"}))
    assert fits(affinity=req({"key": "gen", "operator": "Gt", "values": ["4"]}))
    assert not fits(affinity=req({"key": "gen", "operator": "Lt", "values": ["5"]}))
    assert not fits(affinity=req({"key": "zone", "operator": "Gt", "values": ["1"]}))
    assert fits(affinity=req(fields=[{"key": "metadata.name", "operator": "In", "values": ["n"]}]))
    assert not fits(
        affinity=req(fields=[{"key": "metadata.name", "operator": "NotIn", "values": ["n"]}])
    )
    # Both requirements of a term must hold; either of two terms may.
    both = req(
        {"key": "zone", "operator": "In", "values": ["a"]},
        {"key": "ssd", "operator": "In", "values": ["no"]},
    )
    assert not fits(affinity=both)
    two_terms = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]},
                ]
            }
        }
    }
    assert fits(affinity=two_terms)
    assert not NodeSelector({"nodeSelectorTerms": [{}]}).matches("n", {"zone": "a"})
    assert not fits(affinity=req({"key": "zone", "operator": "In", "values": []}))


def test_match_fields_on_the_node_name_limit_the_nodes_evaluated() -> None:
    st = state(node("a", cpu="1"), node("b"), node("c"))
    daemon = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    err = failure(pod(cpu="2", affinity=daemon), st)
    err.postfilter_msg = "preemption: not eligible due to preemptionPolicy=Never."
    assert err.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) "
        "[NodeAffinity]. preemption: not eligible due to preemptionPolicy=Never."
    )
    assert schedule(pod(cpu="500m", affinity=daemon), st) == "a"


def test_host_ports_conflict_by_ip_and_protocol() -> None:
    def with_port(port: int, ip: str = "", protocol: str = "TCP", **kw: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"containerPort": 80, "hostPort": port, "protocol": protocol}
        if ip:
            entry["hostIP"] = ip
        return pod(containers=[{"name": "c", "ports": [entry]}], **kw)

    st = state(node("n"), pods=[with_port(8080, ip="10.0.0.1", node_name="n")])
    ni = st.nodes["n"]
    assert nodes.node_ports(PodInfo(with_port(8080)), ni) is not None  # 0.0.0.0 overlaps
    assert nodes.node_ports(PodInfo(with_port(8080, ip="10.0.0.1")), ni) is not None
    assert nodes.node_ports(PodInfo(with_port(8080, ip="10.0.0.2")), ni) is None
    assert nodes.node_ports(PodInfo(with_port(8080, protocol="UDP")), ni) is None
    assert nodes.node_ports(PodInfo(with_port(9090)), ni) is None
    err = failure(with_port(8080), st)
    assert reasons(err) == {"n": ("node(s) didn't have free ports for the requested pod ports",)}


# --- inter-pod affinity ------------------------------------------------------------------------


def _anti(app: str, key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
            ]
        }
    }


def test_required_anti_affinity_on_hostname_places_replicas_on_different_nodes() -> None:
    st = state(node("a"), node("b"), node("c"))
    fw = Framework(FrameworkOptions(seed=3))
    placed = []
    for i in range(3):
        pi = PodInfo(pod(f"r{i}", labels={"app": "db"}, affinity=_anti("db")))
        placed.append(fw.schedule(pi, st).node)
        st.assume(pi, placed[-1])
    assert sorted(placed) == ["a", "b", "c"]
    with pytest.raises(FitError) as err:
        fw.schedule(PodInfo(pod("r3", labels={"app": "db"}, affinity=_anti("db"))), st)
    assert set(reasons(err.value).values()) == {("node(s) didn't match pod anti-affinity rules",)}


def test_anti_affinity_over_a_zone_label_keeps_the_whole_zone_free() -> None:
    st = state(
        node("a1", labels={"zone": "a"}),
        node("a2", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        pods=[pod("db0", labels={"app": "db"}, node_name="a1")],
    )
    assert schedule(pod("db1", labels={"app": "db"}, affinity=_anti("db", "zone")), st) == "b1"


def test_existing_pods_anti_affinity_repels_pods_they_match() -> None:
    st = state(
        node("a"),
        node("b"),
        pods=[pod("loner", labels={"app": "loner"}, node_name="a", affinity=_anti("noisy"))],
    )
    for _ in range(5):
        assert schedule(pod("n", labels={"app": "noisy"}), st) == "b"
    err = failure(
        pod("n", labels={"app": "noisy"}, nodeSelector={"kubernetes.io/hostname": "a"}), st
    )
    assert reasons(err) == {
        "a": ("node(s) didn't satisfy existing pods anti-affinity rules",),
        "b": ("node(s) didn't match Pod's node affinity/selector",),
    }
    quiet = PodInfo(pod("q", labels={"app": "noisy"}))
    ipa = interpodaffinity.prefilter(quiet, st)
    assert ipa is not None
    assert interpodaffinity.filter_node(st.nodes["a"], ipa) is not None
    assert interpodaffinity.filter_node(st.nodes["b"], ipa) is None


def test_required_affinity_needs_a_matching_pod_in_the_domain_unless_it_is_the_first() -> None:
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}
            ]
        }
    }
    st = state(node("a", labels={"zone": "a"}), node("b", labels={"zone": "b"}), node("x"))
    # The first pod of a group that matches its own terms may go anywhere labelled.
    assert schedule(pod("web0", labels={"app": "web"}, affinity=affinity), st) in {"a", "b"}
    st2 = state(
        node("a", labels={"zone": "a"}),
        node("b", labels={"zone": "b"}),
        node("x"),
        pods=[pod("web0", labels={"app": "web"}, node_name="b")],
    )
    for _ in range(4):
        assert schedule(pod("cache", labels={"app": "cache"}, affinity=affinity), st2) == "b"
    err = failure(pod("orphan", labels={"app": "other"}, affinity=affinity), st)
    assert set(reasons(err).values()) == {("node(s) didn't match pod affinity rules",)}
    assert all(s.code == UNRESOLVABLE for s in err.statuses.values())


def test_affinity_terms_honour_namespaces_and_namespace_selectors() -> None:
    def term(**extra: Any) -> dict[str, Any]:
        t = {
            "labelSelector": {"matchLabels": {"app": "db"}},
            "topologyKey": "kubernetes.io/hostname",
            **extra,
        }
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}

    namespaces = [
        {"metadata": {"name": "prod", "labels": {"env": "prod"}}},
        {"metadata": {"name": "dev", "labels": {"env": "dev"}}},
    ]
    st = state(
        node("a"),
        node("b"),
        pods=[pod("db", namespace="prod", labels={"app": "db"}, node_name="a")],
        namespaces=namespaces,
    )
    # Same namespace by default: a db in dev is not bothered by the one in prod.
    ipa = interpodaffinity.prefilter(PodInfo(pod("x", namespace="dev", affinity=term())), st)
    assert ipa is not None and interpodaffinity.filter_node(st.nodes["a"], ipa) is None
    assert schedule(pod("x", namespace="dev", affinity=term(namespaces=["prod"])), st) == "b"
    selected = term(namespaceSelector={"matchLabels": {"env": "prod"}})
    assert schedule(pod("x", namespace="dev", affinity=selected), st) == "b"
    everywhere = term(namespaceSelector={})
    assert schedule(pod("x", namespace="dev", affinity=everywhere), st) == "b"


def test_preferred_pod_affinity_and_anti_affinity_move_the_score() -> None:
    st = state(
        node("a"),
        node("b"),
        pods=[pod("cache", labels={"app": "cache"}, node_name="a")],
    )
    near = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "cache"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }
    far = {"podAntiAffinity": near["podAffinity"]}
    for _ in range(5):
        assert schedule(pod("web", affinity=near), st) == "a"
        assert schedule(pod("batch", affinity=far), st) == "b"
    topo = interpodaffinity.prescore(PodInfo(pod("web", affinity=near)), st)
    assert topo == {"kubernetes.io/hostname": {"a": 100}}
    assert interpodaffinity.normalize([100, 0, 50]) == [100, 0, 50]
    assert interpodaffinity.normalize([-100, 0]) == [0, 100]


# --- topology spreading -------------------------------------------------------------------------


def test_topology_spread_do_not_schedule_keeps_the_skew_within_max_skew() -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    st = state(
        node("a1", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        node("nolabel"),
        pods=[pod("w0", labels={"app": "web"}, node_name="a1")],
    )
    p = pod("w1", labels={"app": "web"}, topologySpreadConstraints=[constraint])
    for _ in range(4):
        assert schedule(p, st) == "b1"
    sf = podtopologyspread.prefilter(PodInfo(p), st)
    assert sf is not None
    skewed = podtopologyspread.filter_node(PodInfo(p), st.nodes["a1"], sf)
    assert skewed is not None
    assert skewed.reasons == ("node(s) didn't match pod topology spread constraints",)
    assert skewed.code == UNSCHEDULABLE
    status = podtopologyspread.filter_node(PodInfo(p), st.nodes["nolabel"], sf)
    assert status is not None
    assert status.reasons == (
        "node(s) didn't match pod topology spread constraints (missing required label)",
    )
    assert status.code == UNRESOLVABLE


def test_min_domains_treats_the_global_minimum_as_zero() -> None:
    constraint = {
        "maxSkew": 1,
        "minDomains": 3,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    st = state(
        node("a1", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        pods=[
            pod("w0", labels={"app": "web"}, node_name="a1"),
            pod("w1", labels={"app": "web"}, node_name="b1"),
        ],
    )
    err = failure(pod("w2", labels={"app": "web"}, topologySpreadConstraints=[constraint]), st)
    assert set(reasons(err).values()) == {("node(s) didn't match pod topology spread constraints",)}


def test_default_spreading_scores_a_replica_sets_pods_away_from_crowded_nodes_and_zones() -> None:
    owner = [{"kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": True}]

    def web(name: str, node_name: str = "") -> dict[str, Any]:
        p = pod(name, cpu="10m", labels={"app": "web"}, node_name=node_name)
        p["metadata"]["ownerReferences"] = owner
        return p

    zone = "topology.kubernetes.io/zone"
    st = state(
        node("a1", labels={zone: "a"}),
        node("a2", labels={zone: "a"}),
        node("b1", labels={zone: "b"}),
        pods=[web("web-0", "a1"), web("web-1", "a1")],
    )
    rs = {
        "metadata": {"namespace": "default", "name": "web-1"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }
    st.set_controller("ReplicaSet", rs, podtopologyspread.controller_selector(rs, "ReplicaSet"))
    incoming = PodInfo(web("web-2"))
    spread = podtopologyspread.default_constraints(incoming, st)
    assert [(c.key, c.max_skew) for c in spread] == [
        ("kubernetes.io/hostname", 3),
        (zone, 5),
    ]
    feasible = [st.nodes[n] for n in ("a1", "a2", "b1")]
    prescored = podtopologyspread.prescore(incoming, st, feasible)
    assert prescored is not None
    raw = [podtopologyspread.score(incoming, ni, prescored) for ni in feasible]
    # hostname: count x ln(3 + 2) + 2; zone: count x ln(2 + 2) + 4.
    assert raw == [12, 9, 6]
    assert podtopologyspread.normalize(["a1", "a2", "b1"], raw, prescored) == [50, 75, 100]
    for _ in range(5):
        assert schedule(incoming.pod, st) == "b1"
    assert podtopologyspread.default_constraints(PodInfo(pod()), st) == []


def test_services_selecting_a_pod_feed_the_default_spreading_selector() -> None:
    st = state(node("a"))
    st.set_service(
        {"metadata": {"namespace": "default", "name": "web"}, "spec": {"selector": {"app": "web"}}}
    )
    sel = podtopologyspread.default_selector(PodInfo(pod(labels={"app": "web", "v": "1"})), st)
    assert sel.matches({"app": "web"}) and not sel.matches({"app": "db"})


# --- volumes --------------------------------------------------------------------------------------


def _pvc(
    name: str, volume: str = "", cls: str = "local", modes: tuple[str, ...] = ("ReadWriteOnce",)
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "storageClassName": cls,
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if volume:
        spec["volumeName"] = volume
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"pvc-{name}"},
        "spec": spec,
        "status": {"phase": "Bound" if volume else "Pending"},
    }


def _pv(
    name: str,
    node_name: str,
    cls: str = "local",
    claim: str = "",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": "10Gi"},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": cls,
        "local": {"path": "/data"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": [node_name],
                            }
                        ]
                    }
                ]
            }
        },
    }
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim}
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": "Bound" if claim else "Available"},
    }


def _with_claim(claim: str, **kw: Any) -> dict[str, Any]:
    return pod(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}], **kw)


def test_a_bound_claims_local_volume_pins_the_pod_to_its_node() -> None:
    st = state(
        node("a"),
        node("b"),
        pvcs=[_pvc("data", volume="pv-b")],
        pvs=[_pv("pv-b", "b", claim="data")],
    )
    for _ in range(4):
        assert schedule(_with_claim("data"), st) == "b"
    err = failure(_with_claim("data", nodeSelector={"kubernetes.io/hostname": "a"}), st)
    assert reasons(err) == {
        "a": ("node(s) had volume node affinity conflict",),
        "b": ("node(s) didn't match Pod's node affinity/selector",),
    }
    only_a = state(
        node("a"), pvcs=[_pvc("data", volume="pv-b")], pvs=[_pv("pv-b", "b", claim="data")]
    )
    assert reasons(failure(_with_claim("data"), only_a)) == {
        "a": ("node(s) had volume node affinity conflict",)
    }
    missing = state(node("a"), pvcs=[_pvc("data", volume="gone")])
    assert reasons(failure(_with_claim("data"), missing)) == {
        "a": ("node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)",)
    }


def test_claim_problems_fail_in_prefilter_with_their_own_message() -> None:
    st = state(node("a"), node("b"))
    err = failure(_with_claim("nope"), st)
    err.postfilter_msg = (
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    assert err.message == (
        '0/2 nodes are available: persistentvolumeclaim "nope" not found. preemption: 0/2 nodes '
        "are available: 2 Preemption is not helpful for scheduling."
    )
    immediate = state(node("a"), pvcs=[_pvc("data", cls="standard")])
    assert failure(_with_claim("data"), immediate).message == (
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    )


def test_a_wait_for_first_consumer_claim_needs_a_free_pv_on_the_node_or_a_provisioner() -> None:
    local = {
        "metadata": {"name": "local"},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    st = state(
        node("a"), node("b"), pvcs=[_pvc("data")], pvs=[_pv("pv-a", "a")], storage_classes=[local]
    )
    for _ in range(4):
        assert schedule(_with_claim("data"), st) == "a"
    none_free = state(node("a"), pvcs=[_pvc("data")], storage_classes=[local])
    assert reasons(failure(_with_claim("data"), none_free)) == {
        "a": ("node(s) didn't find available persistent volumes to bind",)
    }
    dynamic = {**local, "provisioner": "example.com/hostpath"}
    provisioned = state(node("a"), pvcs=[_pvc("data")], storage_classes=[dynamic])
    assert schedule(_with_claim("data"), provisioned) == "a"


def test_a_read_write_once_pod_claim_in_use_is_rejected() -> None:
    claim = _pvc("solo", volume="pv-a", modes=("ReadWriteOncePod",))
    st = state(
        node("a"),
        node("b"),
        pvcs=[claim],
        pvs=[{"metadata": {"name": "pv-a"}, "spec": {}}],
        pods=[_with_claim("solo", node_name="a")],
    )
    err = failure(_with_claim("solo"), st)
    assert set(reasons(err).values()) == {
        (
            "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode",
        )
    }
    assert all(s.code == UNSCHEDULABLE for s in err.statuses.values())


def test_a_volumes_zone_labels_must_match_the_nodes() -> None:
    pv = {
        "metadata": {"name": "pv", "labels": {"topology.kubernetes.io/zone": "z1__z2"}},
        "spec": {},
    }
    st = state(
        node("z1", labels={"topology.kubernetes.io/zone": "z1"}),
        node("z3", labels={"topology.kubernetes.io/zone": "z3"}),
        node("unlabelled"),
        pvcs=[_pvc("data", volume="pv")],
        pvs=[pv],
    )
    err = failure(_with_claim("data", nodeSelector={"kubernetes.io/hostname": "z3"}), st)
    assert reasons(err)["z3"] == ("node(s) had no available volume zone",)
    from runtime.scheduler.plugins import volumes

    _, vs = volumes.prefilter(PodInfo(_with_claim("data")), st)
    assert vs is not None
    assert volumes.zone(st.nodes["z3"], vs) is not None
    assert volumes.zone(st.nodes["z1"], vs) is None
    assert volumes.zone(st.nodes["unlabelled"], vs) is None


# --- scores ---------------------------------------------------------------------------------------


def test_least_allocated_and_balanced_allocation_scores() -> None:
    st = state(
        node("n", cpu="4", memory="8Gi"), pods=[pod("x", cpu="1", memory="2Gi", node_name="n")]
    )
    p = PodInfo(pod(cpu="1", memory="2Gi"))
    ni = st.nodes["n"]
    # cpu: (4000-2000)*100/4000 = 50; memory: (8-4)*100/8 = 50.
    assert noderesources.least_allocated(p, ni) == 50
    assert noderesources.balanced_allocation(p, ni) == 100
    skewed = PodInfo(pod(cpu="3", memory="0"))
    # cpu fraction 1.0, memory 0.25: std 0.375.
    assert noderesources.balanced_allocation(skewed, ni) == 62


def test_the_emptier_node_wins_and_ties_are_broken_at_random() -> None:
    st = state(node("busy"), node("idle"), pods=[pod("x", cpu="2", node_name="busy")])
    assert schedule(pod(), st) == "idle"
    twins = state(node("a"), node("b"), node("c"))
    fw = Framework(FrameworkOptions(seed=11))
    chosen = {fw.schedule(PodInfo(pod()), twins).node for _ in range(60)}
    assert chosen == {"a", "b", "c"}


def test_image_locality_prefers_nodes_that_have_the_images() -> None:
    image = [{"names": ["registry/app:1.0"], "sizeBytes": 500 * 1024**2}]
    st = state(node("cached", images=image), node("cold"))
    assert schedule(pod(image="registry/app:1.0"), st) == "cached"
    p = PodInfo(pod(image="registry/app:1.0"))
    score = nodes.image_locality_score(p, st.nodes["cached"], st.image_nodes, 2)
    # 500 MiB spread over half the nodes: 250 MiB, between the 23 MiB and 1000 MiB marks.
    assert score == 100 * (250 * 1024**2 - 23 * 1024**2) // (977 * 1024**2)
    assert (
        nodes.image_locality_score(
            PodInfo(pod(image="other")), st.nodes["cached"], st.image_nodes, 2
        )
        == 0
    )


def test_prefer_no_schedule_taints_and_preferred_node_affinity_score() -> None:
    st = state(
        node(
            "tainted",
            taints=[{"key": "spot", "effect": "PreferNoSchedule"}],
            labels={"disk": "ssd"},
        ),
        node("clean"),
    )
    for _ in range(5):
        assert schedule(pod(), st) == "clean"
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]
                    },
                }
            ]
        }
    }
    # Node affinity (weight 2 x 100) outweighs one PreferNoSchedule taint (weight 3 x 100)?
    # No: 200 < 300, so the clean node still wins ...
    assert schedule(pod(affinity=preferred), st) == "clean"
    # ... unless the pod tolerates the taint.
    tolerant = pod(
        affinity=preferred,
        tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}],
    )
    assert schedule(tolerant, st) == "tainted"
    assert nodes.taint_score(PodInfo(pod()), st.nodes["tainted"]) == 1
    assert nodes.node_affinity_score(PodInfo(pod(affinity=preferred)), st.nodes["tainted"]) == 100
    assert nodes.default_normalize([0, 1, 2], reverse=True) == [100, 50, 0]
    assert nodes.default_normalize([0, 0], reverse=True) == [100, 100]
    assert nodes.default_normalize([0, 50], reverse=False) == [0, 100]


# --- the cycle ----------------------------------------------------------------------------------


def test_the_number_of_nodes_to_find_is_adaptive() -> None:
    fw = Framework()
    assert [fw.num_feasible_nodes_to_find(n) for n in (50, 100, 1000, 5000, 10000)] == [
        50,
        100,
        420,
        500,
        500,
    ]
    assert (
        Framework(FrameworkOptions(percentage_of_nodes_to_score=100)).num_feasible_nodes_to_find(
            1000
        )
        == 1000
    )


def test_each_cycle_starts_where_the_previous_one_stopped() -> None:
    st = state(*(node(f"n{i:03d}") for i in range(200)))
    fw = Framework(FrameworkOptions(seed=1))
    fw.schedule(PodInfo(pod()), st)
    assert fw.next_start == 100  # 200 nodes: stop after 100 feasible ones
    fw.schedule(PodInfo(pod()), st)
    assert fw.next_start == 0


def test_cached_verdicts_follow_node_and_pod_changes() -> None:
    st = state(node("n", cpu="1"))
    fw = Framework(FrameworkOptions(seed=1))
    template = pod(cpu="600m")
    first = PodInfo(template)
    assert fw.schedule(first, st).node == "n"
    st.assume(first, "n")
    with pytest.raises(FitError):
        fw.schedule(PodInfo(pod(cpu="600m")), st)
    bigger = node("n", cpu="2")
    st.upsert_node(bigger)
    assert fw.schedule(PodInfo(pod(cpu="600m")), st).node == "n"
    st.upsert_node({**bigger, "metadata": {"name": "n", "labels": {"x": "y"}}})
    with pytest.raises(FitError):
        fw.schedule(PodInfo(pod(cpu="600m", nodeSelector={"kubernetes.io/hostname": "n"})), st)


def test_no_nodes_at_all_is_its_own_error() -> None:
    with pytest.raises(NoNodesAvailable, match="no nodes available to schedule pods"):
        Framework().schedule(PodInfo(pod()), ClusterState())


# --- the unschedulable message --------------------------------------------------------------------


def test_the_message_counts_and_sorts_reasons_like_kube_scheduler() -> None:
    st = state(
        node("a", cpu="1", labels={"zone": "a"}),
        node("b", cpu="1", labels={"zone": "b"}),
        node("c", cpu="8", labels={"zone": "c"}),
    )
    err = failure(pod(cpu="2", nodeSelector={"zone": "a"}), st)
    msg, plan = preempt(Framework(), PodInfo(pod(cpu="2", nodeSelector={"zone": "a"})), st, err)
    assert plan is None
    err.postfilter_msg = "no new claims to deallocate, " + msg
    assert err.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node "
        "affinity/selector. no new claims to deallocate, preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling."
    )


def test_reason_counts_sort_as_strings_and_multiple_reasons_of_a_node_all_count() -> None:
    from runtime.scheduler.status import Status

    statuses = {
        f"n{i}": Status(
            UNSCHEDULABLE, "NodeResourcesFit", "Insufficient cpu", "Insufficient memory"
        )
        for i in range(10)
    }
    statuses["x"] = Status(UNRESOLVABLE, "TaintToleration", "node(s) had untolerated taint(s)")
    assert fit_error_message(11, statuses) == (
        "0/11 nodes are available: 1 node(s) had untolerated taint(s), 10 Insufficient cpu, "
        "10 Insufficient memory."
    )


def test_preemption_without_lower_priority_pods_finds_no_victims() -> None:
    st = state(
        node("a", cpu="2"),
        node("b", cpu="2"),
        pods=[pod("x", cpu="1500m", node_name="a"), pod("y", cpu="1500m", node_name="b")],
    )
    p = pod("new", cpu="1")
    err = failure(p, st)
    msg, plan = preempt(Framework(), PodInfo(p), st, err)
    assert plan is None
    assert (
        msg
        == "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )
    never = pod("new", cpu="1", priority=10, preemptionPolicy="Never")
    msg, plan = preempt(Framework(), PodInfo(never), st, failure(never, st))
    assert msg == "preemption: not eligible due to preemptionPolicy=Never."


def test_preemption_evicts_the_fewest_lowest_priority_pods() -> None:
    st = state(
        node("a", cpu="2"),
        node("b", cpu="2"),
        pods=[
            pod("a-low", cpu="1", priority=1, node_name="a"),
            pod("a-mid", cpu="1", priority=5, node_name="a"),
            pod("b-mid1", cpu="1", priority=5, node_name="b"),
            pod("b-mid2", cpu="1", priority=5, node_name="b"),
        ],
    )
    p = pod("vip", cpu="1", priority=100)
    err = failure(p, st)
    msg, plan = preempt(Framework(FrameworkOptions(seed=2)), PodInfo(p), st, err)
    assert msg == ""
    assert plan is not None
    assert plan.node == "a"
    assert [v.name for v in plan.victims] == ["a-low"]


# --- queue and events --------------------------------------------------------------------------------


def test_the_queue_pops_by_priority_then_creation_time() -> None:
    q = SchedulingQueue()
    late = pod("late")
    late["metadata"]["creationTimestamp"] = "2024-01-02T00:00:00Z"
    q.add(PodInfo(late))
    q.add(PodInfo(pod("early")))
    q.add(PodInfo(pod("urgent", priority=1000)))
    order = [q.pop_nowait().info.name for _ in range(3)]  # type: ignore[union-attr]
    assert order == ["urgent", "early", "late"]


def test_backoff_doubles_from_one_to_ten_seconds() -> None:
    now = [100.0]
    q = SchedulingQueue(clock=lambda: now[0])
    q.add(PodInfo(pod("p")))
    durations = []
    for _ in range(6):
        qp = q.pop_nowait()
        assert qp is not None
        q.requeue_backoff(qp)
        durations.append(q.backoff_expiry(qp) - now[0])
        assert q.pop_nowait() is None
        now[0] += durations[-1]
    assert durations == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pods_wait_for_a_cluster_event_or_five_minutes() -> None:
    now = [0.0]
    q = SchedulingQueue(clock=lambda: now[0])
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.requeue_unschedulable(qp, {"NodeResourcesFit"})
    now[0] += 20
    assert q.pop_nowait() is None
    assert q.where("default/p") == "unschedulable"
    assert q.move_all(lambda item: "InterPodAffinity" in item.unschedulable_plugins) == 0
    assert q.move_all() == 1
    assert q.pop_nowait() is not None
    qp2 = q.get("default/p")
    assert qp2 is not None
    q.requeue_unschedulable(qp2, {"NodeResourcesFit"})
    now[0] += 299
    assert q.flush_unschedulable_leftover() == 0
    now[0] += 2
    assert q.flush_unschedulable_leftover() == 1
    assert q.pop_nowait() is not None


def test_a_cluster_event_during_a_cycle_sends_the_failed_pod_to_backoff() -> None:
    now = [0.0]
    q = SchedulingQueue(clock=lambda: now[0])
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.move_all()  # e.g. a node was added while the pod was being scheduled
    q.requeue_unschedulable(qp, {"NodeResourcesFit"})
    assert q.where("default/p") == "backoff"


def test_gated_pods_wait_until_their_gates_are_removed() -> None:
    q = SchedulingQueue()
    gated = pod("g", schedulingGates=[{"name": "example.com/wait"}])
    q.add(PodInfo(gated))
    assert q.pop_nowait() is None
    ungated = pod("g")
    ungated["metadata"]["uid"] = gated["metadata"]["uid"]
    q.update(PodInfo(ungated))
    assert q.pop_nowait() is not None


class _FakeClient:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.created.append(body)
        return body

    async def patch(
        self, _api: str, _plural: str, name: str, body: Any, *_a: Any, **_k: Any
    ) -> Any:
        self.patched.append((name, body))
        return body


def test_identical_events_are_counted_on_one_event() -> None:
    async def go() -> _FakeClient:
        client = _FakeClient()
        recorder = EventRecorder(client, "default-scheduler", instance="test")  # type: ignore[arg-type]
        runner = asyncio.create_task(recorder.run())
        target = pod("stuck")
        for _ in range(3):
            recorder.event(
                target, "Warning", "FailedScheduling", "Scheduling", "0/1 nodes are available"
            )
        recorder.event(target, "Warning", "FailedScheduling", "Scheduling", "something else")
        await recorder.flush()
        runner.cancel()
        return client

    client = asyncio.run(go())
    assert len(client.created) == 2
    first = client.created[0]
    assert first["source"] == {"component": "default-scheduler"}
    assert first["reportingComponent"] == "default-scheduler"
    assert first["involvedObject"]["name"] == "stuck"
    assert first["count"] == 1 and first["type"] == "Warning"
    assert [p[1]["count"] for p in client.patched] == [2, 3]
    assert all(p[0] == first["metadata"]["name"] for p in client.patched)


def test_label_selectors_treat_nil_as_nothing_and_empty_as_everything() -> None:
    assert not label_selector(None).matches({"a": "b"})
    assert label_selector({}).matches({"a": "b"})
    sel = label_selector(
        {
            "matchLabels": {"a": "b"},
            "matchExpressions": [{"key": "c", "operator": "NotIn", "values": ["d"]}],
        }
    )
    assert (
        sel.matches({"a": "b"})
        and sel.matches({"a": "b", "c": "e"})
        and not sel.matches({"a": "b", "c": "d"})
    )
    assert not label_selector({"matchExpressions": [{"key": "c", "operator": "Bogus"}]}).matches({})
