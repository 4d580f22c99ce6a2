"""The ServiceAccount admission plugin (kube-apiserver's
``plugin/pkg/admission/serviceaccount``): on pod CREATE, set the pod's ServiceAccount,
check it exists, and give every container the API credentials volume.

Who calls it: the object layer (:mod:`runtime.api.objects`), as one of
``ApiOptions.admission``, for every write from a requester; it acts on pod creations
only (not subresources, not mirror pods, which kube leaves untouched too).

Kubernetes semantics followed:

* ``spec.serviceAccountName`` defaults to ``default``;
* the named ServiceAccount must exist, else 403 ``pods "x" is forbidden: error looking
  up service account <ns>/<sa>: serviceaccount "<sa>" not found``. Deviation, on
  purpose: when it is ``default`` and does not exist yet (a namespace created a moment
  ago, before the service-account controller made it) the pod is admitted as if the
  account had no settings; its kubelet then keeps the pod in ``ContainerCreating`` until
  the token can be issued (kube retries the lookup for about a second and refuses);
* unless ``automountServiceAccountToken`` is false on the pod (or, when the pod does not
  say, on the ServiceAccount), a projected volume ``kube-api-access-<5 random>`` (the
  token for 3607 s at ``token``, ``ca.crt`` from ConfigMap ``kube-root-ca.crt``, the
  namespace from the downward API, ``defaultMode`` 420) is added, mounted read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` in every init container and
  container that has nothing mounted there; a volume named ``kube-api-access-*`` the pod
  already has is reused;
* a pod without ``imagePullSecrets`` gets the ServiceAccount's;
* a ServiceAccount annotated ``kubernetes.io/enforce-mountable-secrets: "true"`` limits
  the pod's secret volumes, ``env`` ``secretKeyRef`` and ``envFrom`` ``secretRef`` (init
  containers and containers) to its ``secrets`` and the pod's ``imagePullSecrets`` to
  its ``imagePullSecrets``, with kube's messages.

Not done: the checks on ``ephemeralcontainers`` updates and the mirror pod refusals
(this cluster has no static pods).
"""

from __future__ import annotations

import secrets as random
from collections.abc import Callable
from typing import Any

from kubemodel import errors
from runtime.api.registry import Registry
from runtime.api.store import Store
from runtime.auth.admission import AdmissionRequest

DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
TOKEN_EXPIRATION_SECONDS = 3607
PROJECTED_DEFAULT_MODE = 0o644  # 420
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's SimpleNameGenerator

Obj = dict[str, Any]


def generate_volume_name() -> str:
    return VOLUME_PREFIX + "".join(random.choice(_ALPHABET) for _ in range(5))


def token_volume_source() -> Obj:
    """The projected source kube's plugin adds (``TokenVolumeSource``), fields in the
    order the API server serialises them."""
    return {
        "sources": [
            {
                "serviceAccountToken": {
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": "token",
                }
            },
            {
                "configMap": {
                    "name": ROOT_CA_CONFIG_MAP,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
        "defaultMode": PROJECTED_DEFAULT_MODE,
    }


def _parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool`` (anything else is false, as kube ignores the error)."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class ServiceAccountAdmission:
    """An :class:`~runtime.auth.admission.AdmissionPlugin`; reads ServiceAccounts
    from ``store``. ``generate_name`` makes the volume's name (tests pin it)."""

    def __init__(
        self,
        store: Store,
        registry: Registry | None = None,
        *,
        generate_name: Callable[[], str] = generate_volume_name,
    ) -> None:
        self.store = store
        info = registry.get("", "v1", "serviceaccounts") if registry is not None else None
        self.accounts_key = info.store_key if info is not None else "core/serviceaccounts"
        self.generate_name = generate_name

    def admit(self, request: AdmissionRequest) -> list[str]:
        if (
            request.operation != "CREATE"
            or request.subresource
            or request.info.store_key != "core/pods"
        ):
            return []
        pod = request.obj
        meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
        annotations = (meta or {}).get("annotations") or {}
        if isinstance(annotations, dict) and MIRROR_ANNOTATION in annotations:
            return []
        spec = pod.setdefault("spec", {})
        if not isinstance(spec, dict):
            return []
        name = spec.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = name
        if not spec.get("serviceAccount"):
            spec["serviceAccount"] = name
        entry = self.store.latest(self.accounts_key, request.namespace, str(name))
        account: Obj | None = None if entry is None else entry.obj()
        if account is None and name != DEFAULT_SERVICE_ACCOUNT:
            raise self._forbidden(
                request,
                f"error looking up service account {request.namespace}/{name}: "
                f'serviceaccount "{name}" not found',
            )
        if self._automount(account, spec):
            self._mount_token(spec)
        if account is not None:
            if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
                spec["imagePullSecrets"] = [
                    {"name": str(s.get("name") or "")} for s in _dicts(account["imagePullSecrets"])
                ]
            if self._enforce_mountable(account):
                problem = _secret_reference_problem(account, spec)
                if problem:
                    raise self._forbidden(request, problem)
        return []

    @staticmethod
    def _forbidden(request: AdmissionRequest, message: str) -> errors.ApiError:
        details: Obj = {"name": request.name} if request.name else {}
        details["kind"] = "pods"
        what = f'pods "{request.name}"' if request.name else "pods"
        return errors.ApiError(403, "Forbidden", f"{what} is forbidden: {message}", details)

    @staticmethod
    def _automount(account: Obj | None, spec: Obj) -> bool:
        if spec.get("automountServiceAccountToken") is not None:
            return bool(spec["automountServiceAccountToken"])
        if account is not None and account.get("automountServiceAccountToken") is not None:
            return bool(account["automountServiceAccountToken"])
        return True

    @staticmethod
    def _enforce_mountable(account: Obj) -> bool:
        annotations = (account.get("metadata") or {}).get("annotations") or {}
        value = annotations.get(ENFORCE_MOUNTABLE_SECRETS)
        return isinstance(value, str) and _parse_bool(value)

    def _mount_token(self, spec: Obj) -> None:
        volumes = spec.get("volumes")
        volumes = volumes if isinstance(volumes, list) else []
        existing = next(
            (
                str(v.get("name"))
                for v in _dicts(volumes)
                if str(v.get("name") or "").startswith(VOLUME_PREFIX)
            ),
            "",
        )
        volume_name = existing or self.generate_name()
        needed = False
        for key in ("initContainers", "containers"):
            for container in _dicts(spec.get(key)):
                mounts = container.get("volumeMounts")
                mounts = mounts if isinstance(mounts, list) else []
                if any(m.get("mountPath") == MOUNT_PATH for m in _dicts(mounts)):
                    continue
                mounts.append({"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH})
                container["volumeMounts"] = mounts
                needed = True
        if needed and not existing:
            volumes.append({"name": volume_name, "projected": token_volume_source()})
            spec["volumes"] = volumes


def _secret_reference_problem(account: Obj, spec: Obj) -> str:
    """kube's ``limitSecretReferences``: the first reference the account does not allow."""
    sa_name = str((account.get("metadata") or {}).get("name") or "")
    mountable = {str(s.get("name") or "") for s in _dicts(account.get("secrets"))}
    for volume in _dicts(spec.get("volumes")):
        source = volume.get("secret")
        if isinstance(source, dict):
            secret = str(source.get("secretName") or "")
            if secret not in mountable:
                return (
                    f'volume with secret.secretName="{secret}" is not allowed because service '
                    f"account {sa_name} does not reference that secret"
                )
    for key, what in (("initContainers", "init container"), ("containers", "container")):
        for container in _dicts(spec.get(key)):
            cname = str(container.get("name") or "")
            for env in _dicts(container.get("env")):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if isinstance(ref, dict) and str(ref.get("name") or "") not in mountable:
                    return (
                        f"{what} {cname} with envVar {env.get('name') or ''} referencing "
                        f'secret.secretName="{ref.get("name") or ""}" is not allowed because '
                        f"service account {sa_name} does not reference that secret"
                    )
            for env_from in _dicts(container.get("envFrom")):
                ref = env_from.get("secretRef")
                if isinstance(ref, dict) and str(ref.get("name") or "") not in mountable:
                    return (
                        f'{what} {cname} with envFrom referencing secret.secretName="'
                        f'{ref.get("name") or ""}" is not allowed because service account '
                        f"{sa_name} does not reference that secret"
                    )
    pull = {str(s.get("name") or "") for s in _dicts(account.get("imagePullSecrets"))}
    for i, ref in enumerate(_dicts(spec.get("imagePullSecrets"))):
        if str(ref.get("name") or "") not in pull:
            return (
                f'imagePullSecrets[{i}].name="{ref.get("name") or ""}" is not allowed because '
                f"service account {sa_name} does not reference that imagePullSecret"
            )
    return ""
