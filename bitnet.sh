#!/usr/bin/env bash
# bitnet.sh: the README's two entry points, `./bitnet.sh run [args...]` and `./bitnet.sh test`.
# Plain bash so that it works on a fresh Debian 12 (bookworm) machine with nothing but git:
# it first installs the missing Debian packages (as root: one `apt-get update`, then
# `apt-get install --no-install-recommends`; otherwise it prints the exact sudo command and
# stops), then configures and builds through the Makefile and runs. Idempotent: a second run
# sees every package installed and goes straight to the (incremental) build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
export DEBIAN_FRONTEND=noninteractive
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
export JOBS
export MAKEFLAGS="${MAKEFLAGS:-} --no-print-directory"

# Debian packages the build and the tests need. clang + libclang-rt-14-dev give libFuzzer and
# clang's sanitizer runtimes (the fuzz build), llvm-14 its llvm-symbolizer (readable stack
# traces in fuzz and sanitizer reports); gcc (build-essential) brings libasan8/libubsan1
# for the ASan+UBSan test build. nodejs/npm run the JS test tools (Debian: Node 18, npm 9),
# tmux drives the interactive chat test, ca-certificates lets npm reach its registry over TLS,
# openssl makes the HTTPS test's certificate and curl checks it, libedit-dev (BSD licence) gives
# `bitnet chat` line editing and history, zsh checks the generated zsh completion script.
# haproxy runs deploy/haproxy/haproxy.cfg in the replica test (scripts/scale-test.sh) and checks
# it; prometheus brings promtool, which checks /metrics; systemd brings systemd-analyze, which
# checks deploy/systemd/ (nothing is started: no service manager is needed).
PACKAGES=(build-essential cmake pkg-config clang libclang-rt-14-dev llvm-14
          libpcre2-dev libjansson-dev libmicrohttpd-dev libssl-dev libedit-dev
          nodejs npm tmux ca-certificates git openssl curl zsh haproxy prometheus systemd)
# Python from Debian for the tests' independent checks: the PyTorch reference implementation
# (reference/: torch, numpy, regex) and the OpenAPI document check (yaml).
PACKAGES+=(python3 python3-numpy python3-torch python3-regex python3-yaml)
# Only for `./bitnet.sh test`: chromium runs the chat page's browser test (test_webui_browser, a
# heavy test of the Release ctest stage, driven by tests/js's puppeteer-core, which downloads no
# browser). `./bitnet.sh run` does not need it.
TEST_PACKAGES=(chromium)
# The ARM64 port's check (tests/test_arm64.sh, `make test-arm64`): Debian's aarch64 cross compiler
# and qemu-user, and the arm64 -dev packages of the libraries (multiarch: ensure_packages adds
# the arm64 architecture to dpkg first).
TEST_PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libpcre2-dev:arm64
                libjansson-dev:arm64 libssl-dev:arm64 libmicrohttpd-dev:arm64)

if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" && -x /usr/bin/llvm-symbolizer-14 ]]; then
    export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
fi

banner() { printf '\n==> [bitnet.sh] %s\n' "$*"; }
die() { printf 'bitnet.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
usage: ./bitnet.sh run [args...]   install what is missing, build (Release, build/), run bitnet
       ./bitnet.sh test            install what is missing, build and run the whole test suite:
                                   Release ctest (with the fuzz smoke test), ASan+UBSan ctest
EOF
}

# True when a package is installed. npm also counts as present when an `npm` command exists:
# NodeSource's nodejs package ships its own npm and conflicts with Debian's npm package.
# A name without ":ARCH" means the native architecture's package (or an Architecture: all one): once
# arm64 -dev packages are installed beside the amd64 ones, the bare name stands for both.
pkg_present() {
    local arch line
    if [[ "$1" == *:* ]]; then arch=${1##*:}; else arch=$(dpkg --print-architecture); fi
    while read -r line; do
        [[ "$line" == "install ok installed $arch" || "$line" == "install ok installed all" ]] && return 0
    done < <(dpkg-query -W -f='${Status} ${Architecture}\n' "$1" 2>/dev/null || true)
    case "$1" in
        npm) command -v npm >/dev/null 2>&1 && return 0 ;;
        nodejs) command -v node >/dev/null 2>&1 && return 0 ;;
    esac
    return 1
}

ensure_packages() {
    banner "stage: system packages"
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12 (bookworm)"
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        pkg_present "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "all ${#PACKAGES[@]} packages present"
        return 0
    fi
    echo "missing: ${missing[*]}"
    if [[ "$(id -u)" != 0 ]]; then
        printf 'bitnet.sh: not root; install the missing packages with:\n\n' >&2
        printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n\n' "${missing[*]}" >&2
        printf 'then run this command again.\n' >&2
        exit 1
    fi
    if [[ " ${missing[*]}" == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
    fi
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    for p in "${missing[@]}"; do
        pkg_present "$p" || die "package $p is still missing after apt-get install"
    done
}

# JS test tools (pinned versions that install on Debian's Node 18 / npm 9), when the script exists.
setup_js() { bash scripts/setup-js.sh </dev/null; }

build_release() {
    banner "stage: Release build (build/)"
    make build JOBS="$JOBS"
}

cmd_run() {
    ensure_packages
    build_release
    # Without -m, `bitnet run` uses the shipped model models/kjv-bitnet.gguf.
    banner "stage: bitnet run $*"
    exec build/bin/bitnet run "$@"
}

STAGES=()
FAILED=0
record() { # record NAME RC
    if [[ "$2" == 0 ]]; then STAGES+=("ok      $1"); else STAGES+=("FAILED  $1 (exit $2)"); FAILED=1; fi
}
run_stage() { # run_stage NAME cmd... : runs and records, never aborts the script
    local name="$1" rc=0 t0=$SECONDS
    shift
    banner "stage: $name"
    "$@" || rc=$?
    echo "--- $name: exit $rc, $((SECONDS - t0)) s"
    record "$name" "$rc"
    return "$rc"
}

release_ctest() { (cd build && ctest --output-on-failure -j "$JOBS" </dev/null); }
asan_all() { make asan JOBS="$JOBS" </dev/null; }

cmd_test() {
    local t0=$SECONDS
    PACKAGES+=("${TEST_PACKAGES[@]}")
    ensure_packages
    if [[ -f scripts/setup-js.sh ]]; then
        run_stage "JS test tools (scripts/setup-js.sh)" setup_js || true
    fi
    if ! run_stage "Release build (build/)" make build JOBS="$JOBS"; then
        die "Release build failed"
    fi
    run_stage "Release tests (ctest in build/)" release_ctest || true
    run_stage "ASan+UBSan build and tests (make asan, build-asan/)" asan_all || true
    banner "summary ($((SECONDS - t0)) s)"
    printf '  %s\n' "${STAGES[@]}"
    if ((FAILED)); then
        echo "bitnet.sh test: FAILED"
        exit 1
    fi
    echo "bitnet.sh test: all stages passed"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; (($# == 0)) || die "test takes no arguments"; cmd_test ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
