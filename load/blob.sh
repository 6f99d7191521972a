#!/usr/bin/env bash
# What a large download costs dc1's router: CPU per GiB of `GET /v2/sim/blob` (the simulator
# generates the body chunk by chunk) fetched whole with curl through dc1's router, against the
# simulator's own CPU for the same bytes. The topology of bench.sh (3 sims, 3 routers, loopback),
# one warm-up download, then RUNS timed ones. Complements `scale --only downloads` (memory per
# stalled download): this is the same path when the client keeps reading.
#
# Usage: bash load/blob.sh
#   env RUNS=3 SIZE_MIB=1024 SKIP_BUILD=1 ROUTER=path (that router binary, for A/B)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${RUNS:-3}" SIZE_MIB="${SIZE_MIB:-1024}"

main() {
    ensure_tools curl ss
    setup_workdir
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203)"
    start_topology
    local router="${PIDS[router-dc1]}" sim="${PIDS[sim-dc1]}" i r0 s0 a b r s
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

main "$@"
