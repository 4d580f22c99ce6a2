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
#   ensure_pause_image     localhost/gitops-pause:1 for docker (the sandbox container)

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ENGINES_CACHE="${ENGINES_CACHE:-$ROOT/.cache}"
BUSYBOX_IMAGE="localhost/busybox:latest"
PAUSE_IMAGE="localhost/gitops-pause:1"
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
    apt_install podman runc catatonit
    local dir="$ENGINES_CACHE/podman" conf limits nofile nproc
    conf="$dir/containers.conf"
    limits="$(_podman_limits)"
    nofile="${limits% *}"
    nproc="${limits#* }"
    mkdir -p "$dir"
    local rendered
    rendered="$(sed -e "s/@NOFILE@/$nofile/g" -e "s/@NPROC@/$nproc/g" \
        "$ROOT/runtime/kubelet/runtimes/containers.conf")"
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
    apt_install docker.io
    local docker
    docker="$(_docker_bin)"
    export DOCKER="$docker"
    "$docker" info >/dev/null 2>&1 && return 0
    local log="${DOCKERD_LOG:-/tmp/dockerd.log}"
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        say "starting dockerd in the background (log: $log)"
        # setsid + nohup: the daemon outlives this script and its terminal.
        as_root setsid nohup /usr/sbin/dockerd > "$log" 2>&1 < /dev/null &
        # Callers that own the daemon (the test script) stop it when they are done.
        export DOCKERD_STARTED_BY_US=1
    fi
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

ensure_pause_image() {
    # The docker sandbox ("pause") container's image: busybox sh sleeping forever, exiting
    # at once on SIGTERM. (podman builds its own infra image from catatonit.)
    apt_install busybox-static
    local docker
    docker="$(_docker_bin)"
    "$docker" image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
    say "building $PAUSE_IMAGE for docker"
    local tmp
    tmp="$(mktemp -d)"
    _busybox_rootfs "$tmp/rootfs" sh sleep
    tar -C "$tmp/rootfs" -c . | "$docker" import \
        --change "ENV PATH=/bin" \
        --change 'CMD ["sh", "-c", "trap exit TERM INT; while :; do sleep 3600 & wait; done"]' \
        - "$PAUSE_IMAGE" >/dev/null
    rm -rf "$tmp"
}

stop_docker_if_started() {
    # Stops the dockerd that ensure_docker started (and only that one).
    if [ "${DOCKERD_STARTED_BY_US:-0}" = 1 ]; then
        say "stopping the dockerd this script started"
        as_root pkill -TERM -x dockerd || true
        local i
        for i in $(seq 1 40); do
            pgrep -x dockerd >/dev/null 2>&1 || return 0
            sleep 0.25
        done
    fi
}
