#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs (Debian packages, the Python package
# with its test extras, Debian's kubectl 1.20, kubectl 1.35 and helm, podman and docker
# with the local busybox images), then lint, type checks and pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k store).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_python test
KUBECTL_1_20="$(ensure_kubectl_1_20)"
KUBECTL_MODERN="$(ensure_kubectl_modern)"
export KUBECTL_1_20 KUBECTL_MODERN
ensure_podman
ensure_docker
trap stop_docker_if_started EXIT
ensure_busybox_images
ensure_pause_image

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
