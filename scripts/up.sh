#!/usr/bin/env bash
# Starts the main job in the foreground: installs what it needs (podman and the local
# busybox image included), then runs the built-in cluster (API server, store, scheduler,
# one podman node) with its state in .state/. Stop it with Ctrl-C.
# The GitOps sync service on examples/repo joins this command when it is built (see
# README, "Status").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_python test
ensure_podman
ensure_busybox_images
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
PORT="${PORT:-6443}"
exec "$VENV/bin/gitops" cluster up --state-dir "$STATE_DIR" --port "$PORT" "$@"
