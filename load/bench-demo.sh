#!/usr/bin/env bash
# First figure: what does one coopr-router hop cost on a local read?
#
# Starts 3 coopr-sims + 3 coopr-routers (separate processes, loopback only), creates one cluster
# in dc1 through dc1's router, then runs wrk against
#   router-read       GET  /v2/clusters/ID/status via dc1's router (local read)
#   direct-sim        GET  /v2/clusters/ID/status straight to dc1's sim
#   router-fwd-write  POST /v2/clusters/ID/pause via dc2's router (forwarded to dc1's router)
# alternating targets within each round, and reports req/s, p50/p99 and router CPU seconds per
# 100k requests (utime+stime from /proc of the router processes only).
#
# Usage: bash load/bench-demo.sh [--smoke]
#   env DURATION=10 (s per run)  CONNS=32  THREADS=1  ROUNDS=2  BASE_PORT=17000  SKIP_BUILD=1
#       QUIET_WAIT=60 QUIET_CORES=0.3 (before each run, wait up to QUIET_WAIT s for other
#       processes to use under QUIET_CORES cores)  KEEP_WORK=1 (keep the temp dir with logs and raw outputs)
# Output: a Markdown table on stdout, JSON in load/results/demo-YYYYmmdd-HHMMSS.json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) die "unknown argument $arg (try --help)" ;;
    esac
done
if [[ $SMOKE == 1 ]]; then DURATION="${DURATION:-2}"; else DURATION="${DURATION:-10}"; fi
DURATION="${DURATION%s}"
CONNS="${CONNS:-32}"
ROUNDS="${ROUNDS:-2}"

main() {
    ensure_tools wrk curl ss
    setup_workdir
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203)"
    log "base port $BASE"
    start_topology
    local id read_path write_path router_read direct_read fwd_write
    id="$(create_cluster)"
    read_path="/v2/clusters/$id/status"
    write_path="/v2/clusters/$id/pause"
    router_read="http://127.0.0.1:$(client_port 1)$read_path"
    direct_read="http://127.0.0.1:$(sim_port 1)$read_path"
    fwd_write="http://127.0.0.1:$(client_port 2)$write_path"

    # Each target must answer 200 (and the router must route it as expected) before we load it.
    expect_route "$router_read" GET local
    expect_route "$fwd_write" POST forwarded
    curl -sf -o /dev/null "${COOPR_HDRS[@]}" "$direct_read" || die "direct read $direct_read failed"

    local r1="${PIDS[router-dc1]}" r2="${PIDS[router-dc2]}" s1="${PIDS[sim-dc1]}"
    log "warm-up (1 s per target, not measured)"
    for url in "$router_read" "$direct_read"; do
        timeout 20 wrk -t1 -c"$CONNS" -d1s -s "$LOAD_DIR/coopr.lua" "$url" >/dev/null
    done
    WRK_METHOD=POST WRK_BODY='{}' timeout 20 wrk -t1 -c"$CONNS" -d1s -s "$LOAD_DIR/coopr.lua" "$fwd_write" >/dev/null

    log "measuring: $ROUNDS rounds x (router-read, direct-sim, router-fwd-write), ${DURATION}s each, wrk -t${THREADS:-1} -c$CONNS"
    local round
    for round in $(seq "$ROUNDS"); do
        run_wrk router-read "$round" "$r1" "$s1" "$router_read"
        run_wrk direct-sim "$round" "" "$s1" "$direct_read"
        run_wrk router-fwd-write "$round" "$r2 $r1" "$s1" "$fwd_write" POST
    done

    mkdir -p "$RESULTS_DIR"
    local stamp; stamp="$(date +%Y%m%d-%H%M%S)"
    $REPORT summarize --records "$WORK/records.jsonl" \
        --json-out "$RESULTS_DIR/demo-$stamp.json" \
        --title "bench-demo (wrk HTTP/1.1, local read vs direct, forwarded write)" \
        --date "$(date '+%Y-%m-%d %H:%M:%S %Z')" \
        --machine "$(machine_json "$REPO_DIR")" \
        --settings "{\"duration_s\": $DURATION, \"conns\": $CONNS, \"threads\": ${THREADS:-1}, \"rounds\": $ROUNDS, \"cluster\": \"$id\", \"op_delay_ms\": ${OP_DELAY_MS:-200}}" \
        --notes '{"proxy CPU": "router-read: dc1 router; router-fwd-write: dc2 + dc1 routers (two hops); direct-sim: no proxy", "sim CPU": "dc1 simulator, for reference"}' \
        --order router-read,direct-sim,router-fwd-write \
        --ratios router-read:direct-sim
}

main
