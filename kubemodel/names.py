"""The one prefix of the project's own labels, annotations and field manager names."""

from __future__ import annotations

PREFIX = "gitops.dev"
FIELD_MANAGER = "gitops"
"""The field manager the reconciler applies with (server-side apply)."""
