"""The config model: Applications (what to sync from where to where) and service settings.

The CLI and the service call :func:`load_config` on the config file (YAML); the service
calls :func:`load_applications_from_manifests` on a build result to pick up
Applications declared in a repository (app-of-apps: objects of ``apiVersion:
gitops.dev/v1alpha1, kind: Application`` whose ``spec`` is a config entry without its
name, which comes from ``metadata.name``). Every model forbids unknown fields, so a typo
is an error, and every error names the file, the field path
(``applications[1].source.repoURL``) and the line.

Field names in YAML are camelCase (``selfHeal``, ``repoURL``); in Python they are
snake_case (``app.self_heal``, ``app.source.repo_url``). Durations (``30s``, ``5m``,
``1h30m``, Go's syntax) become float seconds. Credentials are never inline: only the
names of environment variables and files holding them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gitops.build import BuildOptions, HelmOptions
from gitops.build.documents import parse_documents
from gitops.errors import BuildError, BuildErrors, ConfigError
from gitops.manifest import Manifest
from gitops.projects import (
    BUILTIN_CLUSTER,
    DEFAULT_PROJECT,
    Project,
    allow_all,
    declared_problems,
    service_account_name,
)
from gitops.projects import application_problems as project_problems
from kubemodel import fieldpath
from kubemodel import validation as names
from kubemodel.names import PREFIX

APPLICATION_API_VERSION = f"{PREFIX}/v1alpha1"
"""The apiVersion of Applications declared in a repository."""

# --- durations -----------------------------------------------------------------------
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``30s``, ``5m``, ``1h30m``, ``1.5h``, ``250ms``).

    Raises ValueError for anything else (negative, unitless or empty durations)."""
    clean = text.strip()
    if clean == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(clean):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not clean or position != len(clean):
        raise ValueError(
            f"invalid duration {text!r}: use numbers with units (ns, us, ms, s, m, h), "
            "e.g. 30s, 5m or 1h30m"
        )
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style text for ``seconds`` (``5400`` → ``1h30m``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{int(hours)}h" if hours else ""
    text += f"{int(minutes)}m" if minutes else ""
    text += f"{round(secs, 9):g}s" if secs else ""
    return text


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # pydantic reports the type
    raise ValueError(f"a duration needs a unit: write {value}s or {value}m, not {value}")


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json-unless-none"),
]
"""Seconds, written in config as a Go-style duration string."""


# --- field paths -----------------------------------------------------------------------
_FIELD_NAME = re.compile(r"[A-Za-z0-9_$@-][A-Za-z0-9_$@-]*")


def _key_value(text: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        return yaml.safe_load(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def parse_field_path(text: str) -> tuple[str, ...]:
    """``spec.template.spec.containers[name=web].image`` as :mod:`kubemodel.fieldpath`
    path elements (``f:spec``, …, ``k:{"name":"web"}``, ``f:image``).

    Segments are field names joined by ``.``; ``[N]`` is a list position, ``[k=v]`` or
    ``[k1=v1,k2=v2]`` the element of an associative list with those keys (an integer
    value is a number, a double-quoted one a string), ``["a.b/c"]`` a field whose name
    holds dots or slashes (e.g. an annotation). Raises ValueError on malformed paths."""
    elements: list[str] = []
    rest = text.strip()
    if not rest:
        raise ValueError("a field path may not be empty")
    expect_field = True
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ValueError(f"invalid field path {text!r}: unclosed '['")
            body, rest = rest[1:end].strip(), rest[end + 1 :]
            if body.startswith('"'):
                elements.append(fieldpath.field(str(yaml.safe_load(body))))
            elif body.isdigit():
                elements.append(fieldpath.index(int(body)))
            elif "=" in body:
                pairs = [pair.partition("=") for pair in body.split(",")]
                if any(not key.strip() or not sep for key, sep, _ in pairs):
                    raise ValueError(f"invalid field path {text!r}: bad selector [{body}]")
                elements.append(fieldpath.key((k.strip(), _key_value(v)) for k, _, v in pairs))
            else:
                raise ValueError(
                    f"invalid field path {text!r}: [{body}] is neither an index, "
                    'a key selector like [name=web] nor a quoted field like ["a.b"]'
                )
            expect_field = False
        elif rest.startswith("."):
            if expect_field:
                raise ValueError(f"invalid field path {text!r}: empty segment")
            rest, expect_field = rest[1:], True
        else:
            if not expect_field:
                raise ValueError(f"invalid field path {text!r}: missing '.' before {rest!r}")
            found = _FIELD_NAME.match(rest)
            if found is None:
                raise ValueError(f"invalid field path {text!r}: unexpected {rest[0]!r}")
            elements.append(fieldpath.field(found.group(0)))
            rest, expect_field = rest[found.end() :], False
    if expect_field:
        raise ValueError(f"invalid field path {text!r}: it ends with '.'")
    return tuple(elements)


def _json_pointer(pointer: str) -> str:
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must start with '/' (RFC 6901)")
    if re.search(r"~(?![01])", pointer):
        raise ValueError(f"JSON pointer {pointer!r}: '~' must be followed by 0 or 1")
    return pointer


# --- models --------------------------------------------------------------------------
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel
    )


def _env_name(value: str | None) -> str | None:
    if value is not None and _ENV_NAME.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _dns_label(value: str) -> str:
    if problems := names.is_dns1123_label(value):
        raise ValueError(f"{value!r} is invalid: {'; '.join(problems)}")
    return value


_HELM_RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
HELM_RELEASE_MAX = 53


class HelmSpec(_Model):
    """``source.build.helm``: how a chart is rendered."""

    release_name: str = ""
    """Empty: the Application's name. Helm's rule: a lowercase DNS-1123 subdomain of at
    most 53 characters (so it can never read as a flag of the helm command)."""
    namespace: str = ""
    """Empty: the destination namespace."""
    values_files: tuple[str, ...] = ()
    """Relative to the chart directory."""
    values: dict[str, Any] = Field(default_factory=dict)
    include_crds: bool = Field(default=True, alias="includeCRDs")

    @field_validator("release_name")
    @classmethod
    def _release_name(cls, value: str) -> str:
        if value and (len(value) > HELM_RELEASE_MAX or not _HELM_RELEASE.fullmatch(value)):
            raise ValueError(
                f"releaseName {value!r} is invalid: lowercase letters, digits, '-' and '.', "
                f"starting and ending with a letter or digit, at most {HELM_RELEASE_MAX} characters"
            )
        return value

    @field_validator("values_files")
    @classmethod
    def _relative_files(cls, files: tuple[str, ...]) -> tuple[str, ...]:
        for file in files:
            posix = PurePosixPath(file)
            if not file or posix.is_absolute() or ".." in posix.parts or file.startswith("-"):
                raise ValueError(
                    f"values file {file!r} must be a path inside the chart directory "
                    "(relative, without '..')"
                )
        return files

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value) if value else value


class BuildSpec(_Model):
    """``source.build``: which builder and its settings (see :mod:`gitops.build`)."""

    kind: Literal["auto", "plain", "kustomize", "helm"] = "auto"
    helm: HelmSpec = Field(default_factory=HelmSpec)
    exclude: tuple[str, ...] = ()
    """Glob patterns relative to the path; plain directories only."""

    @model_validator(mode="after")
    def _settings_fit_kind(self) -> BuildSpec:
        if self.kind in ("plain", "kustomize") and "helm" in self.model_fields_set:
            raise ValueError(f"helm settings need kind helm or auto, not {self.kind}")
        if self.kind in ("helm", "kustomize") and self.exclude:
            raise ValueError(f"exclude applies to plain directories, not to kind {self.kind}")
        return self


class Credentials(_Model):
    """Where the secrets to fetch a repository are: environment variables and files."""

    username_env: str | None = None
    token_env: str | None = None
    password_env: str | None = None
    token_file: str | None = None
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None

    @field_validator("username_env", "token_env", "password_env")
    @classmethod
    def _env_names(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _one_secret(self) -> Credentials:
        given = [
            name
            for name, value in (
                ("tokenEnv", self.token_env),
                ("passwordEnv", self.password_env),
                ("tokenFile", self.token_file),
            )
            if value
        ]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(given)}, not several")
        return self

    @property
    def uses_ssh(self) -> bool:
        return bool(self.ssh_key_file or self.known_hosts_file)

    @property
    def uses_http(self) -> bool:
        return bool(self.username_env or self.token_env or self.password_env or self.token_file)


_SCP_LIKE = re.compile(r"(?:[^@/\s:]+@)?[^@/\s:]+:(?!//)\S+")
RepoKind = Literal["https", "http", "ssh", "git", "file", "local"]


def repo_kind(url: str) -> RepoKind:
    """How ``url`` is reached: ``https``/``http``/``git``/``ssh`` (URLs and
    ``user@host:path``), ``file`` (``file://``) or ``local`` (an absolute path).

    Raises ValueError for anything else and for URLs with an inline password."""
    if url.startswith("/"):
        return "local"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise ValueError(f"{url!r}: a file:// URL needs an absolute path (file:///srv/repo)")
        return "file"
    if scheme in ("https", "http", "ssh", "git") and "://" in url:
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host")
        if parts.password:
            raise ValueError(
                "the repository URL holds a password: remove it and name an environment "
                "variable in source.credentials (tokenEnv or passwordEnv) instead"
            )
        return scheme  # type: ignore[return-value]
    if _SCP_LIKE.fullmatch(url):
        return "ssh"
    raise ValueError(
        f"{url!r} is not a repository URL: use https://, http://, ssh://, git:// or "
        "file:// URLs, user@host:path, or an absolute path"
    )


def _reference(value: str) -> str:
    """A name the operator's config defines (a cluster, credentials)."""
    if problems := names.is_dns1123_label(value):
        raise ValueError(f"{value!r} is not a name: {'; '.join(problems)}")
    return value


class Source(_Model):
    """``source``: the repository, revision and directory to build."""

    repo_url: str = Field(alias="repoURL")
    revision: str = "HEAD"
    """A branch, a tag, a semver range over tags or a commit SHA."""
    path: str = "."
    build: BuildSpec = Field(default_factory=BuildSpec)
    credentials: Credentials | str | None = None
    """Where the secrets are (environment variables, files: the config's own
    Applications only), or the name of the config's ``credentials`` entry."""

    @field_validator("credentials")
    @classmethod
    def _named_credentials(cls, value: Credentials | str | None) -> Credentials | str | None:
        return _reference(value) if isinstance(value, str) else value

    @property
    def credentials_name(self) -> str | None:
        return self.credentials if isinstance(self.credentials, str) else None

    @field_validator("repo_url")
    @classmethod
    def _repo_url(cls, value: str) -> str:
        repo_kind(value)
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("revision may not be empty (HEAD, a branch, tag, range or SHA)")
        if any(ch.isspace() or ord(ch) < 32 for ch in value if ch != " "):
            raise ValueError(f"revision {value!r} contains tabs, line breaks or control characters")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        clean = value.strip() or "."
        posix = PurePosixPath(clean)
        if posix.is_absolute():
            raise ValueError(f"path {value!r} must be relative to the repository root")
        if ".." in posix.parts:
            raise ValueError(f"path {value!r} may not contain '..'")
        return posix.as_posix()

    @model_validator(mode="after")
    def _credentials_fit_url(self) -> Source:
        kind = repo_kind(self.repo_url)
        creds = self.credentials
        if creds is None or isinstance(creds, str):
            return self
        if creds.uses_ssh and kind != "ssh":
            raise ValueError("sshKeyFile and knownHostsFile need an ssh repository URL")
        if creds.uses_http and kind not in ("https", "http"):
            raise ValueError(
                "usernameEnv, tokenEnv, passwordEnv and tokenFile need an http(s) repository URL"
            )
        return self


class ClusterAccess(_Model):
    """``clusters.NAME``: how the operator's named cluster is reached."""

    kubeconfig: str
    context: str | None = None


class Cluster(_Model):
    """``destination.cluster``: ``builtin``, the name of one of the config's ``clusters``,
    or (the config's own Applications) ``{kubeconfig: PATH, context: NAME}``."""

    builtin: bool = False
    name: str | None = None
    kubeconfig: str | None = None
    context: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value == BUILTIN_CLUSTER:
                return {"builtin": True}
            return {"name": _reference(value)}
        return value

    @model_validator(mode="after")
    def _one_cluster(self) -> Cluster:
        if self.builtin and (self.kubeconfig or self.context or self.name):
            raise ValueError("the builtin cluster takes no kubeconfig, context or name")
        if self.name and (self.kubeconfig or self.context):
            raise ValueError("a named cluster takes no kubeconfig or context")
        if not self.builtin and not self.kubeconfig and not self.name:
            raise ValueError("a cluster needs 'builtin', a cluster name or a kubeconfig path")
        return self

    @property
    def label(self) -> str:
        """How projects name it: ``builtin``, its name, or its kubeconfig path."""
        if self.builtin:
            return BUILTIN_CLUSTER
        return self.name or f"{self.kubeconfig}{'#' + self.context if self.context else ''}"


class Destination(_Model):
    """``destination``: the cluster and the default namespace of namespaced objects."""

    cluster: Cluster = Field(default_factory=lambda: Cluster(builtin=True))
    namespace: str = "default"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value)


class Backoff(_Model):
    duration: Duration = Field(default=5.0, gt=0)
    factor: float = Field(default=2.0, ge=1)
    max_duration: Duration = Field(default=180.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.max_duration < self.duration:
            raise ValueError("maxDuration must not be shorter than duration")
        return self


class Retry(_Model):
    """``retry``: how often a failed sync is tried again before the next interval."""

    limit: int = Field(default=5, ge=0)
    backoff: Backoff = Field(default_factory=Backoff)


class IgnoreDifference(_Model):
    """Fields of matching objects whose drift is not reported nor corrected."""

    group: str | None = None
    kind: str = Field(min_length=1)
    name: str | None = None
    namespace: str | None = None
    json_pointers: tuple[str, ...] = ()
    field_paths: tuple[str, ...] = ()
    managed_fields_managers: tuple[str, ...] = ()

    @field_validator("json_pointers")
    @classmethod
    def _pointers(cls, pointers: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_json_pointer(p) for p in pointers)

    @field_validator("field_paths")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            parse_field_path(path)
        return paths

    @model_validator(mode="after")
    def _something(self) -> IgnoreDifference:
        if not (self.json_pointers or self.field_paths or self.managed_fields_managers):
            raise ValueError("give jsonPointers, fieldPaths or managedFieldsManagers")
        return self

    @property
    def field_path_elements(self) -> tuple[tuple[str, ...], ...]:
        """``field_paths`` as :mod:`kubemodel.fieldpath` path elements."""
        return tuple(parse_field_path(p) for p in self.field_paths)


class Application(_Model):
    """One Application: a directory of a repository kept applied to a destination."""

    name: str
    project: str = DEFAULT_PROJECT
    source: Source
    destination: Destination = Field(default_factory=Destination)
    interval: Duration = Field(default=180.0, gt=0)
    """How often the source is polled and drift corrected."""
    timeout: Duration = Field(default=300.0, gt=0)
    """How long to wait for applied objects to become healthy."""
    prune: bool = True
    self_heal: bool = False
    force: bool = False
    """Force conflicts on server-side apply."""
    suspend: bool = False
    depends_on: tuple[str, ...] = ()
    retry: Retry | None = None
    ignore_differences: tuple[IgnoreDifference, ...] = ()
    service_account_name: str | None = None
    """Apply as this ServiceAccount of the destination namespace (Kubernetes
    impersonation), so the cluster's RBAC bounds what the Application can touch."""

    @field_validator("name", "project")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value)

    @field_validator("service_account_name")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        return service_account_name(value)

    @field_validator("depends_on")
    @classmethod
    def _depends_on(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _dns_label(name)
        return names

    @model_validator(mode="after")
    def _not_on_itself(self) -> Application:
        if self.name in self.depends_on:
            raise ValueError(f"application {self.name!r} depends on itself")
        return self

    def build_options(self) -> BuildOptions:
        """What :func:`gitops.build.build` needs for this Application's source."""
        spec = self.source.build
        return BuildOptions(
            kind=spec.kind,
            exclude=spec.exclude,
            helm=HelmOptions(
                release_name=spec.helm.release_name or self.name,
                namespace=spec.helm.namespace or self.destination.namespace,
                values_files=spec.helm.values_files,
                values=spec.helm.values,
                include_crds=spec.helm.include_crds,
            ),
        )


class Service(_Model):
    """``service``: settings of ``gitops serve``."""

    listen: str = "127.0.0.1:8080"
    webhook_secret_env: str | None = None
    state_dir: str | None = None
    """Empty: the CLI's default state directory."""
    read_access: Literal["open", "token"] = "open"
    """``token``: /status, /metrics and /readyz need the service token too."""
    allow_unsigned_webhooks: bool = False
    """Accept webhooks without a signature or token; only on a loopback listener."""

    @field_validator("webhook_secret_env")
    @classmethod
    def _secret_env(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"listen {value!r} must be HOST:PORT (e.g. 127.0.0.1:8080)")
        return value


# --- checks across Applications -----------------------------------------------------
Loc = tuple[str | int, ...]


class _ApplicationProblems(ValueError):
    """Problems across Applications: (index of the application, loc inside it, message)."""

    def __init__(self, problems: list[tuple[int, Loc, str]]) -> None:
        super().__init__("; ".join(f"applications[{i}]: {m}" for i, _, m in problems))
        self.problems = problems


def _cycles(apps: Sequence[Application]) -> list[list[int]]:
    """Each dependency cycle once, as indexes in dependency order."""
    index: dict[str, int] = {}
    for i, app in enumerate(apps):
        index.setdefault(app.name, i)
    state = [0] * len(apps)  # 0 new, 1 on the stack, 2 done
    cycles: list[list[int]] = []

    def visit(start: int) -> None:
        stack: list[tuple[int, int]] = [(start, 0)]
        path: list[int] = [start]
        state[start] = 1
        while stack:
            node, edge = stack[-1]
            deps = [index[d] for d in apps[node].depends_on if d in index]
            if edge < len(deps):
                stack[-1] = (node, edge + 1)
                nxt = deps[edge]
                if state[nxt] == 1:
                    cycles.append(path[path.index(nxt) :])
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()

    for i in range(len(apps)):
        if state[i] == 0:
            visit(i)
    return cycles


def application_problems(apps: Sequence[Application]) -> list[tuple[int, Loc, str]]:
    """Duplicate names, unknown ``dependsOn`` names and cycles among ``apps``:
    (index of the application at fault, field path inside it, message)."""
    problems: list[tuple[int, Loc, str]] = []
    first: dict[str, int] = {}
    for i, app in enumerate(apps):
        if app.name in first:
            problems.append(
                (
                    i,
                    ("name",),
                    f"application {app.name!r} is declared twice (first: applications[{first[app.name]}])",
                )
            )
        else:
            first[app.name] = i
    for i, app in enumerate(apps):
        for j, dependency in enumerate(app.depends_on):
            if dependency not in first:
                problems.append((i, ("dependsOn", j), f"unknown application {dependency!r}"))
    for cycle in _cycles(apps):
        names = " → ".join(apps[i].name for i in [*cycle, cycle[0]])
        problems.append((max(cycle), ("dependsOn",), f"dependency cycle: {names}"))
    return problems


def check_applications(apps: Sequence[Application]) -> None:
    """Raise :class:`ConfigError` when names repeat, dependencies are unknown or cyclic."""
    problems = application_problems(apps)
    if problems:
        raise ConfigError("; ".join(f"{apps[i].name}: {_path(loc)}: {m}" for i, loc, m in problems))


class Config(_Model):
    """The whole config file."""

    applications: tuple[Application, ...] = ()
    projects: tuple[Project, ...] = ()
    clusters: dict[str, ClusterAccess] = Field(default_factory=dict)
    """Named clusters Applications (and projects) refer to."""
    credentials: dict[str, Credentials] = Field(default_factory=dict)
    """Named Git credentials Applications (and projects) refer to."""
    service: Service = Field(default_factory=Service)

    @field_validator("clusters", "credentials")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            _reference(name)
            if name == BUILTIN_CLUSTER:
                raise ValueError(f"{name!r} is reserved for the built-in cluster")
        return value

    @model_validator(mode="after")
    def _across_applications(self) -> Config:
        problems = application_problems(self.applications)
        seen: set[str] = set()
        for project in self.projects:
            if project.name in seen:
                raise ValueError(f"project {project.name!r} is declared twice")
            seen.add(project.name)
        for i, app in enumerate(self.applications):
            problems += [(i, loc, m) for loc, m in self.policy_problems(app)]
        if problems:
            raise _ApplicationProblems(problems)
        return self

    def application(self, name: str) -> Application | None:
        return next((app for app in self.applications if app.name == name), None)

    def project(self, name: str) -> Project | None:
        """The project of that name; ``default`` allows everything unless the config
        defines it."""
        found = next((p for p in self.projects if p.name == name), None)
        if found is None and name == DEFAULT_PROJECT:
            return allow_all()
        return found

    def project_of(self, app: Application) -> Project:
        project = self.project(app.project)
        if project is None:
            raise ConfigError(f"application {app.name}: unknown project {app.project!r}")
        return project

    def cluster_access(self, cluster: Cluster) -> ClusterAccess | None:
        """How a destination cluster is reached (None: the built-in cluster)."""
        if cluster.builtin:
            return None
        if cluster.name is not None:
            access = self.clusters.get(cluster.name)
            if access is None:
                raise ConfigError(f"unknown cluster {cluster.name!r}")
            return access
        return ClusterAccess(kubeconfig=cluster.kubeconfig or "", context=cluster.context)

    def credentials_spec(self, app: Application) -> Credentials | None:
        creds = app.source.credentials
        if isinstance(creds, str):
            found = self.credentials.get(creds)
            if found is None:
                raise ConfigError(f"application {app.name}: unknown credentials {creds!r}")
            return found
        return creds

    def policy_problems(self, app: Application) -> list[tuple[Loc, str]]:
        """Names ``app`` refers to that the config does not define, and what of it its
        project does not allow."""
        problems: list[tuple[Loc, str]] = []
        project = self.project(app.project)
        if project is None:
            return [(("project",), f"unknown project {app.project!r}")]
        cluster = app.destination.cluster
        if cluster.name is not None and cluster.name not in self.clusters:
            problems.append((("destination", "cluster"), f"unknown cluster {cluster.name!r}"))
        named = app.source.credentials_name
        if named is not None and named not in self.credentials:
            problems.append((("source", "credentials"), f"unknown credentials {named!r}"))
        for message in application_policy(project, app):
            field, _, text = message.partition(": ")
            problems.append((tuple(field.split(".")), text))
        return problems


def application_policy(project: Project, app: Application) -> list[str]:
    """What of ``app`` its project does not allow (``field: message`` each)."""
    return project_problems(
        project=project,
        repo_url=app.source.repo_url,
        cluster=app.destination.cluster.label,
        namespace=app.destination.namespace,
        credentials=app.source.credentials_name,
    )


# --- loading -------------------------------------------------------------------------
def _all_field_names() -> set[str]:
    models: list[type[BaseModel]] = [
        HelmSpec, BuildSpec, Credentials, Source, Cluster, ClusterAccess, Destination,
        Backoff, Retry, IgnoreDifference, Application, Service, Config, Project,
    ]  # fmt: skip
    return {f.alias or n for m in models for n, f in m.model_fields.items()}


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _line(node: yaml.Node | None, loc: Loc) -> int | None:
    """The line of the deepest YAML node along ``loc`` (1-based)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    current: yaml.Node = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, current = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(current.value):
                return line
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            return line
    return line


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, sorted(_all_field_names()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field{hint}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _problems(exc: ValidationError) -> list[tuple[Loc, str]]:
    """Each error of ``exc`` as (field path, message), expanding cross-application ones."""
    problems: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _ApplicationProblems):
            problems.extend(
                ((*loc, "applications", i, *inner), m) for i, inner, m in cause.problems
            )
        else:
            problems.append((loc, _message(error)))
    return problems


def _config_error(file: str, problems: list[tuple[str, int | None, str]]) -> ConfigError:
    lines = [
        f"{file}:{line}: {path}: {m}" if line else f"{file}: {path}: {m}"
        for path, line, m in problems
    ]
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError(f"{file}: {len(lines)} problems:\n  " + "\n  ".join(lines))


def load_config(path: Path) -> Config:
    """The validated config in the YAML file ``path``; :class:`ConfigError` names the
    file, the line and the field path of every problem."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config: {exc.strerror}") from None
    try:
        documents = parse_documents(text, file)
    except BuildError as exc:
        raise ConfigError(str(exc)) from None
    if len(documents) > 1:
        raise ConfigError(f"{file}:{documents[1][1]}: the config must be a single YAML document")
    data, start = documents[0] if documents else ({}, 1)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:{start}: the config must be a mapping (applications:, service:)")
    node = next(
        (
            n
            for n in yaml.compose_all(text, Loader=yaml.SafeLoader)
            if n is not None and n.start_mark.line + 1 == start
        ),
        None,
    )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [(_path(loc), _line(node, loc), m) for loc, m in _problems(exc)]
        raise _config_error(file, problems) from None


def is_application(manifest: Manifest) -> bool:
    return manifest.kind == "Application" and manifest.key.group == PREFIX


def inherit_from(spec: dict[str, Any], parent: Application) -> dict[str, Any]:
    """An Application declared in a repository without ``source.repoURL`` lives in the
    same repository (revision and credentials) as the Application that declared it, and
    in its parent's project unless it names that project itself."""
    out = dict(spec)
    out.setdefault("project", parent.project)
    source = out.get("source")
    if isinstance(source, dict) and "repoURL" not in source:
        source = dict(source)
        source["repoURL"] = parent.source.repo_url
        source.setdefault("revision", parent.source.revision)
        if parent.source.credentials is not None and "credentials" not in source:
            creds = parent.source.credentials
            source["credentials"] = (
                creds if isinstance(creds, str) else creds.model_dump(by_alias=True)
            )
        out["source"] = source
    return out


def load_applications_from_manifests(
    manifests: Sequence[Manifest],
    others: Sequence[Application] = (),
    *,
    parent: Application | None = None,
    config: Config | None = None,
) -> list[Application]:
    """The Applications declared among ``manifests`` (app-of-apps); other objects are ignored.

    ``others`` are Applications already declared elsewhere (the config's): names must
    not repeat theirs and ``dependsOn`` may name them. ``parent`` is the Application
    whose repository declares them: what they write is checked against its project
    first (:func:`gitops.projects.declared_problems`: no host paths, kubeconfigs,
    environment variables, files, local repositories; only names the operator's
    ``config`` defines and the project allows), then they inherit its repository and
    project (:func:`inherit_from`) and must stay inside that project. Raises
    :class:`BuildErrors` with the file and line of each invalid Application."""
    config = config if config is not None else Config()
    errors: list[BuildError] = []
    found: list[tuple[Application, Manifest]] = []
    for manifest in manifests:
        if not is_application(manifest):
            continue
        origin = manifest.origin
        where = f"Application {manifest.name or '<unnamed>'}"

        def error(message: str, origin: Any = origin, where: str = where) -> None:
            errors.append(BuildError(f"{where}: {message}", file=origin.file, line=origin.line))

        if manifest.api_version != APPLICATION_API_VERSION:
            error(
                f"apiVersion {manifest.api_version} is not supported "
                f"(use {APPLICATION_API_VERSION})"
            )
            continue
        spec = manifest.obj.get("spec")
        if not isinstance(spec, dict):
            error("spec is required")
            continue
        if "name" in spec:
            error("spec.name is not allowed: the name is metadata.name")
            continue
        if parent is not None:
            project = config.project_of(parent)
            refused = declared_problems(
                spec,
                parent_project=parent.project,
                project=project,
                clusters=sorted(config.clusters),
                credentials=sorted(config.credentials),
            )
            for message in refused:
                error(message)
            if refused:
                continue
            spec = inherit_from(spec, parent)
        try:
            app = Application.model_validate({**spec, "name": manifest.name})
        except ValidationError as exc:
            for loc, message in _problems(exc):
                field = "metadata.name" if loc == ("name",) else f"spec.{_path(loc)}"
                error(f"{field}: {message}")
            continue
        if parent is not None:
            for message in application_policy(config.project_of(parent), app):
                error(f"spec.{message}")
        found.append((app, manifest))
    if not errors:
        everything = [*others, *(app for app, _ in found)]
        for i, loc, message in application_problems(everything):
            if i < len(others):
                errors.append(
                    BuildError(f"application {everything[i].name}: {_path(loc)}: {message}")
                )
                continue
            app, manifest = found[i - len(others)]
            field = "metadata.name" if loc == ("name",) else f"spec.{_path(loc)}"
            errors.append(
                BuildError(
                    f"Application {app.name}: {field}: {message}",
                    file=manifest.origin.file,
                    line=manifest.origin.line,
                )
            )
    if errors:
        raise BuildErrors(errors)
    return [app for app, _ in found]
