"""Our kustomize build equals ``kubectl kustomize`` (kustomize v5.7.1 in kubectl 1.35).

Each case is a fixture tree under tests/testdata/kustomize; both builds are compared as
parsed objects, in order.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from gitops.build.kustomize import build_kustomization
from tests.conftest import kubectl_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent / "testdata" / "kustomize"
CASES = [
    "labels",
    "generators/base",
    "generators/overlay",
    "patches/base",
    "patches/overlay",
    "references/base",
    "references/overlay",
    "images-replicas",
    "components/base",
    "components/overlay",
    "namespace",
    "sort-fifo",
    "sort-legacy-custom",
]


def kubectl_kustomize(directory: Path) -> list[object]:
    result = subprocess.run(
        [kubectl_binary("1.35"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@pytest.mark.parametrize("case", CASES)
def test_the_build_equals_kubectl_kustomize_object_for_object(case: str) -> None:
    expected = kubectl_kustomize(ROOT / case)
    ours = [manifest.obj for manifest in build_kustomization(ROOT, ROOT / case)]
    assert [(o["kind"], o["metadata"]["name"]) for o in ours] == [
        (o["kind"], o["metadata"]["name"])
        for o in expected  # type: ignore[index]
    ]
    assert ours == expected


def test_every_fixture_case_is_compared() -> None:
    kustomizations = {
        p.parent.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("kustomization.yaml")
        if "/components/components/" not in p.as_posix()
    }
    assert kustomizations == set(CASES)
