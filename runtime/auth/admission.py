"""Admission steps that depend on who asks (kube-apiserver's admission plugins that
read ``userInfo``: ServiceAccount, NodeRestriction, RBAC's escalation checks).

The object layer (:mod:`runtime.api.objects`) builds an :class:`AdmissionRequest` for
every create, update (PUT or PATCH, subresources included) and delete that reaches it
from a requester, after its own defaulting and validation, and hands it to each
:class:`AdmissionPlugin` of ``ApiOptions.admission`` in order. A plugin may change
``request.obj`` (mutating, only on create and update), raise an
:class:`~kubemodel.errors.ApiError` (403 Forbidden as kube's admission denials are)
and return warnings. Internal writes (no requester) skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from runtime.api.registry import ResourceInfo
from runtime.auth.user import UserInfo

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


@dataclass
class AdmissionRequest:
    operation: Operation
    info: ResourceInfo
    namespace: str
    name: str
    #: The object to be written (mutable by a mutating plugin); for DELETE the live one.
    obj: dict[str, Any]
    #: The live object on UPDATE and DELETE; None on CREATE.
    old: dict[str, Any] | None
    user: UserInfo
    subresource: str = ""
    dry_run: bool = False


class AdmissionPlugin(Protocol):
    def admit(self, request: AdmissionRequest) -> list[str]:
        """Mutate and/or validate ``request``; raise ApiError to refuse; return warnings."""
        ...
