"""Helpers for the kustomize unit tests: write a tree of files, build it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from gitops.build.kustomize import build_kustomization


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def build(root: Path, directory: str = ".") -> list[dict[str, Any]]:
    return [m.obj for m in build_kustomization(root, root / directory)]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.0
        env:
        - {name: A, value: "1"}
"""
