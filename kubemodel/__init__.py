"""The Kubernetes object model shared by the built-in cluster and the reconciler.

Neither side owns it: ``runtime/`` serves the API with it and ``gitops/`` builds and
compares manifests with it (kustomize's strategic merge patches, defaults-free schema
look-ups), so both read the same OpenAPI markers and raise the same ``Status`` errors.
It depends on nothing in ``runtime/`` or ``gitops/``.
"""
