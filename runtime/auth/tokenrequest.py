"""The TokenRequest API: ``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token``
(kube-apiserver's ``pkg/registry/core/serviceaccount/storage/token.go`` and the
``authentication.k8s.io/v1`` TokenRequest validation).

Who calls it: the API server's router for the ``serviceaccounts/token`` subresource
(``kubectl create token``, the kubelet for projected ``serviceAccountToken`` volumes,
client libraries); authorization (``create`` on ``serviceaccounts/token``) is the
router's, before this runs.

Kubernetes semantics followed:

* the body is an ``authentication.k8s.io/v1`` TokenRequest; ``metadata.name`` and
  ``metadata.namespace``, when set, must match the URL (422), ``metadata.uid``, when set,
  must be the ServiceAccount's (409); the ServiceAccount must exist (404);
* ``spec.expirationSeconds`` defaults to 3600 and must be between 600 and 2^32 (422
  ``may not specify a duration less than 10 minutes``); above the server's maximum
  (``--service-account-max-token-expiration``, none by default) it is shortened with a
  warning; ``spec.audiences`` defaults to the API audiences;
* ``spec.boundObjectRef`` may name a ``v1`` Pod, Secret or Node: it must exist (404), a
  Pod must run as this ServiceAccount (400), a given ``uid`` must match (409), other
  kinds are refused (400); a Pod-bound token also names the pod's node;
* a Pod-bound token asked for 3607 s with only API audiences (what the ServiceAccount
  admission plugin's volume asks for) lives a year with ``warnafter`` at 3607 s
  (``--service-account-extend-token-expiration``, on by default as in kube);
* the answer (201) is the TokenRequest with ``status.token`` and
  ``status.expirationTimestamp`` = now + ``spec.expirationSeconds``; nothing is stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kubemodel import errors
from runtime.api.objects import ObjectAPI
from runtime.auth.serviceaccount import (
    EXPIRATION_EXTENSION_SECONDS,
    WARN_ONLY_EXPIRATION_SECONDS,
    BoundObject,
    TokenIssuer,
)
from runtime.auth.user import UserInfo

GROUP = "authentication.k8s.io"
API_VERSION = "authentication.k8s.io/v1"
KIND = "TokenRequest"
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 10 * 60
MAX_EXPIRATION_SECONDS = 1 << 32


@dataclass(frozen=True)
class TokenRequestOptions:
    """kube-apiserver's token flags."""

    #: ``--service-account-max-token-expiration`` in seconds (0: no maximum).
    max_expiration_seconds: int = 0
    #: ``--service-account-extend-token-expiration``.
    extend_expiration: bool = True
    #: How long extended tokens live (``--service-account-max-token-expiration`` or a
    #: year, as kube's ``maxExtendedExpirationSeconds``).
    extended_expiration_seconds: int = EXPIRATION_EXTENSION_SECONDS


def _invalid(name: str, path: str, value: Any, detail: str) -> errors.ApiError:
    return errors.invalid_object(GROUP, KIND, name, [errors.invalid(path, value, detail)])


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


async def create_token(
    api: ObjectAPI,
    issuer: TokenIssuer,
    namespace: str,
    name: str,
    body: Any,
    requester: UserInfo,
    *,
    options: TokenRequestOptions | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Issue a token for ServiceAccount ``namespace/name`` as ``body`` (a TokenRequest)
    asks; returns the TokenRequest with its status (the router answers 201). Raises
    :class:`~kubemodel.errors.ApiError` as kube-apiserver refuses. Warnings (a shortened
    expiration) are appended to ``warnings``."""
    del requester  # authorization happened before; kept for audit and future plugins
    opts = options or TokenRequestOptions()
    if not isinstance(body, dict):
        raise errors.bad_request("the body of a token request must be a TokenRequest object")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if (api_version and api_version != API_VERSION) or (kind and kind != KIND):
        raise errors.bad_request(
            f"the body of a token request must be an {API_VERSION} {KIND}, "
            f"not {api_version or '?'} {kind or '?'}"
        )
    meta = _meta_of(body)
    if meta.get("name") and meta["name"] != name:
        raise _invalid(
            name, "metadata.name", meta["name"], "must match the service account name if specified"
        )
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise _invalid(
            name,
            "metadata.namespace",
            meta["namespace"],
            "must match the service account namespace if specified",
        )

    accounts = api.registry.get("", "v1", "serviceaccounts")
    assert accounts is not None
    entry = api.store.latest(accounts.store_key, namespace, name)
    if entry is None:
        raise errors.not_found("", "serviceaccounts", name)
    account = entry.obj()
    sa_uid = str(_meta_of(account).get("uid") or "")
    if meta.get("uid") and meta["uid"] != sa_uid:
        raise errors.conflict(
            GROUP,
            KIND,
            name,
            f"the UID in the token request ({meta['uid']}) does not match the UID of the "
            f"service account ({sa_uid})",
        )

    spec = body.get("spec")
    spec = dict(spec) if isinstance(spec, dict) else {}
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = DEFAULT_EXPIRATION_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request(
            f"spec.expirationSeconds must be an integer, not {type(seconds).__name__}"
        )
    audiences = spec.get("audiences")
    if audiences is None or audiences == []:
        audiences = list(issuer.api_audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("spec.audiences must be a list of strings")
    causes = []
    if seconds < MIN_EXPIRATION_SECONDS:
        causes.append(
            errors.invalid(
                "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
            )
        )
    if seconds > MAX_EXPIRATION_SECONDS:
        causes.append(
            errors.invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )
        )
    if causes:
        raise errors.invalid_object(GROUP, KIND, "", causes)

    bound, node, ref = _bound_object(api, namespace, name, spec.get("boundObjectRef"))

    if opts.max_expiration_seconds > 0 and seconds > opts.max_expiration_seconds:
        if warnings is not None:
            warnings.append(
                f"requested expiration of {seconds} seconds shortened to "
                f"{opts.max_expiration_seconds} seconds"
            )
        seconds = opts.max_expiration_seconds
    lifetime, warn_after = seconds, 0
    if (
        opts.extend_expiration
        and bound is not None
        and bound.kind == "Pod"
        and seconds == WARN_ONLY_EXPIRATION_SECONDS
        and all(a in issuer.api_audiences for a in audiences)
    ):
        warn_after, lifetime = seconds, opts.extended_expiration_seconds

    token, expires = issuer.issue(
        namespace,
        name,
        sa_uid,
        audiences,
        lifetime,
        bound,
        node,
        warn_after_seconds=warn_after,
    )
    issued = expires - dt.timedelta(seconds=lifetime)
    out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": seconds}
    if ref is not None:
        out_spec["boundObjectRef"] = ref
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": sa_uid,
            "creationTimestamp": _rfc3339(issued),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": _rfc3339(issued + dt.timedelta(seconds=seconds)),
        },
    }


def _bound_object(
    api: ObjectAPI, namespace: str, sa_name: str, ref: Any
) -> tuple[BoundObject | None, tuple[str, str] | None, dict[str, Any] | None]:
    """The object ``spec.boundObjectRef`` names (checked as kube checks it), the node
    of a bound pod, and the reference as the answer repeats it."""
    if ref is None:
        return None, None, None
    if not isinstance(ref, dict):
        raise errors.bad_request("spec.boundObjectRef must be an object")
    api_version = str(ref.get("apiVersion") or "")
    kind = str(ref.get("kind") or "")
    ref_name = str(ref.get("name") or "")
    ref_uid = str(ref.get("uid") or "")
    group, _, version = api_version.rpartition("/")
    if group or kind not in ("Pod", "Secret", "Node"):
        raise errors.bad_request(
            f"cannot bind token to object of type {group}/{version}, Kind={kind}"
        )

    def get(plural: str, ns: str) -> dict[str, Any]:
        info = api.registry.get("", "v1", plural)
        assert info is not None
        entry = api.store.latest(info.store_key, ns, ref_name) if ref_name else None
        if entry is None:
            raise errors.not_found("", plural, ref_name)
        return entry.obj()

    node: tuple[str, str] | None = None
    if kind == "Pod":
        obj = get("pods", namespace)
        pod_spec = obj.get("spec") or {}
        if pod_spec.get("serviceAccountName") != sa_name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{sa_name}" to pod running with '
                "different serviceaccount name."
            )
        node_name = str(pod_spec.get("nodeName") or "")
        if node_name:
            nodes = api.registry.get("", "v1", "nodes")
            assert nodes is not None
            node_entry = api.store.latest(nodes.store_key, "", node_name)
            node_uid = str(_meta_of(node_entry.obj()).get("uid") or "") if node_entry else ""
            node = (node_name, node_uid)
    elif kind == "Secret":
        obj = get("secrets", namespace)
    else:
        obj = get("nodes", "")
    uid = str(_meta_of(obj).get("uid") or "")
    if ref_uid and ref_uid != uid:
        raise errors.conflict(
            "",
            kind,
            ref_name,
            f"the UID in the bound object reference ({ref_uid}) does not match the UID in "
            "record. The object might have been deleted and then recreated",
        )
    return BoundObject(kind, ref_name, uid), node, dict(ref)
