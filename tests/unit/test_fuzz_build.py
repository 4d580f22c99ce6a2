"""Fuzzing the build step: whatever a repository holds, the build returns objects the
planner can serialise or refuses with a BuildError, quickly, and never crashes.

The strategies live in tests/unit/fuzz_build_strategies.py; this is the short,
derandomised run of every test run (the same examples each time). bench/fuzz_build.py
runs the same strategies with random seeds and thousands of examples. Inputs a run found
crashing are kept below as explicit regression cases. The sweeps at the end are not
random: every field of a full kustomization, of transformed objects and of patches is
given each value of the wrong type in turn (they found the crashes random runs missed:
``envs: 7``, ``orderFirst: 7``, ``metadata: 7`` in a patch, a list as a merge key's
value, ``data: x`` under a generator's ``behavior: merge``).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings

from tests.unit.fuzz_build_strategies import (
    WRONG_TYPES,
    Files,
    kustomize_repository,
    plain_repository,
    run_build,
    wrong_types,
    yaml_file,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECONDS = 5.0
"""Generous: a refused or built example takes milliseconds; an attack that got through
a limit takes seconds to minutes."""

KUSTOMIZATION = b"resources: [a.yaml]\n"
DEPLOYMENT = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n"


def _builds_or_is_refused(files: Files) -> None:
    outcome = run_build(files)
    assert outcome.result != "crashed", outcome.error
    assert outcome.seconds < SECONDS, f"took {outcome.seconds:.1f}s"


@FUZZ
@given(yaml_file())
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata: {a: &a [*a]}\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata: {9000: x, true: y}\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx: 18446744073709551616\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx: !!binary aGVsbG8=\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx: .nan\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx: !!timestamp 2001-12-14\n")
@example(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m, labels: {~: a}}\n")
def test_any_yaml_file_builds_or_is_refused(data: bytes) -> None:
    _builds_or_is_refused({"file.yaml": data})


@FUZZ
@given(plain_repository())
def test_any_plain_directory_builds_or_is_refused(files: Files) -> None:
    _builds_or_is_refused(files)


@FUZZ
@given(kustomize_repository())
@example(
    {
        "kustomization.yaml": KUSTOMIZATION + b"patches:\n- path: p.yaml\n",
        "a.yaml": DEPLOYMENT,
        "p.yaml": b"\xff\xfe",
    }
)
@example(
    {
        "kustomization.yaml": KUSTOMIZATION
        + b'patches:\n- patch: "\\ud800"\n  target: {kind: Deployment}\n',
        "a.yaml": DEPLOYMENT,
    }
)
@example(
    {
        "kustomization.yaml": KUSTOMIZATION
        + b'patches:\n- target: {name: "(a+)+"}\n  patch: \'[{"op": "add", "path": "/x", "value": 1}]\'\n',
        "a.yaml": DEPLOYMENT.replace(b"name: web", b"name: " + b"a" * 40 + b"-b"),
    }
)
def test_any_kustomization_builds_or_is_refused(files: Files) -> None:
    _builds_or_is_refused(files)


# --- every field of the wrong type: a systematic sweep, not random -------------------------
FULL_KUSTOMIZATION: dict[str, Any] = {
    "apiVersion": "kustomize.config.k8s.io/v1beta1",
    "kind": "Kustomization",
    "resources": ["d.yaml", "base"],
    "components": ["comp"],
    "namespace": "shop",
    "namePrefix": "p-",
    "nameSuffix": "-s",
    "commonLabels": {"app": "web"},
    "labels": [
        {
            "pairs": {"a": "b"},
            "includeSelectors": True,
            "includeTemplates": True,
            "fields": [{"path": "spec/x", "kind": "Deployment", "create": True}],
        }
    ],
    "commonAnnotations": {"note": "x"},
    "images": [{"name": "nginx", "newName": "n2", "newTag": "2", "digest": "sha256:abc"}],
    "replicas": [{"name": "web", "count": 3}],
    "patches": [
        {
            "path": "p.yaml",
            "target": {"kind": "Deployment", "name": "web", "labelSelector": "app=web"},
            "options": {"allowNameChange": True},
        },
        {
            "patch": '[{"op": "add", "path": "/spec/replicas", "value": 2}]',
            "target": {"kind": "Deployment"},
        },
    ],
    "patchesStrategicMerge": ["p.yaml"],
    "patchesJson6902": [{"path": "p.json", "target": {"kind": "Deployment", "name": "web"}}],
    "configMapGenerator": [
        {
            "name": "cm",
            "behavior": "create",
            "literals": ["a=b"],
            "files": ["f.txt"],
            "envs": ["e.env"],
            "options": {"labels": {"a": "b"}, "disableNameSuffixHash": True, "immutable": True},
        }
    ],
    "secretGenerator": [{"name": "s", "type": "Opaque", "literals": ["a=b"], "env": "e.env"}],
    "generatorOptions": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
    "sortOptions": {
        "order": "legacy",
        "legacySortOptions": {"orderFirst": ["Secret"], "orderLast": ["Deployment"]},
    },
}
SWEEP_FILES: Files = {
    "d.yaml": DEPLOYMENT.replace(b"spec: {}", b"spec: {template: {spec: {containers: []}}}"),
    "base/kustomization.yaml": b"resources: [cm.yaml]\n",
    "base/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\n",
    "comp/kustomization.yaml": (
        b"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamePrefix: c-\n"
    ),
    "p.yaml": b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
    "p.json": b'[{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]',
    "f.txt": b"hello",
    "e.env": b"A=1\n",
}
OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1",
                            "envFrom": [{"configMapRef": {"name": "cm"}}],
                            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
                        }
                    ],
                    "volumes": [{"name": "v", "configMap": {"name": "cm"}}],
                },
            },
        },
    },
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "rb"},
        "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "shop"}],
    },
]
TRANSFORMING: dict[str, Any] = {
    "resources": ["o.yaml"],
    "namePrefix": "p-",
    "namespace": "prod",
    "commonLabels": {"team": "a"},
    "images": [{"name": "nginx", "newTag": "2"}],
    "replicas": [{"name": "web", "count": 2}],
    "configMapGenerator": [{"name": "cm", "behavior": "merge", "literals": ["z=1"]}],
    "patches": [
        {
            "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            "spec: {template: {spec: {containers: [{name: web, image: x}]}}}\n"
        }
    ],
}
STRATEGIC_PATCH: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"x": "y"}},
    "spec": {
        "template": {
            "spec": {
                "containers": [{"name": "web", "image": "x", "env": [{"name": "B"}]}],
                "volumes": [{"name": "v", "$patch": "delete"}],
            }
        }
    },
}


def _sweep(variants: list[tuple[str, Files]]) -> None:
    crashed = []
    for name, files in variants:
        outcome = run_build(files)
        if outcome.result == "crashed":
            crashed.append(f"{name}: {outcome.error.strip().splitlines()[-1]}")
    assert not crashed, "\n".join(crashed)


def test_every_kustomization_field_of_the_wrong_type_is_refused_not_a_crash() -> None:
    assert run_build({**SWEEP_FILES, "kustomization.yaml": _yaml(FULL_KUSTOMIZATION)}).objects
    _sweep(
        [
            (name, {**SWEEP_FILES, "kustomization.yaml": _yaml(variant)})
            for name, variant in wrong_types(FULL_KUSTOMIZATION)
        ]
    )


def test_every_object_field_of_the_wrong_type_is_refused_not_a_crash() -> None:
    variants: list[tuple[str, Files]] = []
    for index, obj in enumerate(OBJECTS):
        for name, variant in wrong_types(obj):
            objects = [*OBJECTS[:index], variant, *OBJECTS[index + 1 :]]
            manifests = yaml.safe_dump_all(objects).encode()
            variants.append((f"plain {name}", {"o.yaml": manifests}))
            kustomization = _yaml(TRANSFORMING)
            variants.append(
                (f"kustomize {name}", {"o.yaml": manifests, "kustomization.yaml": kustomization})
            )
    _sweep(variants)


def test_every_patch_field_of_the_wrong_type_is_refused_not_a_crash() -> None:
    objects = yaml.safe_dump_all(OBJECTS).encode()
    variants: list[tuple[str, Files]] = []
    for name, patch in wrong_types(STRATEGIC_PATCH):
        text = yaml.safe_dump(patch)
        for entry in ({"patch": text}, {"patch": text, "target": {"kind": "Deployment"}}):
            kustomization = {"resources": ["o.yaml"], "patches": [entry]}
            variants.append(
                (
                    f"{name} {entry.keys()}",
                    {"o.yaml": objects, "kustomization.yaml": _yaml(kustomization)},
                )
            )
    for pointer in ("/metadata", "/metadata/name", "/kind", "/spec/template/spec/containers/0"):
        for value in WRONG_TYPES:
            for op in ("add", "replace"):
                patch = json.dumps([{"op": op, "path": pointer, "value": value}])
                kustomization = {
                    "resources": ["o.yaml"],
                    "patches": [{"patch": patch, "target": {}}],
                }
                variants.append(
                    (
                        f"{op} {pointer}={value!r}",
                        {"o.yaml": objects, "kustomization.yaml": _yaml(kustomization)},
                    )
                )
    _sweep(variants)


def _yaml(document: Any) -> bytes:
    return yaml.safe_dump(document, sort_keys=False).encode()
