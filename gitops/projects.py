"""Projects: what the Applications of a team may do, set by the operator, never by Git.

A project (Argo CD's AppProject, in our config) bounds its Applications: the source
repositories they may fetch (``sourceRepos``, glob patterns), the destinations they may
deploy to (``destinations``: cluster names — ``builtin`` or a name of the config's
``clusters`` — and namespace patterns), the kinds they may apply (cluster-scoped kinds
only when ``clusterResourceWhitelist`` names them; namespaced kinds unless
``namespaceResourceBlacklist`` names them or a ``namespaceResourceWhitelist`` leaves
them out), the named Git credentials they may use (``credentials``) and, optionally, a
ServiceAccount they apply as (``serviceAccountName``: every request goes out with
Kubernetes impersonation headers, so the cluster's RBAC bounds what a commit touches).
Patterns are shell globs (``*`` any run of characters, ``?`` one, ``[ab]`` a set),
matched case-sensitively against the whole value; a leading ``!`` on a source
repository pattern denies it.

The implicit project ``default`` (used when the config defines none of that name)
allows everything, as Argo CD's does: the config's own Applications are the operator's.
What an Application *declared in a repository* may say is bounded further, by
:func:`declared_problems`: it stays in its parent's project, names clusters and
credentials only by the names the project allows, never a host path, a kubeconfig, an
environment variable, a file, a local repository or ``file://``.

:func:`object_problem` is the plan-time check of each object of a revision
(:mod:`gitops.plan`): one object outside the project refuses the whole revision.

Called by :mod:`gitops.config` (the models and cross-checks), :mod:`gitops.sync`,
:mod:`gitops.plan` and the service.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from kubemodel import validation as names

DEFAULT_PROJECT = "default"
BUILTIN_CLUSTER = "builtin"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
_STRICTNESS = {"privileged": 0, "baseline": 1, "restricted": 2}


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel
    )


def _glob(value: str) -> str:
    if not value:
        raise ValueError("a pattern may not be empty (use '*' for any)")
    return value


class GroupKind(_Model):
    """A kind by API group (``""`` is the core group) and kind, both glob patterns."""

    group: str = "*"
    kind: str = "*"

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return _glob(value)

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)


class ProjectDestination(_Model):
    """Where a project's Applications may deploy: a cluster name and a namespace, globs."""

    cluster: str = "*"
    namespace: str = "*"

    @field_validator("cluster", "namespace")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _glob(value)

    def matches(self, cluster: str, namespace: str) -> bool:
        return fnmatch.fnmatchcase(cluster, self.cluster) and fnmatch.fnmatchcase(
            namespace, self.namespace
        )


class Project(_Model):
    """``projects[]``: the bounds of a group of Applications (see the module docstring)."""

    name: str
    description: str = ""
    source_repos: tuple[str, ...] = ()
    """Repository URL patterns (``https://github.com/example/*``); empty: none."""
    destinations: tuple[ProjectDestination, ...] = ()
    """Cluster and namespace patterns; empty: none."""
    cluster_resource_whitelist: tuple[GroupKind, ...] = ()
    """Cluster-scoped kinds allowed; empty: none (Namespaces and ClusterRoles included)."""
    cluster_resource_blacklist: tuple[GroupKind, ...] = ()
    namespace_resource_whitelist: tuple[GroupKind, ...] | None = None
    """Namespaced kinds allowed; unset: all (less the blacklist); ``[]``: none."""
    namespace_resource_blacklist: tuple[GroupKind, ...] = ()
    credentials: tuple[str, ...] = ()
    """Names of the config's ``credentials`` the project's Applications may use."""
    service_account_name: str | None = None
    """Apply as this ServiceAccount of the destination namespace (impersonation), unless
    the Application names its own."""
    minimum_pod_security: PodSecurityLevel | None = None
    """The least strict Pod Security ``enforce`` level a Namespace the project applies may
    set (``pod-security.kubernetes.io/enforce``): a commit cannot relabel a namespace
    ``privileged`` to run pods with host access. Unset: no bound."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if problems := names.is_dns1123_label(value):
            raise ValueError(f"{value!r} is invalid: {'; '.join(problems)}")
        return value

    @field_validator("source_repos")
    @classmethod
    def _repos(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _glob(pattern.removeprefix("!"))
        return patterns

    @field_validator("service_account_name")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        return service_account_name(value)

    # --- what the project allows ------------------------------------------------------
    def permits_repo(self, url: str) -> bool:
        """Whether ``url`` matches an allowing pattern and no denying (``!``) one."""
        allowed = False
        for pattern in self.source_repos:
            if pattern.startswith("!"):
                if fnmatch.fnmatchcase(url, pattern[1:]):
                    return False
            elif fnmatch.fnmatchcase(url, pattern):
                allowed = True
        return allowed

    def permits_destination(self, cluster: str, namespace: str) -> bool:
        return any(d.matches(cluster, namespace) for d in self.destinations)

    def permits_cluster(self, cluster: str) -> bool:
        return any(fnmatch.fnmatchcase(cluster, d.cluster) for d in self.destinations)

    def permits_kind(self, group: str, kind: str, *, namespaced: bool) -> bool:
        """Argo CD's IsGroupKindPermitted."""
        if namespaced:
            white = self.namespace_resource_whitelist
            listed = white is None or any(g.matches(group, kind) for g in white)
            return listed and not any(
                g.matches(group, kind) for g in self.namespace_resource_blacklist
            )
        return any(g.matches(group, kind) for g in self.cluster_resource_whitelist) and not any(
            g.matches(group, kind) for g in self.cluster_resource_blacklist
        )


def service_account_name(value: str | None) -> str | None:
    if value is not None and (problems := names.is_dns1123_subdomain(value)):
        raise ValueError(f"serviceAccountName {value!r} is invalid: {'; '.join(problems)}")
    return value


def allow_all(name: str = DEFAULT_PROJECT) -> Project:
    """A project that allows everything (the implicit ``default``)."""
    everything = GroupKind(group="*", kind="*")
    return Project(
        name=name,
        description="everything (the config's own Applications are the operator's)",
        source_repos=("*",),
        destinations=(ProjectDestination(cluster="*", namespace="*"),),
        cluster_resource_whitelist=(everything,),
        credentials=("*",),
    )


def permits_credentials(project: Project, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in project.credentials)


def kind_text(group: str, kind: str) -> str:
    return f"{kind}.{group}" if group else kind


def object_problem(
    project: Project,
    *,
    cluster: str,
    group: str,
    kind: str,
    namespaced: bool,
    namespace: str,
    labels: Mapping[str, Any] | None = None,
) -> str | None:
    """Why the project does not allow applying this object (None if it does);
    ``labels`` are the object's (a Namespace's Pod Security labels are bounded)."""
    if not project.permits_kind(group, kind, namespaced=namespaced):
        scope = "namespaced" if namespaced else "cluster-scoped"
        return f"project {project.name!r} does not allow {scope} kind {kind_text(group, kind)}" + (
            "" if namespaced else " (add it to clusterResourceWhitelist)"
        )
    if namespaced and not project.permits_destination(cluster, namespace):
        return (
            f"project {project.name!r} does not allow namespace {namespace!r} on cluster "
            f"{cluster!r}"
        )
    if group == "" and kind == "Namespace" and project.minimum_pod_security is not None:
        level = (labels or {}).get(ENFORCE_LABEL)
        least = project.minimum_pod_security
        if isinstance(level, str) and _STRICTNESS.get(level, 0) < _STRICTNESS[least]:
            return (
                f"project {project.name!r} does not allow the label {ENFORCE_LABEL}={level} "
                f"(its Namespaces may not be less strict than {least!r})"
            )
    return None


# --- Applications declared in a repository -----------------------------------------------
def _remote_url(url: str) -> bool:
    lowered = url.strip().lower()
    if lowered.startswith(("/", "file:", "~", ".")):
        return False
    return "://" in lowered or ("@" in lowered.split("/", 1)[0] and ":" in lowered)


def declared_problems(
    spec: Mapping[str, Any],
    *,
    parent_project: str,
    project: Project,
    clusters: Sequence[str],
    credentials: Sequence[str],
) -> list[str]:
    """What an Application declared in a repository may not say (its ``spec``, as
    written in Git, before anything is inherited from the parent): the field path and
    why, one message each. ``clusters`` and ``credentials`` are the names the operator's
    config defines."""
    problems: list[str] = []
    declared_project = spec.get("project")
    if declared_project is not None and declared_project != parent_project:
        problems.append(
            f"spec.project: {declared_project!r} is not allowed: an Application declared in "
            f"a repository stays in its parent's project ({parent_project!r})"
        )
    source = spec.get("source")
    if isinstance(source, Mapping):
        url = source.get("repoURL")
        if isinstance(url, str):
            if not _remote_url(url):
                problems.append(
                    f"spec.source.repoURL: {url!r} is not allowed: an Application declared in "
                    "a repository may not name a local path or a file:// URL (leave repoURL "
                    "out to use the same repository)"
                )
            elif not project.permits_repo(url):
                problems.append(
                    f"spec.source.repoURL: {url!r} is not one of the source repositories of "
                    f"project {project.name!r}"
                )
        creds = source.get("credentials")
        if creds is not None:
            if not isinstance(creds, str):
                problems.append(
                    "spec.source.credentials: an Application declared in a repository names "
                    "credentials the operator defined (credentials: NAME), never environment "
                    "variables or files"
                )
            elif creds not in credentials:
                problems.append(f"spec.source.credentials: unknown credentials {creds!r}")
            elif not permits_credentials(project, creds):
                problems.append(
                    f"spec.source.credentials: project {project.name!r} does not allow "
                    f"credentials {creds!r}"
                )
    destination = spec.get("destination")
    if isinstance(destination, Mapping):
        cluster = destination.get("cluster", BUILTIN_CLUSTER)
        if not isinstance(cluster, str):
            problems.append(
                "spec.destination.cluster: an Application declared in a repository names a "
                "cluster the operator defined (builtin or a name), never a kubeconfig"
            )
        elif cluster != BUILTIN_CLUSTER and cluster not in clusters:
            problems.append(f"spec.destination.cluster: unknown cluster {cluster!r}")
        elif not project.permits_cluster(cluster):
            problems.append(
                f"spec.destination.cluster: project {project.name!r} does not allow cluster "
                f"{cluster!r}"
            )
    return problems


def application_problems(
    *,
    project: Project,
    repo_url: str,
    cluster: str,
    namespace: str,
    credentials: str | None,
) -> list[str]:
    """What of an Application (from the config or from Git, after validation) its project
    does not allow: the field path and why."""
    problems: list[str] = []
    if not project.permits_repo(repo_url):
        problems.append(
            f"source.repoURL: {repo_url!r} is not one of the source repositories of project "
            f"{project.name!r}"
        )
    if not project.permits_destination(cluster, namespace):
        problems.append(
            f"destination: project {project.name!r} does not allow namespace {namespace!r} "
            f"on cluster {cluster!r}"
        )
    if credentials is not None and not permits_credentials(project, credentials):
        problems.append(
            f"source.credentials: project {project.name!r} does not allow credentials "
            f"{credentials!r}"
        )
    return problems
