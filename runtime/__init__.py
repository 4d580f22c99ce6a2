"""The built-in single-machine cluster: API server and store, and (later) scheduler,
kubelets and controllers. Nothing here knows about Git; everything outside reaches it
through the Kubernetes REST API (see DESIGN.md)."""
