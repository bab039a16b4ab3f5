#!/usr/bin/env bash
# check-fresh-debian.sh: runs the README's two commands (`./bitnet.sh run`, `./bitnet.sh test`)
# in a fresh Debian 12 root, the way a new user or CI would meet the project.
#
# Design: a pristine base (`debootstrap --variant=minbase bookworm` + git, nothing else) is
# built once and cached outside the repo; every check copies it to a scratch root, clones the
# repo's committed HEAD into it, mounts proc/sys/dev, and runs both commands as root under
# `chroot` with CI=true and no stdin, logging each to a file. So every run starts from zero:
# no compiler, make, cmake, node or python. Needs root and debootstrap on the host.
#
# usage: sudo scripts/check-fresh-debian.sh [--with PATH]... [--worktree] [--reuse] [--only run|test]
#   --with PATH   overlay PATH from the working tree onto the HEAD clone (repeatable), to check
#                 uncommitted changes to a few files
#   --worktree    overlay every tracked and untracked-not-ignored file of the working tree
#   --reuse       keep the previous scratch root (packages already installed; faster)
#   --only CMD    run only `run` or only `test`
# env: BITNET_DEBROOT (cache folder, default /var/tmp/bitnet-debroot), BITNET_DEBIAN_MIRROR
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BITNET_DEBROOT:-/var/tmp/bitnet-debroot}"
BASE="$CACHE/base"      # debootstrap + git, never modified after creation
WORK="$CACHE/work"      # scratch root for one check
LOGS="$CACHE/logs"
WITH=()
WORKTREE=0
REUSE=0
ONLY=""

die() { printf 'check-fresh-debian: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case "$1" in
        --with) [[ $# -ge 2 ]] || die "--with needs a path"; WITH+=("$2"); shift 2 ;;
        --worktree) WORKTREE=1; shift ;;
        --reuse) REUSE=1; shift ;;
        --only) [[ $# -ge 2 ]] || die "--only needs run or test"; ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
done
[[ "$(id -u)" == 0 ]] || die "must run as root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"
case "$CACHE" in "$REPO"|"$REPO"/*) die "cache folder $CACHE must be outside the repo" ;; esac

# The Debian mirror the host itself uses (deb822 `URIs:` or one-line `deb` entries).
mirror() {
    if [[ -n "${BITNET_DEBIAN_MIRROR:-}" ]]; then echo "$BITNET_DEBIAN_MIRROR"; return; fi
    local m
    m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
         grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ')" || true
    echo "${m:-http://deb.debian.org/debian}"
}

MOUNTS=()
cleanup() {
    local pid root i
    # Stop processes still running inside the scratch root (servers, tmux) so it can unmount.
    for pid in /proc/[0-9]*; do
        pid="${pid#/proc/}"
        root="$(readlink "/proc/$pid/root" 2>/dev/null || true)"
        if [[ "$root" == "$WORK" ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    MOUNTS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

mount_into() { # mount_into ROOT
    mount -t proc proc "$1/proc"; MOUNTS+=("$1/proc")
    mount -t sysfs sys "$1/sys"; MOUNTS+=("$1/sys")
    mount --bind /dev "$1/dev"; MOUNTS+=("$1/dev")
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$1/dev/pts" 2>/dev/null && MOUNTS+=("$1/dev/pts") || true
    mkdir -p "$1/dev/shm"
    mount -t tmpfs tmpfs "$1/dev/shm" && MOUNTS+=("$1/dev/shm") || true
    cp -L /etc/resolv.conf "$1/etc/resolv.conf" 2>/dev/null || true
}

in_root() { # in_root ROOT COMMAND: as a CI job would, root, CI=true, no stdin, clean env
    env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        CI=true LANG=C.UTF-8 TERM=dumb chroot "$1" /bin/bash -c "$2" </dev/null
}

# Never delete a root that still has something mounted in it (a bind of /dev would take the
# host's device nodes with it).
safe_rm() {
    if awk '{print $2}' /proc/mounts | grep -q "^$1/"; then
        die "something is still mounted under $1; unmount it first"
    fi
    rm -rf --one-file-system "$1"
}

# Everything runs inside main(), which bash parses whole before running: editing this file
# while a check runs cannot change what the running check does.
main() {
    mkdir -p "$CACHE" "$LOGS"
    T0=$SECONDS

    # 1. The pristine base, once.
    if [[ ! -f "$BASE/.bitnet-base-ok" ]]; then
        safe_rm "$BASE"
        echo "== debootstrap --variant=minbase bookworm $BASE $(mirror)"
        debootstrap --variant=minbase bookworm "$BASE" "$(mirror)" >"$LOGS/debootstrap.log" 2>&1 ||
            { tail -20 "$LOGS/debootstrap.log"; die "debootstrap failed (log: $LOGS/debootstrap.log)"; }
        mount_into "$BASE"
        in_root "$BASE" 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q &&
            apt-get install -y -q --no-install-recommends git && apt-get clean' >"$LOGS/base-git.log" 2>&1 ||
            { tail -20 "$LOGS/base-git.log"; die "installing git in the base failed"; }
        cleanup
        rm -rf "$BASE"/var/lib/apt/lists/*
        touch "$BASE/.bitnet-base-ok"
    fi
    echo "== base: $BASE ($(du -sh "$BASE" | cut -f1); packages: $(chroot "$BASE" dpkg-query -W | wc -l))"

    # 2. The scratch root.
    if ((REUSE)) && [[ -d "$WORK/root" ]]; then
        echo "== reusing scratch root $WORK"
    else
        safe_rm "$WORK"
        cp -a "$BASE" "$WORK"
        echo "== fresh scratch root $WORK"
        # Network-specific trust, not a package: where the host trusts extra local CAs (a TLS-
        # intercepting egress proxy), the root needs them too or npm cannot reach its registry.
        # The ca-certificates package that bitnet.sh installs folds them into the system store.
        if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
            mkdir -p "$WORK/usr/local/share/ca-certificates"
            cp /usr/local/share/ca-certificates/*.crt "$WORK/usr/local/share/ca-certificates/"
            echo "   copied the host's local CA certificates: $(cd /usr/local/share/ca-certificates && echo *.crt)"
        fi
    fi
    for tool in make cmake cc gcc clang node npm python3 pkg-config; do
        if chroot "$WORK" /bin/bash -c "command -v $tool" >/dev/null 2>&1; then echo "   present: $tool"; fi
    done

    # 3. The repo: a clone of committed HEAD, plus overlays when asked.
    SRC="$WORK/srv/bitnet-c"
    rm -rf "$SRC"
    git clone -q --no-local "$REPO" "$SRC"
    echo "== cloned $(git -C "$SRC" log --oneline -1)"
    if ((WORKTREE)); then
        (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$SRC" -xf -
        echo "   overlaid the whole working tree"
    fi
    for p in "${WITH[@]}"; do
        [[ -e "$REPO/$p" ]] || die "--with $p: not in the working tree"
        (cd "$REPO" && tar -cf - "$p") | tar -C "$SRC" -xf -
        echo "   overlaid $p"
    done

    # 4. The README's two commands. In a fresh root, first as a non-root user: bitnet.sh must
    #    print the sudo command and stop with exit 1 (and install nothing).
    mount_into "$WORK"
    if ! ((REUSE)); then
        rc=0
        in_root "$WORK" "cd /srv/bitnet-c && setpriv --reuid=65534 --regid=65534 --clear-groups ./bitnet.sh test" \
            >"$LOGS/nonroot.log" 2>&1 || rc=$?
        echo "== chroot, as nobody: ./bitnet.sh test: exit $rc"
        sed 's/^/   | /' "$LOGS/nonroot.log"
        [[ $rc == 1 ]] && grep -q 'sudo apt-get install -y --no-install-recommends' "$LOGS/nonroot.log" ||
            die "non-root run did not stop with exit 1 and the sudo command"
    fi
    declare -A RC SECS
    for cmd in run test; do
        [[ -z "$ONLY" || "$ONLY" == "$cmd" ]] || continue
        log="$LOGS/$cmd.log"
        echo "== chroot: ./bitnet.sh $cmd   (log: $log)"
        t=$SECONDS
        rc=0
        in_root "$WORK" "cd /srv/bitnet-c && ./bitnet.sh $cmd" >"$log" 2>&1 || rc=$?
        RC[$cmd]=$rc
        SECS[$cmd]=$((SECONDS - t))
        echo "---- tail of $log"
        tail -n 40 "$log"
        echo "---- ./bitnet.sh $cmd: exit $rc, ${SECS[$cmd]} s"
    done
    cleanup

    echo
    echo "== summary (total $((SECONDS - T0)) s)"
    status=0
    for cmd in run test; do
        [[ -n "${RC[$cmd]:-}" ]] || continue
        echo "  ./bitnet.sh $cmd: exit ${RC[$cmd]}, ${SECS[$cmd]} s"
        [[ "${RC[$cmd]}" == 0 ]] || status=1
    done
    if [[ -f "$LOGS/test.log" && -n "${RC[test]:-}" ]]; then
        grep -E 'tests passed|tests failed out of' "$LOGS/test.log" | sed 's/^/  ctest: /' || true
        grep -E '^all [0-9]+ packages present|^missing:' "$LOGS/test.log" | sed 's/^/  test packages: /' || true
    fi
    exit "$status"
}

main "$@"; exit $?
