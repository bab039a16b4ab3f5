#!/usr/bin/env bash
# test_deploy_files.sh: the deployment files under deploy/ checked on this machine, without a
# container engine, a systemd PID 1 or a cluster:
#   - deploy/Containerfile: Debian 12 stages, no downloads, a non-root user, `bitnet serve` as the
#     entry point; its COPY lines are enough to configure the build, and its runtime packages hold
#     every shared library the bitnet binary links;
#   - deploy/systemd/bitnet-serve@.service: `systemd-analyze verify` (warnings count as failures:
#     verify exits 0 on an unknown directive, so a misspelled one is shown to fail here), the
#     offline security score, the stop timeout above the drain, and the unit with
#     serve.env.example run for real: ready, /metrics, SIGTERM ends it with 0 in time;
#   - deploy/haproxy/haproxy.cfg: `haproxy -c` with warnings fatal (a misspelled keyword fails);
#   - deploy/k8s/: tests/js/deploy/validate_k8s.mjs (Kubernetes OpenAPI schema, unknown fields,
#     probes, grace period, HPA metric, selectors), and broken copies that it must reject;
#   - every BITNET_* variable the files set is one `bitnet serve` reads.
# Needs haproxy, systemd-analyze (systemd), node with tests/js/node_modules (npm ci), curl,
# cmake, readelf and dpkg; without one of them the rest still runs and the test ends skipped (77)
# naming it, unless something failed.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -o pipefail
bn_make_tmp deploy_files
deploy=$src/deploy
missing=()
have() { # have TOOL [WHAT]: true when TOOL is a command; otherwise remembers WHAT (or TOOL)
    command -v "$1" > /dev/null && return 0
    missing+=("${2:-$1}")
    return 1
}
help=$("$bin" serve --help 2>&1)

# known_env NAME: `bitnet serve` reads NAME: BITNET_<LONG OPTION> of an option it lists, or a
# variable its help names.
known_env() {
    local option
    option=--$(tr 'A-Z_' 'a-z-' <<< "${1#BITNET_}")
    grep -qE -- "(^|[ ,])$option( |,|$)" <<< "$help" || grep -qw -- "$1" <<< "$help"
}
check_env_names() { # check_env_names FILE NAME...: each NAME is known_env
    local file=$1 name bad=()
    shift
    for name in "$@"; do known_env "$name" || bad+=("$name"); done
    check "$file: BITNET_* variables are options of bitnet serve (${*:-none})" test ${#bad[@]} = 0
    ((${#bad[@]} == 0)) || echo "    unknown to bitnet serve: ${bad[*]}"
}

# --- deploy/Containerfile ------------------------------------------------------------------------
cf=$deploy/Containerfile
ignore=$deploy/Containerfile.dockerignore
# instructions: the Containerfile without comments, continuation lines joined.
instructions() { sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$cf" | sed -e ':a' -e '/\\$/{N; s/\\\n/ /; ba}'; }
stage() { instructions | awk -v n="$1" '$1 == "FROM" { s++ } s == n'; } # stage N: its instructions
from_debian12() { instructions | awk '$1 == "FROM" { n++; if ($2 != "debian:12") bad = 1 } END { exit !(n >= 2 && !bad) }'; }
no_downloads() { ! instructions | grep -Eiw 'curl|wget' && ! instructions | grep -Eiq '^ADD[[:space:]].*https?://'; }
apt_no_recommends() { ! instructions | grep 'apt-get install' | grep -qv -- '--no-install-recommends'; }
last_user() { instructions | awk '$1 == "USER" { u = $2 } END { print u }'; }
non_root_user() { local u; u=$(last_user); u=${u%%:*}; [[ -n $u && $u != root && $u != 0 ]]; }
copy_sources() { # the local (not --from) COPY sources of stage N
    stage "$1" | awk '$1 == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }'
}
sources_exist() { local s; for s in $(copy_sources 1) $(copy_sources 2); do [[ -e $src/$s ]] || { echo "    missing: $s"; return 1; }; done; }
sources_not_ignored() { # the ignore file re-admits (!PATH) every COPY source
    local s
    for s in $(copy_sources 1) $(copy_sources 2); do
        grep -qxF "!$s" "$ignore" || grep -qxF "!${s%/}" "$ignore" || { echo "    not re-admitted: $s"; return 1; }
    done
}
model_env_matches_copy() {
    local model
    model=$(instructions | grep -E '^ENV' | grep -oE 'BITNET_MODEL=[^ ]+' | cut -d= -f2)
    [[ -n $model ]] && stage 2 | grep -qE "^COPY models/kjv-bitnet\\.gguf $model\$"
}
configure_from_copies() { # the build stage's COPY lines give a tree that CMake configures
    local ctx=$tmp/context s
    mkdir -p "$ctx"
    while read -r -a words; do
        [[ ${words[0]} == COPY ]] || continue
        local n=${#words[@]} dest=${words[-1]}
        for s in "${words[@]:1:n-2}"; do
            if [[ -d $src/$s ]]; then # a folder's contents go into DEST
                mkdir -p "$ctx/$dest" && cp -r "$src/$s/." "$ctx/$dest/"
            elif [[ $dest == */ ]]; then # a file into the folder DEST/
                mkdir -p "$ctx/$dest" && cp "$src/$s" "$ctx/$dest"
            else
                mkdir -p "$(dirname "$ctx/$dest")" && cp "$src/$s" "$ctx/$dest"
            fi
        done
    done < <(stage 1)
    cmake -S "$ctx" -B "$ctx/build" -DCMAKE_BUILD_TYPE=Release -DBITNET_CUDA=OFF > "$tmp/configure.log" 2>&1 ||
        { tail -5 "$tmp/configure.log" | sed 's/^/    /'; return 1; }
}
runtime_packages_cover_libraries() { # each library bitnet links is in the runtime stage's packages
    local installed base="libc6 libgcc-s1 libstdc++6" lib path pkg ok=0
    installed=$(stage 2 | grep -oE 'apt-get install [^&]*' | tr ' ' '\n' | grep -v '^-' | sed '1,2d')
    while read -r lib; do
        case $lib in lib*san.so*) continue ;; esac # sanitizer runtimes of a test build
        path=$(ldd "$bin" | awk -v l="$lib" '$1 == l { print $3 }')
        pkg=$(dpkg -S "$path" 2> /dev/null || dpkg -S "$(readlink -f "$path")" 2> /dev/null)
        pkg=${pkg%%:*}
        if ! grep -qxF "$pkg" <<< "$installed" && ! grep -qw -- "$pkg" <<< "$base"; then
            echo "    $lib (Debian package ${pkg:-unknown}) is not installed by the runtime stage"
            ok=1
        fi
    done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    return $ok
}

check "Containerfile: exists" test -f "$cf"
check "Containerfile: two stages, both FROM debian:12" from_debian12
check "Containerfile: no curl, wget or ADD of a URL" no_downloads
check "Containerfile: apt-get install --no-install-recommends" apt_no_recommends
check "Containerfile: runs as a non-root user ($(last_user))" non_root_user
check "Containerfile: ENTRYPOINT is bitnet serve" grep -qE '^ENTRYPOINT \["(/usr/local/bin/)?bitnet", *"serve"\]' <(instructions)
check "Containerfile: the binary is /usr/local/bin/bitnet" grep -qE '^COPY --from=[^ ]+ [^ ]+/bitnet /usr/local/bin/bitnet$' <(stage 2)
check "Containerfile: CMD listens on 0.0.0.0:8080" grep -qE '^CMD .*"--host", *"0\.0\.0\.0".*"--port", *"8080"' <(instructions)
check "Containerfile: EXPOSE 8080, STOPSIGNAL SIGTERM" eval 'grep -qx "EXPOSE 8080" <(instructions) && grep -qx "STOPSIGNAL SIGTERM" <(instructions)'
check "Containerfile: BITNET_MODEL is where the shipped model is copied" model_env_matches_copy
check "Containerfile: every COPY source exists" sources_exist
check "Containerfile.dockerignore: re-admits every COPY source" sources_not_ignored
check_env_names Containerfile $(instructions | grep -E '^ENV' | grep -oE 'BITNET_[A-Z0-9_]+' | sort -u)
if have cmake; then
    check "Containerfile: the build stage's COPY lines are enough for cmake to configure" configure_from_copies
fi
if have readelf && have dpkg && have ldd; then
    check "Containerfile: the runtime stage installs every library $(basename "$bin") links" runtime_packages_cover_libraries
fi

# --- deploy/systemd -------------------------------------------------------------------------------
unit=$deploy/systemd/bitnet-serve@.service
envfile=$deploy/systemd/serve.env.example
# unit_copy FILE DIR: FILE as DIR/bitnet-serve@.service, ExecStart on $bin (verify wants it executable).
unit_copy() {
    mkdir -p "$2"
    sed "s#^ExecStart=/usr/local/bin/bitnet #ExecStart=$bin #" "$1" > "$2/bitnet-serve@.service"
}
verify_unit() { # verify_unit FILE: `systemd-analyze verify` of instance 8081: exit 0 and no output
    local dir out
    dir=$(mktemp -d "$tmp/units.XXXXXX")
    unit_copy "$1" "$dir"
    out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$dir/bitnet-serve@8081.service" 2>&1)
    local rc=$?
    [[ $rc == 0 && -z $out ]] && return 0
    printf '%s\n' "$out" | sed 's/^/    /'
    return 1
}
rejects_unit() { # rejects_unit SED_EXPRESSION MESSAGE: the unit so edited fails verify_unit with MESSAGE
    local broken=$tmp/broken.service out
    sed "$1" "$unit" > "$broken"
    cmp -s "$unit" "$broken" && { echo "    the edit $1 changed nothing"; return 1; }
    out=$(verify_unit "$broken") && return 1
    grep -q -- "$2" <<< "$out"
}
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -1; } # unit_value KEY: the last KEY= value
seconds() { local v=${1%s}; [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo -1; }
stop_outlasts_drain() {
    local stop drain
    stop=$(seconds "$(unit_value TimeoutStopSec)")
    drain=$(unit_value ExecStart | grep -oE -- '--shutdown-timeout[ =][0-9]+' | grep -oE '[0-9]+$')
    echo "    TimeoutStopSec=$stop, --shutdown-timeout ${drain:-30 (default)}"
    ((stop > ${drain:-30}))
}
hardened() {
    local want ok=0
    for want in DynamicUser=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
                CapabilityBoundingSet= "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
                SystemCallFilter=@system-service KillSignal=SIGTERM Restart=on-failure \
                EnvironmentFile=-/etc/bitnet/serve.env; do
        grep -qxF -- "$want" "$unit" || { echo "    missing: $want"; ok=1; }
    done
    for want in MemoryMax LimitNOFILE; do
        grep -qE "^$want=.+" "$unit" || { echo "    missing: $want="; ok=1; }
    done
    return $ok
}
security_score() {
    local dir out
    dir=$(mktemp -d "$tmp/units.XXXXXX")
    unit_copy "$unit" "$dir"
    out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --man=no --threshold=20 \
          "$dir/bitnet-serve@8081.service" 2>&1)
    local rc=$?
    grep -o 'Overall exposure level.*' <<< "$out" | sed 's/^/    /'
    return $rc
}
# serve_as_unit: bitnet serve with the unit's Environment= lines, serve.env.example and the
# ExecStart arguments (port 0: a free one; the shipped model); ready, /live, /metrics, then
# SIGTERM must end it with 0 within TimeoutStopSec.
serve_as_unit() {
    local -a envs args
    local line cmdline port='' pid i code rc stop
    while read -r line; do envs+=("$line"); done < <(sed -n 's/^Environment=//p' "$unit" | sed "s#%C#$tmp/cache#g")
    while read -r line; do envs+=("$line"); done < <(grep -E '^BITNET_[A-Z0-9_]+=' "$envfile")
    envs+=("BITNET_MODEL=$src/models/kjv-bitnet.gguf")
    cmdline=$(unit_value ExecStart)
    cmdline=${cmdline#/usr/local/bin/bitnet }
    cmdline=${cmdline//%i/0}
    local host_variable='${BITNET_HOST}' host
    host=$(sed -n 's/^Environment=BITNET_HOST=//p' "$unit")
    cmdline=${cmdline//"$host_variable"/$host}
    read -r -a args <<< "$cmdline"
    # Only what systemd would give it, and the sanitizer settings of a sanitizer build.
    local name
    for name in ASAN_OPTIONS UBSAN_OPTIONS ASAN_SYMBOLIZER_PATH; do
        [[ -n ${!name:-} ]] && envs=("$name=${!name}" "${envs[@]}")
    done
    env -i PATH="$PATH" HOME="$tmp" "${envs[@]}" "$bin" "${args[@]}" > "$tmp/serve.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        port=$(grep -oE 'listening on http://[^ ]*:[0-9]+' "$tmp/serve.log" | grep -oE '[0-9]+$')
        [[ -z $port ]] && kill -0 $pid 2> /dev/null || break
        sleep 0.1
    done
    [[ -n $port ]] || { echo "    did not start:"; sed 's/^/    /' "$tmp/serve.log"; return 1; }
    for ((i = 0; i < 300; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")
        [[ $code == 200 ]] && break
        sleep 0.1
    done
    rc=0
    [[ $code == 200 ]] || { echo "    /ready answered $code"; rc=1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/live")
    [[ $code == 200 ]] || { echo "    /live answered $code"; rc=1; }
    curl -s "http://127.0.0.1:$port/metrics" | grep -q '^bitnet_queue_depth ' ||
        { echo "    /metrics has no bitnet_queue_depth"; rc=1; }
    stop=$(seconds "$(unit_value TimeoutStopSec)")
    kill -TERM $pid
    for ((i = 0; i < stop * 10 && rc == 0; i++)); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
    if kill -0 $pid 2> /dev/null; then
        echo "    still running after TimeoutStopSec=$stop"
        kill -KILL $pid
        rc=1
    fi
    wait $pid || { echo "    exit status $? after SIGTERM:"; tail -5 "$tmp/serve.log" | sed 's/^/    /'; rc=1; }
    return $rc
}

check "systemd: unit and serve.env.example exist" test -f "$unit" -a -f "$envfile"
check "systemd: ExecStart is bitnet serve on port %i" grep -qE '^ExecStart=/usr/local/bin/bitnet serve .*--port %i( |$)' "$unit"
check "systemd: TimeoutStopSec above --shutdown-timeout" stop_outlasts_drain
check "systemd: hardening, restart and stop settings present" hardened
check_env_names bitnet-serve@.service $(sed -n 's/^Environment=\(BITNET_[A-Z0-9_]*\)=.*/\1/p' "$unit")
check_env_names serve.env.example $(grep -oE '^BITNET_[A-Z0-9_]+' "$envfile")
if have systemd-analyze "systemd-analyze (systemd)"; then
    check "systemd: systemd-analyze verify bitnet-serve@8081.service is clean" verify_unit "$unit"
    check "systemd: verify rejects a misspelled directive (TimeoutStopSecs=)" \
        rejects_unit 's/^TimeoutStopSec=/TimeoutStopSecs=/' "Unknown key 'TimeoutStopSecs'"
    check "systemd: verify rejects a bad value (ProtectSystem=strikt)" \
        rejects_unit 's/^ProtectSystem=strict/ProtectSystem=strikt/' "strikt"
    check "systemd: systemd-analyze security --offline exposure at most 2.0" security_score
fi
if have curl; then
    check "systemd: the unit's command line with serve.env.example serves /ready, /live, /metrics and stops cleanly on SIGTERM" serve_as_unit
fi

# --- deploy/haproxy/haproxy.cfg -----------------------------------------------------------------
cfg=$deploy/haproxy/haproxy.cfg
# haproxy_check FILE: `haproxy -c` with warnings fatal (-dW). Variables the file expands with a
# default ("${NAME-default}") are left unset so the defaults are what is checked; one without a
# default gets the NAME=VALUE its header comment documents, or the check fails.
haproxy_check() {
    local -a envs
    local name out
    for name in $(grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*\}' "$1" | tr -d '${}' | sort -u); do
        local value
        value=$(sed -n "/^[^#]/q; s/^#.*\\b$name=\\([^ ]*\\).*/\\1/p" "$1" | head -1)
        [[ -n $value ]] || { echo "    \${$name} has no default and the header documents no $name=VALUE"; return 1; }
        envs+=("$name=$value")
    done
    out=$(env "${envs[@]}" haproxy -dW -c -f "$1" 2>&1) && return 0
    printf '%s\n' "$out" | grep -v NOTICE | sed 's/^/    /'
    return 1
}
haproxy_rejects_typo() {
    sed 's/^\([[:space:]]*\)balance /\1balanse /' "$cfg" > "$tmp/broken.cfg"
    ! cmp -s "$cfg" "$tmp/broken.cfg" && ! haproxy_check "$tmp/broken.cfg" > /dev/null
}
replicas_on_loopback() { # the default replica addresses are where bitnet-serve@PORT listens by default
    local servers
    servers=$(grep -E '^[[:space:]]*server ' "$cfg")
    [[ -n $servers ]] && ! grep -vE '"\$\{[A-Za-z0-9_]+:?-127\.0\.0\.1:[0-9]+\}"' <<< "$servers"
}
check "haproxy: deploy/haproxy/haproxy.cfg exists" test -f "$cfg"
if [[ -f $cfg ]]; then
    if have haproxy; then
        check "haproxy: haproxy -dW -c accepts the configuration" haproxy_check "$cfg"
        check "haproxy: the same check rejects a misspelled keyword (balanse)" haproxy_rejects_typo
    fi
    check "haproxy: the health check is GET /ready" grep -qE '^[[:space:]]*(http-check send .*uri /ready|option httpchk( GET)? /ready)( |$)' "$cfg"
    check "haproxy: default replicas on 127.0.0.1, the unit's default BITNET_HOST" replicas_on_loopback
fi

# --- deploy/k8s -----------------------------------------------------------------------------------
k8s=$deploy/k8s
validator=$src/tests/js/deploy/validate_k8s.mjs
# rejects_k8s FILE SED_EXPRESSION MESSAGE: a copy of deploy/k8s with FILE so edited makes the
# validator fail with a FAIL line containing MESSAGE.
rejects_k8s() {
    local dir out
    dir=$(mktemp -d "$tmp/k8s.XXXXXX")
    cp "$k8s"/*.yaml "$dir/"
    sed -i "$2" "$dir/$1"
    cmp -s "$k8s/$1" "$dir/$1" && { echo "    the edit $2 changed nothing"; return 1; }
    out=$(node "$validator" "$dir" 2>&1) && { echo "    accepted"; return 1; }
    grep "^FAIL: .*$3" <<< "$out" | sed 's/^/    /' | grep -q . || { grep '^FAIL' <<< "$out" | sed 's/^/    /'; return 1; }
}
check_env_names deployment.yaml $(grep -oE 'name: BITNET_[A-Z0-9_]+' "$k8s/deployment.yaml" | cut -d' ' -f2 | sort -u)
node_ready=0
if have node; then
    if [[ -d $src/tests/js/node_modules/kubernetes-models && -d $src/tests/js/node_modules/yaml ]]; then
        node_ready=1
    else
        missing+=("tests/js/node_modules with kubernetes-models and yaml (npm ci in tests/js)")
    fi
fi
if ((node_ready)); then
    if node "$validator" "$k8s" > "$tmp/k8s.log" 2>&1; then
        check "k8s: validate_k8s.mjs accepts deploy/k8s ($(grep -c '^ok:' "$tmp/k8s.log") checks)" true
    else
        sed 's/^/    /' "$tmp/k8s.log"
        check "k8s: validate_k8s.mjs accepts deploy/k8s" false
    fi
    check "k8s: rejects a probe port given as an object (schema)" \
        rejects_k8s deployment.yaml '/readinessProbe:/,/port:/s/port: http/port: {name: http}/' 'OpenAPI schema.*readinessProbe/httpGet/port'
    check "k8s: rejects a misspelled field (readinesProbe)" \
        rejects_k8s deployment.yaml 's/readinessProbe:/readinesProbe:/' 'unknown fields.*readinesProbe'
    check "k8s: rejects a memory limit that is not a quantity" \
        rejects_k8s deployment.yaml 's/memory: 3Gi/memory: 3 GB/' 'OpenAPI schema.*memory'
    check "k8s: rejects a grace period shorter than preStop + --shutdown-timeout" \
        rejects_k8s deployment.yaml 's/terminationGracePeriodSeconds: .*/terminationGracePeriodSeconds: 30/' 'terminationGracePeriodSeconds'
    check "k8s: rejects an HPA on another metric" \
        rejects_k8s hpa.yaml 's/name: bitnet_queue_depth/name: bitnet_queue_length/' 'bitnet_queue_depth'
    check "k8s: rejects a PDB selecting other pods" \
        rejects_k8s pdb.yaml 's/app.kubernetes.io\/name: bitnet-serve/app.kubernetes.io\/name: bitnet/' 'PDB: selector'
fi
metric=$(grep -oE 'name: bitnet_[a-z_]+' "$k8s/hpa.yaml" | head -1 | cut -d' ' -f2)
check "k8s: the HPA's metric (${metric:-none}) is one the server exports" grep -rqw -- "${metric:-none}" "$src/src/server"

echo "$passed passed, $failed failed"
((fail == 0)) || exit 1
if ((${#missing[@]})); then
    echo "skip: some checks need what is missing here: ${missing[*]}"
    exit 77
fi
exit 0
