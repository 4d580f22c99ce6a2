"""The config model: loading, defaults, and errors that name file, field path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gitops.build.documents import load_text
from gitops.config import (
    Application,
    Config,
    check_applications,
    format_duration,
    load_applications_from_manifests,
    load_config,
    parse_duration,
    parse_field_path,
    repo_kind,
)
from gitops.errors import BuildErrors, ConfigError

FULL = """\
applications:
  - name: guestbook
    source:
      repoURL: https://github.com/example/apps.git
      revision: main
      path: apps/guestbook
      build:
        kind: helm
        helm:
          valuesFiles: [values-prod.yaml]
          values: {replicas: 2}
      credentials: {usernameEnv: GIT_USER, tokenEnv: GIT_TOKEN}
    destination:
      cluster: {kubeconfig: /etc/kube/prod.yaml, context: prod}
      namespace: web
    interval: 1h30m
    timeout: 90s
    selfHeal: true
    force: true
    dependsOn: [platform]
    retry: {limit: 3, backoff: {duration: 10s, factor: 1.5, maxDuration: 5m}}
    ignoreDifferences:
      - group: apps
        kind: Deployment
        name: web
        jsonPointers: [/spec/replicas]
        fieldPaths: ["spec.template.spec.containers[name=web].image"]
        managedFieldsManagers: [kube-controller-manager]
  - name: platform
    source:
      repoURL: git@github.com:example/platform.git
      credentials: {sshKeyFile: /keys/id_ed25519, knownHostsFile: /keys/known_hosts}
service:
  listen: 0.0.0.0:9090
  webhookSecretEnv: GITOPS_WEBHOOK_SECRET
  stateDir: /var/lib/gitops
"""


def _write(tmp_path: Path, text: str, name: str = "gitops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    return message.replace(str(path), "gitops.yaml")


def _app(extra: str = "", name: str = "web") -> str:
    return f"applications:\n  - name: {name}\n    source:\n      repoURL: /srv/repo\n{extra}"


# --- loading a full config -----------------------------------------------------------------
def test_a_full_config_loads_with_every_field(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL))
    guestbook, platform = config.applications
    assert guestbook.source.repo_url == "https://github.com/example/apps.git"
    assert guestbook.source.path == "apps/guestbook"
    assert guestbook.source.credentials is not None
    assert guestbook.source.credentials.token_env == "GIT_TOKEN"
    assert guestbook.destination.cluster.kubeconfig == "/etc/kube/prod.yaml"
    assert guestbook.destination.cluster.context == "prod"
    assert not guestbook.destination.cluster.builtin
    assert (guestbook.interval, guestbook.timeout) == (5400.0, 90.0)
    assert (guestbook.self_heal, guestbook.force, guestbook.prune) == (True, True, True)
    assert guestbook.depends_on == ("platform",)
    assert guestbook.retry is not None
    assert guestbook.retry.backoff.max_duration == 300.0
    (ignore,) = guestbook.ignore_differences
    assert ignore.field_path_elements == (
        ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image"),
    )
    assert platform.source.revision == "HEAD"
    assert platform.source.path == "."
    assert platform.destination.cluster.builtin
    assert platform.destination.namespace == "default"
    assert (platform.interval, platform.timeout) == (180.0, 300.0)
    assert config.service.listen == "0.0.0.0:9090"
    assert config.service.webhook_secret_env == "GITOPS_WEBHOOK_SECRET"
    assert config.application("platform") is platform


def test_build_options_fill_the_release_name_and_namespace_from_the_application(
    tmp_path: Path,
) -> None:
    guestbook = load_config(_write(tmp_path, FULL)).applications[0]
    options = guestbook.build_options()
    assert options.kind == "helm"
    assert options.helm.release_name == "guestbook"
    assert options.helm.namespace == "web"
    assert options.helm.values_files == ("values-prod.yaml",)
    assert dict(options.helm.values) == {"replicas": 2}


def test_an_empty_file_is_a_config_without_applications(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "# nothing yet\n"))
    assert config.applications == ()
    assert config.service.listen == "127.0.0.1:8080"


def test_a_config_dumps_with_yaml_names_and_duration_texts_and_loads_back(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL))
    dumped = config.model_dump(mode="json", by_alias=True)
    assert dumped["applications"][0]["interval"] == "1h30m"
    assert dumped["applications"][0]["source"]["repoURL"].startswith("https://")
    assert Config.model_validate(dumped) == config


# --- errors with file, field path and line ---------------------------------------------------
def test_a_typo_in_a_field_name_is_an_error_with_path_line_and_suggestion(tmp_path: Path) -> None:
    message = _error(tmp_path, _app("      reviison: main\n"))
    assert message == (
        "gitops.yaml:5: applications[0].source.reviison: unknown field (did you mean 'revision'?)"
    )


def test_a_missing_required_field_names_the_enclosing_key_line(tmp_path: Path) -> None:
    text = "applications:\n  - name: a\n    source: {repoURL: /r}\n  - name: b\n    source:\n      path: x\n"
    assert _error(tmp_path, text) == "gitops.yaml:5: applications[1].source.repoURL: is required"


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    message = _error(tmp_path, _app("    interval: 5\n    prune: maybe\n", name="Web"))
    assert message.startswith("gitops.yaml: 3 problems:")
    assert (
        "gitops.yaml:2: applications[0].name: 'Web' is invalid: a lowercase RFC 1123 label must consist of"
        in message
    )
    assert "gitops.yaml:5: applications[0].interval: a duration needs a unit" in message
    assert "gitops.yaml:6: applications[0].prune:" in message


def test_duplicate_names_are_reported_at_the_second_declaration(tmp_path: Path) -> None:
    text = _app() + "  - name: web\n    source: {repoURL: /srv/other}\n"
    assert _error(tmp_path, text) == (
        "gitops.yaml:5: applications[1].name: application 'web' is declared twice "
        "(first: applications[0])"
    )


def test_depends_on_an_unknown_application_is_reported(tmp_path: Path) -> None:
    message = _error(
        tmp_path, _app("    dependsOn: [db, cache]\n") + "  - name: db\n    source: {repoURL: /r}\n"
    )
    assert message == "gitops.yaml:5: applications[0].dependsOn[1]: unknown application 'cache'"


def test_a_dependency_cycle_is_reported_naming_the_cycle(tmp_path: Path) -> None:
    text = """\
        applications:
          - {name: a, source: {repoURL: /r}, dependsOn: [b]}
          - {name: b, source: {repoURL: /r}, dependsOn: [c]}
          - {name: c, source: {repoURL: /r}, dependsOn: [a]}
          - {name: d, source: {repoURL: /r}, dependsOn: [a]}
        """
    assert _error(tmp_path, text) == (
        "gitops.yaml:4: applications[2].dependsOn: dependency cycle: a → b → c → a"
    )


def test_an_application_depending_on_itself_is_refused(tmp_path: Path) -> None:
    assert "depends on itself" in _error(tmp_path, _app("    dependsOn: [web]\n"))


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line(tmp_path: Path) -> None:
    assert _error(tmp_path, "applications: [\n").startswith("gitops.yaml:2: invalid YAML")
    message = _error(tmp_path, _app("    prune: true\n    prune: false\n"))
    assert message.startswith(
        "gitops.yaml:6: invalid YAML: mapping key 'prune' already defined at line 5"
    )


def test_a_config_must_be_one_mapping_document(tmp_path: Path) -> None:
    assert "single YAML document" in _error(tmp_path, "service: {}\n---\nservice: {}\n")
    assert _error(tmp_path, "- a\n") == (
        "gitops.yaml:1: the config must be a mapping (applications:, service:)"
    )


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "absent.yaml")


# --- field rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://github.com/x/y.git", "https"),
        ("http://127.0.0.1:3000/x/y", "http"),
        ("ssh://git@github.com:22/x/y.git", "ssh"),
        ("git@github.com:x/y.git", "ssh"),
        ("git://example.com/y.git", "git"),
        ("file:///srv/repo", "file"),
        ("/srv/repo", "local"),
    ],
)
def test_repository_url_forms_are_recognised(url: str, kind: str) -> None:
    assert repo_kind(url) == kind


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("relative/repo", "is not a repository URL"),
        ("ftp://x/y", "is not a repository URL"),
        ("https:///y", "has no host"),
        ("file://relative", "needs an absolute path"),
        ("https://me:hunter2@github.com/x/y", "holds a password"),
    ],
)
def test_bad_repository_urls_are_refused(tmp_path: Path, url: str, problem: str) -> None:
    text = f"applications:\n  - name: a\n    source:\n      repoURL: '{url}'\n"
    message = _error(tmp_path, text)
    assert message.startswith("gitops.yaml:4: applications[0].source.repoURL:")
    assert problem in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("      revision: ''\n", "revision may not be empty"),
        ("      path: /abs\n", "must be relative to the repository root"),
        ("      path: apps/../../x\n", "may not contain '..'"),
        ("      credentials: {tokenEnv: A, passwordEnv: B}\n", "give one of tokenEnv, passwordEnv"),
        ("      credentials: {tokenEnv: 'my token'}\n", "is not an environment variable name"),
        ("      build: {kind: kustomize, exclude: [x]}\n", "exclude applies to plain directories"),
        ("      build: {kind: plain, helm: {releaseName: x}}\n", "helm settings need kind helm"),
        (
            "      build: {kind: jsonnet}\n",
            "Input should be 'auto', 'plain', 'kustomize' or 'helm'",
        ),
    ],
)
def test_source_rules_are_enforced(tmp_path: Path, extra: str, problem: str) -> None:
    assert problem in _error(tmp_path, _app(extra))


def test_credentials_must_fit_the_url_scheme(tmp_path: Path) -> None:
    text = "applications:\n  - name: a\n    source:\n      repoURL: https://h/x\n      credentials: {sshKeyFile: /k}\n"
    assert "sshKeyFile and knownHostsFile need an ssh repository URL" in _error(tmp_path, text)
    text = "applications:\n  - name: a\n    source:\n      repoURL: git@h:x\n      credentials: {tokenEnv: T}\n"
    assert "need an http(s) repository URL" in _error(tmp_path, text)


@pytest.mark.parametrize(
    ("destination", "problem"),
    [
        ("{cluster: prod}", "unknown cluster 'prod'"),
        (
            "{cluster: {context: prod}}",
            "a cluster needs 'builtin', a cluster name or a kubeconfig path",
        ),
        ("{namespace: Web}", "is invalid: a lowercase RFC 1123 label must consist of"),
    ],
)
def test_destination_rules_are_enforced(tmp_path: Path, destination: str, problem: str) -> None:
    message = _error(tmp_path, _app(f"    destination: {destination}\n"))
    assert message.startswith("gitops.yaml:5: applications[0].destination")
    assert problem in message


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{kind: Deployment}", "give jsonPointers, fieldPaths or managedFieldsManagers"),
        ("{kind: Deployment, jsonPointers: [spec/replicas]}", "must start with '/'"),
        ("{kind: Deployment, jsonPointers: [/a~2b]}", "'~' must be followed by 0 or 1"),
        ("{kind: Deployment, fieldPaths: ['spec..x']}", "empty segment"),
        ("{kind: Deployment, fieldPaths: ['spec.containers[name=web']}", "unclosed"),
        ("{jsonPointers: [/x]}", "kind: is required"),
    ],
)
def test_ignore_differences_rules_are_enforced(tmp_path: Path, entry: str, problem: str) -> None:
    message = _error(tmp_path, _app(f"    ignoreDifferences:\n      - {entry}\n"))
    assert "applications[0].ignoreDifferences[0]" in message
    assert problem in message


def test_service_rules_are_enforced(tmp_path: Path) -> None:
    message = _error(tmp_path, "service:\n  listen: localhost\n  webhookSecretEnv: 'a-b'\n")
    assert "gitops.yaml:2: service.listen: listen 'localhost' must be HOST:PORT" in message
    assert (
        "gitops.yaml:3: service.webhookSecretEnv: 'a-b' is not an environment variable" in message
    )


def test_retry_backoff_must_be_ordered(tmp_path: Path) -> None:
    extra = "    retry: {backoff: {duration: 1m, maxDuration: 10s}}\n"
    assert "maxDuration must not be shorter than duration" in _error(tmp_path, _app(extra))


# --- durations and field paths -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
     ("250ms", 0.25), ("2m30s", 150.0), ("0", 0.0), ("1h0m5s", 3605.0)],
)  # fmt: skip
def test_durations_parse_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "-5s", "5 m", "5d", "m", "1h 30m", "s5"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_durations_format_back_to_the_shortest_text() -> None:
    assert [format_duration(s) for s in (5400, 30, 0.25, 3605, 0)] == [
        "1h30m", "30s", "250ms", "1h5s", "0s",
    ]  # fmt: skip


def test_field_paths_become_fieldpath_elements() -> None:
    assert parse_field_path('metadata.annotations["example.com/x"]') == (
        "f:metadata",
        "f:annotations",
        "f:example.com/x",
    )
    assert parse_field_path("spec.ports[port=80,protocol=TCP].targetPort") == (
        "f:spec",
        "f:ports",
        'k:{"port":80,"protocol":"TCP"}',
        "f:targetPort",
    )
    assert parse_field_path("spec.args[0]") == ("f:spec", "f:args", "i:0")
    with pytest.raises(ValueError, match="ends with"):
        parse_field_path("spec.")


# --- Applications declared in a repository (app-of-apps) ---------------------------------------
APPS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: gitops.dev/v1alpha1
kind: Application
metadata:
  name: frontend
spec:
  source: {repoURL: 'https://github.com/example/frontend.git', path: deploy}
  dependsOn: [platform]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: argo-owned}
spec: {}
"""


def _platform() -> Application:
    return Application.model_validate({"name": "platform", "source": {"repoURL": "/srv/p"}})


def test_applications_declared_in_a_repository_are_loaded_and_other_objects_ignored() -> None:
    (frontend,) = load_applications_from_manifests(load_text(APPS, "apps/all.yaml"), [_platform()])
    assert frontend.name == "frontend"
    assert frontend.source.path == "deploy"
    assert frontend.depends_on == ("platform",)


def _manifest_errors(text: str, others: list[Application] | None = None) -> list[str]:
    with pytest.raises(BuildErrors) as caught:
        load_applications_from_manifests(load_text(text, "apps/all.yaml"), others or [])
    return [str(e) for e in caught.value.errors]


def test_an_invalid_declared_application_names_its_file_line_and_field() -> None:
    text = APPS.replace("path: deploy", "path: deploy, revision: ''").replace(
        "frontend\n", "Frontend\n"
    )
    assert _manifest_errors(text, [_platform()]) == [
        "apps/all.yaml:5: Application Frontend: metadata.name: 'Frontend' is invalid: a lowercase RFC 1123 label must consist of "
        "lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
        "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "apps/all.yaml:5: Application Frontend: spec.source.revision: revision may not be empty "
        "(HEAD, a branch, tag, range or SHA)",
    ]


def test_declared_applications_check_names_and_dependencies_against_the_others() -> None:
    errors = _manifest_errors(APPS)
    assert errors == [
        "apps/all.yaml:5: Application frontend: spec.dependsOn[0]: unknown application 'platform'"
    ]
    clash = Application.model_validate({"name": "frontend", "source": {"repoURL": "/srv/f"}})
    errors = _manifest_errors(APPS, [_platform(), clash])
    assert errors == [
        "apps/all.yaml:5: Application frontend: metadata.name: application 'frontend' is declared "
        "twice (first: applications[1])"
    ]


def test_a_declared_application_must_use_the_supported_version_and_no_spec_name() -> None:
    assert (
        "apiVersion gitops.dev/v1beta9 is not supported"
        in _manifest_errors(APPS.replace("gitops.dev/v1alpha1", "gitops.dev/v1beta9"))[0]
    )
    assert (
        "spec.name is not allowed"
        in _manifest_errors(APPS.replace("spec:\n", "spec:\n  name: x\n"))[0]
    )


def test_check_applications_rejects_a_cycle_across_config_and_repository() -> None:
    a = Application.model_validate({"name": "a", "source": {"repoURL": "/r"}, "dependsOn": ["b"]})
    b = Application.model_validate({"name": "b", "source": {"repoURL": "/r"}, "dependsOn": ["a"]})
    with pytest.raises(ConfigError, match="dependency cycle: a → b → a"):
        check_applications([a, b])
    check_applications([a.model_copy(update={"depends_on": ()}), b])
