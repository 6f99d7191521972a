#!/usr/bin/env bash
# HTTP/2 conformance: h2spec against dc1's router, over h2c (prior knowledge, the client port)
# and over TLS (ALPN h2, dev certificates from `coopr-router certs dev`), in front of the
# simulator. Not part of `cargo test`.
#
# Installs Debian's golang-go if `go` is missing (root only) and builds h2spec with `go install`
# from the Go module proxy by module name, pinned (H2SPEC_VERSION), into a temp dir; nothing of
# h2spec is vendored or committed. H2SPEC=/path/to/h2spec skips the build.
#
# Usage: bash load/h2spec.sh
#   env H2SPEC=path  H2SPEC_VERSION=<module version or commit>  BASE_PORT=17000  SKIP_BUILD=1
#       RUNS=10 (runs in a row against the same routers; default 1)
#       KEEP_WORK=1 (keep the temp dir with logs and h2spec's full reports)
# Output: per run, h2spec's failures and its count line; then "h2c: N passed, N failed" and
# "tls: N passed, N failed" per run. Exit 0 even when cases fail (the counts are the result).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The module has no /v2 path, so its v2.x tags cannot be asked for: pinned by commit.
H2SPEC_VERSION="${H2SPEC_VERSION:-5349aa6b7adc7df7499ce7b74ff87bc39e2c4e57}"

ensure_h2spec() {
    if [[ -n "${H2SPEC:-}" ]]; then [[ -x "$H2SPEC" ]] || die "H2SPEC=$H2SPEC is not executable"; return; fi
    if ! command -v go >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || die "go is missing; apt-get install -y --no-install-recommends golang-go"
        log "installing golang-go"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >/dev/null; } \
            || die "apt-get install golang-go failed"
    fi
    mkdir -p "$WORK/go" "$WORK/gobin"
    log "go install github.com/summerwind/h2spec/cmd/h2spec@$H2SPEC_VERSION"
    GOPATH="$WORK/go" GOBIN="$WORK/gobin" GOFLAGS=-modcacherw \
        go install "github.com/summerwind/h2spec/cmd/h2spec@$H2SPEC_VERSION" >"$WORK/logs/go-install.log" 2>&1 \
        || { cat "$WORK/logs/go-install.log" >&2; die "building h2spec failed (is the Go module proxy reachable?)"; }
    H2SPEC="$WORK/gobin/h2spec"
}

# run_h2spec NAME ARGS...: runs h2spec, keeps its report, prints failures and the count line.
run_h2spec() {
    local name="$1"; shift
    "$H2SPEC" --timeout 2 "$@" >"$WORK/out/h2spec-$name.txt" 2>&1 || true
    grep -E '×|^ +-> |Expected|Actual' "$WORK/out/h2spec-$name.txt" >&2 || true
    local line
    line="$(grep -E '^[0-9]+ tests, ' "$WORK/out/h2spec-$name.txt" | tail -n 1)"
    [[ -n "$line" ]] || { tail -n 20 "$WORK/out/h2spec-$name.txt" >&2; die "h2spec ($name) printed no summary"; }
    log "$name: $line"
    # "146 tests, 145 passed, 0 skipped, 1 failed" -> "h2c-1: 145 passed, 1 failed"
    awk -v n="$name" '{print n": "$3" passed, "$7" failed"}' <<<"$line"
}

main() {
    ensure_tools curl ss
    setup_workdir
    ensure_h2spec
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203 400 401 402)"
    log "base port $BASE"
    start_topology
    # A second dc1 router with TLS on its client port (dev certificates), same backends.
    "$ROUTER_BIN" certs dev --out "$WORK/certs" --dcs dc1,dc2,dc3 >/dev/null
    local tls_cfg="$WORK/run/router-dc1-tls.toml"
    sed -e "s/:$(client_port 1)\"/:$((BASE + 400))\"/" -e "s/:$(peer_port 1)\"/:$((BASE + 401))\"/" \
        -e "s/:$(admin_port 1)\"/:$((BASE + 402))\"/" "$WORK/run/router-dc1.toml" >"$tls_cfg"
    printf '\n[tls.client]\ncert_file = "%s"\nkey_file = "%s"\n' \
        "$WORK/certs/dc1/server.pem" "$WORK/certs/dc1/server.key" >>"$tls_cfg"
    "$ROUTER_BIN" check-config "$tls_cfg" >/dev/null || die "TLS router config refused"
    start "router-dc1-tls" env RUST_LOG="${ROUTER_LOG:-warn}" "$ROUTER_BIN" run --config "$tls_cfg"
    wait_http "router-dc1-tls" "http://127.0.0.1:$((BASE + 402))/ready"
    local run h2c tls
    for ((run = 1; run <= ${RUNS:-1}; run++)); do
        h2c="$(run_h2spec "h2c-$run" -h 127.0.0.1 -p "$(client_port 1)")"
        tls="$(run_h2spec "tls-$run" -h 127.0.0.1 -p $((BASE + 400)) -t -k)"
        echo "$h2c"
        echo "$tls"
    done
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "reports: $WORK/out/h2spec-*.txt"; fi
}

main
