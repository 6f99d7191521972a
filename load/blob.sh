#!/usr/bin/env bash
# What large answers cost dc1's router, two ways, over `GET /v2/sim/blob?size=N` (the simulator
# generates the body chunk by chunk) through dc1's router, in the topology of bench.sh (3 sims,
# 3 routers, loopback):
#   download (default): RUNS downloads of SIZE_MIB (1024) MiB with curl, after one warm-up; the
#       router's and the simulator's CPU per GiB. The read side of `scale --only downloads`
#       (memory per stalled download).
#   answers: wrk (1 thread, 16 connections, 5 s, RUNS times after a 2 s warm-up) on answers of
#       SIZE_KIB (50) KiB; the router's CPU per 100k answers and req/s. Answers of a few tens of
#       KiB are what Coopr's lists are.
#
# Usage: bash load/blob.sh [download|answers]
#   env RUNS=3 SIZE_MIB=1024 SIZE_KIB=50 SKIP_BUILD=1 ROUTER=path (that router binary, for A/B)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="${1:-download}" RUNS="${RUNS:-3}" SIZE_MIB="${SIZE_MIB:-1024}" SIZE_KIB="${SIZE_KIB:-50}"

download() {
    local router="$1" sim="$2" i r0 s0 a b r s
    local url="http://127.0.0.1:$(client_port 1)/v2/sim/blob?size=$((SIZE_MIB * 1024 * 1024))"
    local hdrs=(-H 'Coopr-UserID: admin' -H 'Coopr-TenantID: superadmin')
    curl -sf -o /dev/null "${hdrs[@]}" "$url" || die "warm-up download failed"
    log "router $BINARY_INFO; $RUNS downloads of $SIZE_MIB MiB through dc1's router"
    for i in $(seq "$RUNS"); do
        r0="$(cpu_ticks "$router")" s0="$(cpu_ticks "$sim")" a="$(date +%s%N)"
        curl -sf -o /dev/null "${hdrs[@]}" "$url" || die "download $i failed"
        b="$(date +%s%N)" r="$(($(cpu_ticks "$router") - r0))" s="$(($(cpu_ticks "$sim") - s0))"
        awk -v i="$i" -v r="$r" -v s="$s" -v ms="$(((b - a) / 1000000))" -v tck="$CLK_TCK" \
            -v gib="$(awk "BEGIN {print $SIZE_MIB / 1024}")" 'BEGIN {
                printf "run %d: router %.3f s CPU per GiB, simulator %.3f s, %.2f GiB/s\n",
                    i, r / tck / gib, s / tck / gib, gib / (ms / 1000) }'
    done
}

answers() {
    local router="$1" i t0 out n
    local url="http://127.0.0.1:$(client_port 1)/v2/sim/blob?size=$((SIZE_KIB * 1024))"
    local lua="$WORK/run/blob.lua"
    printf 'wrk.headers["Coopr-UserID"] = "admin"\nwrk.headers["Coopr-TenantID"] = "superadmin"\n' >"$lua"
    wrk -t1 -c16 -d2s -s "$lua" "$url" >/dev/null
    log "router $BINARY_INFO; wrk on $SIZE_KIB KiB answers through dc1's router, $RUNS x 5 s"
    for i in $(seq "$RUNS"); do
        t0="$(cpu_ticks "$router")"
        out="$(wrk -t1 -c16 -d5s -s "$lua" "$url")"
        n="$(awk '/requests in/ {print $1}' <<<"$out")"
        [[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || die "wrk gave no count: $out"
        awk -v i="$i" -v n="$n" -v t="$(($(cpu_ticks "$router") - t0))" -v tck="$CLK_TCK" \
            -v rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")" 'BEGIN {
                printf "run %d: %d answers, router %.2f s CPU per 100k, %s req/s\n",
                    i, n, t / tck / n * 100000, rps }'
    done
}

main() {
    case "$MODE" in
        download) ensure_tools curl ss ;;
        answers) ensure_tools wrk ss ;;
        *) die "usage: bash load/blob.sh [download|answers]" ;;
    esac
    setup_workdir
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203)"
    start_topology
    "$MODE" "${PIDS[router-dc1]}" "${PIDS[sim-dc1]}"
}

main "$@"
