# Container engines for the built-in kubelet: podman and docker, and the local images
# the tests and examples use (there is no image registry on the machines this project
# runs on). Sourced by scripts/lib.sh (which may already define ROOT, say, as_root and
# apt_install); it also works sourced on its own. Every function is idempotent: it
# checks first and only installs, writes, starts or builds what is missing.
#
#   ensure_podman          Debian podman + runc + catatonit; a containers.conf rendered
#                          for this machine; exports CONTAINERS_CONF
#   ensure_docker          Debian docker.io; starts dockerd (no systemd) and waits;
#                          exports DOCKER (the client binary to use)
#   ensure_busybox_images  localhost/busybox:latest for podman and for docker (each
#                          only if that engine is installed)
#   use_fresh_engine_state DIR
#                          makes the next ensure_podman/ensure_docker use engines that
#                          keep nothing of an earlier run: podman's storage, run, tmp
#                          and network directories, and a private dockerd's data root,
#                          exec root, pidfile and socket, all under DIR (the test script)
#   release_fresh_engine_state
#                          stops that dockerd, removes what podman made, deletes DIR
#
# (docker's sandbox image, localhost/gitops-pause:1, is made by the docker runtime
# itself when it is missing: runtime/kubelet/runtimes/sandbox_image.py.)

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ENGINES_CACHE="${ENGINES_CACHE:-$ROOT/.cache}"
BUSYBOX_IMAGE="localhost/busybox:latest"
BUSYBOX_APPLETS="sh sleep echo cat ls httpd nc wget date env true false printf mkdir rm test grep head tail id hostname ps kill"

declare -F say >/dev/null || say() { printf '==> %s\n' "$*" >&2; }
declare -F as_root >/dev/null || as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
declare -F apt_install >/dev/null || {
    _apt_updated=0
    apt_install() {
        local missing=()
        for pkg in "$@"; do
            dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
        done
        [ "${#missing[@]}" -eq 0 ] && return 0
        say "installing Debian packages: ${missing[*]}"
        if [ "$_apt_updated" -eq 0 ]; then as_root apt-get update -qq; _apt_updated=1; fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
}

_podman_limits() {
    # "NOFILE NPROC": the hard limits podman can hand to containers. podman caps its own
    # RLIMIT_NPROC at kernel.pid_max, so a larger `ulimit -Hu` would fail in runc
    # ("error setting rlimit type 6: operation not permitted").
    local nofile nproc pid_max
    nofile="$(ulimit -Hn)"
    nproc="$(ulimit -Hu)"
    pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 4194304)"
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc="$pid_max"
    [ "$nproc" -gt "$pid_max" ] && nproc="$pid_max"
    echo "$nofile $nproc"
}

ensure_podman() {
    # podman 4 with runc (crun refuses hybrid cgroups) and catatonit (podman builds its
    # pod infra image, localhost/podman-pause, from it: there is no registry).
    apt_install podman runc catatonit iptables
    local dir="$ENGINES_CACHE/podman" conf limits nofile nproc
    conf="$dir/containers.conf"
    limits="$(_podman_limits)"
    nofile="${limits% *}"
    nproc="${limits#* }"
    mkdir -p "$dir"
    local rendered
    rendered="$(sed -e "s/@NOFILE@/$nofile/g" -e "s/@NPROC@/$nproc/g" \
        "$ROOT/runtime/kubelet/runtimes/containers.conf")"
    if [ -n "${FRESH_ENGINE_DIR:-}" ]; then
        # Fresh state: every directory podman keeps state in lives under FRESH_ENGINE_DIR.
        local fresh="$FRESH_ENGINE_DIR/podman"
        dir="$fresh"
        conf="$dir/containers.conf"
        mkdir -p "$fresh/root" "$fresh/run" "$fresh/tmp" "$fresh/volumes" "$fresh/net.d"
        rendered="$(printf '%s\n' "$rendered" | sed \
            -e "/^\[engine\]/a tmp_dir = \"$fresh/tmp\"" \
            -e "/^\[engine\]/a volume_path = \"$fresh/volumes\"")"
        rendered="$(printf '%s\n\n[network]\nnetwork_config_dir = "%s"\n' "$rendered" "$fresh/net.d")"
        printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
            "$fresh/root" "$fresh/run" > "$fresh/storage.conf"
        export CONTAINERS_STORAGE_CONF="$fresh/storage.conf"
    fi
    if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$rendered" ]; then
        say "writing $conf (nofile=$nofile nproc=$nproc)"
        printf '%s\n' "$rendered" > "$conf"
    fi
    export CONTAINERS_CONF="$conf"
    if ! podman info >/dev/null 2>&1; then
        echo "error: podman does not work with CONTAINERS_CONF=$conf:" >&2
        podman info >&2 || true
        return 1
    fi
}

_docker_bin() {
    # Debian's client matches Debian's daemon; a /usr/local/bin/docker may shadow it.
    if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi
}

ensure_docker() {
    apt_install docker.io iptables
    local docker
    docker="$(_docker_bin)"
    export DOCKER="$docker"
    if [ -n "${FRESH_ENGINE_DIR:-}" ]; then
        _start_fresh_dockerd "$docker" || return 1
    else
        "$docker" info >/dev/null 2>&1 && return 0
        local log="${DOCKERD_LOG:-/tmp/dockerd.log}"
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            say "starting dockerd in the background (log: $log)"
            # setsid + nohup: the daemon outlives this script and its terminal.
            as_root setsid nohup /usr/sbin/dockerd > "$log" 2>&1 < /dev/null &
            # Callers that own the daemon (the test script) stop it when they are done.
            export DOCKERD_STARTED_BY_US=1
        fi
    fi
    _wait_for_docker "$docker" "${DOCKERD_LOG:-/tmp/dockerd.log}"
}

_start_fresh_dockerd() {
    # A dockerd of our own on an empty data root, with its own exec root (and so its own
    # containerd), pidfile and socket; DOCKER_HOST points the clients at it.
    local docker="$1" dir="$FRESH_ENGINE_DIR/docker"
    export DOCKER_HOST="unix://$dir/docker.sock"
    export DOCKERD_LOG="$dir/dockerd.log"
    if [ -f "$dir/dockerd.pid" ] && "$docker" info >/dev/null 2>&1; then
        return 0
    fi
    local other
    other="$(pgrep -x dockerd | tr '\n' ' ' || true)"
    if [ -n "$other" ]; then
        echo "error: a dockerd is already running (pid $other). The tests start their own on" \
            "fresh state, and two daemons would fight over the docker0 bridge and its" \
            "iptables chains: stop it, or set GITOPS_TEST_ENGINES=existing to test against" \
            "the engines as they are." >&2
        return 1
    fi
    mkdir -p "$dir"
    say "starting a dockerd on fresh state in $dir"
    as_root setsid nohup /usr/sbin/dockerd \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
        -H "$DOCKER_HOST" > "$DOCKERD_LOG" 2>&1 < /dev/null &
    export DOCKERD_STARTED_BY_US=1
}

_wait_for_docker() {
    local docker="$1" log="$2"
    local i
    for i in $(seq 1 120); do
        "$docker" info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "error: dockerd did not answer within 60 s; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    return 1
}

_busybox_rootfs() {
    # _busybox_rootfs DIR APPLET... : a root filesystem with the static busybox and links.
    local dir="$1"
    shift
    mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    local c
    for c in "$@"; do ln -sf busybox "$dir/bin/$c"; done
}

ensure_busybox_images() {
    # localhost/busybox:latest for each installed engine, from Debian's busybox-static,
    # with ENV PATH=/bin (an imported image has no environment of its own).
    apt_install busybox-static
    local need_podman=0 need_docker=0 docker
    if command -v podman >/dev/null 2>&1 && ! podman image exists "$BUSYBOX_IMAGE" 2>/dev/null; then
        need_podman=1
    fi
    docker="$(_docker_bin 2>/dev/null || true)"
    if [ -n "$docker" ] && "$docker" info >/dev/null 2>&1 \
        && ! "$docker" image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
        need_docker=1
    fi
    [ "$need_podman" -eq 0 ] && [ "$need_docker" -eq 0 ] && return 0
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2086
    _busybox_rootfs "$tmp/rootfs" $BUSYBOX_APPLETS
    if [ "$need_podman" -eq 1 ]; then
        say "building $BUSYBOX_IMAGE for podman"
        tar -C "$tmp/rootfs" -c . | podman import -q --change "ENV PATH=/bin" - "$BUSYBOX_IMAGE" >/dev/null
    fi
    if [ "$need_docker" -eq 1 ]; then
        say "building $BUSYBOX_IMAGE for docker"
        tar -C "$tmp/rootfs" -c . | "$docker" import --change "ENV PATH=/bin" - "$BUSYBOX_IMAGE" >/dev/null
    fi
    rm -rf "$tmp"
}

stop_docker_if_started() {
    # Stops the dockerd that ensure_docker started (and only that one).
    [ "${DOCKERD_STARTED_BY_US:-0}" = 1 ] || return 0
    say "stopping the dockerd this script started"
    local pidfile="${FRESH_ENGINE_DIR:-/nonexistent}/docker/dockerd.pid" pid=""
    [ -f "$pidfile" ] && pid="$(cat "$pidfile")"
    if [ -n "$pid" ]; then
        as_root kill -TERM "$pid" 2>/dev/null || true
    else
        as_root pkill -TERM -x dockerd || true
    fi
    local i
    for i in $(seq 1 80); do
        if [ -n "$pid" ]; then
            kill -0 "$pid" 2>/dev/null || return 0
        else
            pgrep -x dockerd >/dev/null 2>&1 || return 0
        fi
        sleep 0.25
    done
    echo "warning: dockerd did not stop within 20 s" >&2
}

use_fresh_engine_state() {
    # use_fresh_engine_state DIR: see the header.
    export FRESH_ENGINE_DIR="$1"
    mkdir -p "$FRESH_ENGINE_DIR"
}

release_fresh_engine_state() {
    [ -n "${FRESH_ENGINE_DIR:-}" ] && [ -d "$FRESH_ENGINE_DIR" ] || return 0
    if [ -n "${CONTAINERS_STORAGE_CONF:-}" ] && command -v podman >/dev/null 2>&1; then
        podman pod rm --all --force >/dev/null 2>&1 || true
        podman rm --all --force >/dev/null 2>&1 || true
    fi
    stop_docker_if_started
    # Whatever the engines left mounted (overlay layers, shm, netns files) under the dir.
    local mounts
    mounts="$(awk -v d="$FRESH_ENGINE_DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)"
    if [ -n "$mounts" ]; then
        printf '%s\n' "$mounts" | while read -r m; do as_root umount -l "$m" 2>/dev/null || true; done
    fi
    as_root rm -rf "$FRESH_ENGINE_DIR"
}

describe_engine_state() {
    # One line per engine: where its state lives and how many images it holds.
    if command -v podman >/dev/null 2>&1; then
        say "podman: storage $(podman info --format '{{.Store.GraphRoot}}' 2>/dev/null)," \
            "$(podman images -q 2>/dev/null | wc -l) images"
    fi
    if [ -n "${DOCKER:-}" ] && "$DOCKER" info >/dev/null 2>&1; then
        say "docker: data root $("$DOCKER" info --format '{{.DockerRootDir}}')," \
            "$("$DOCKER" images -q | wc -l) images (${DOCKER_HOST:-default socket})"
    fi
}
