#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (Debian packages, the Python package
# with its test extras, Debian's kubectl 1.20, kubectl 1.35 and helm, podman and docker
# on fresh state with the local busybox images), then lint, type checks and pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k store).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_python test
KUBECTL_1_20="$(ensure_kubectl_1_20)"
KUBECTL_MODERN="$(ensure_kubectl_modern)"
GITOPS_OLDEST_KUBERNETES_CLIENT="$(ensure_oldest_python_client)"
export KUBECTL_1_20 KUBECTL_MODERN GITOPS_OLDEST_KUBERNETES_CLIENT
# The engines start from fresh state, as on a new machine: nothing an earlier run left
# (images, containers, networks, a daemon's first-start state) can make a test pass.
# GITOPS_TEST_ENGINES=existing tests against the machine's engines as they are instead.
if [ "${GITOPS_TEST_ENGINES:-fresh}" != existing ]; then
    use_fresh_engine_state "$(mktemp -d /tmp/gitops-engines.XXXXXX)"
    trap release_fresh_engine_state EXIT
else
    trap stop_docker_if_started EXIT
fi
ensure_podman
ensure_docker
describe_engine_state
ensure_busybox_images

say "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
say "mypy (strict)"
"$VENV/bin/mypy"
say "pytest"
set +e
"$VENV/bin/pytest" -q -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$code"
