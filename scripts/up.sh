#!/usr/bin/env bash
# Starts the main job in the foreground: installs what it needs (the container engine,
# git and the local busybox image included), then runs `gitops up`: the built-in cluster
# (API server, store, scheduler, controllers, one node on podman, or on docker with
# RUNTIME=docker or --runtime docker) and the sync service on the bundled examples/repo,
# with its state in .state/. Stop it with Ctrl-C.
# Extra arguments go to `gitops up` (e.g. --repo PATH --path DIR); STATE_DIR, PORT and
# INGRESS_PORT (default 8081) choose where the state lives and the ports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_python test
apt_install git
# The engine: RUNTIME=docker or `--runtime docker` (also podman, fake, auto); podman by
# default. Whatever it is, it is installed, started and given the local images here.
RUNTIME="${RUNTIME:-}"
args=("$@")
for i in "${!args[@]}"; do
    case "${args[$i]}" in
        --runtime) RUNTIME="${args[$((i + 1))]:-}" ;;
        --runtime=*) RUNTIME="${args[$i]#--runtime=}" ;;
    esac
done
case "${RUNTIME:-podman}" in
    docker) ensure_docker && ensure_busybox_images ;;
    podman | auto) ensure_podman && ensure_busybox_images ;;
    fake | none) ;;
    *) echo "error: unknown runtime '$RUNTIME' (podman, docker, fake, none, auto)" >&2; exit 2 ;;
esac
runtime_args=()
if [ -n "$RUNTIME" ] && ! printf '%s\n' "$@" | grep -q -- '^--runtime'; then
    runtime_args=(--runtime "$RUNTIME")
fi
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
PORT="${PORT:-6443}"
# The ingress on the host (the guestbook example's Ingress answers there); INGRESS_PORT=
# (empty) runs without one.
INGRESS_PORT="${INGRESS_PORT-8081}"
extra=()
if [ -n "$INGRESS_PORT" ]; then
    extra+=(--ingress-port "$INGRESS_PORT")
fi
exec "$VENV/bin/gitops" up --state-dir "$STATE_DIR" --port "$PORT" "${runtime_args[@]}" "${extra[@]}" "$@"
