#!/usr/bin/env bash
# Full comparison (issue 9): coopr-router against nginx and HAProxy in front of the same
# coopr-sim, over HTTP/1.1 (wrk) and h2c (h2load), plus a 10k-idle-connections phase.
#
# Topology (all loopback, separate processes): 3 coopr-sims + 3 coopr-routers as in
# bench-demo.sh, and nginx + haproxy (load/nginx.conf, load/haproxy.cfg, ports substituted,
# run in the foreground from a temp dir) proxying to dc1's sim with upstream keep-alive pools.
#
# Targets (same cluster, created in dc1 through dc1's router):
#   direct-sim        GET  /v2/clusters/ID/status  straight to dc1's sim (the ceiling)
#   router-read       GET  .../status              via dc1's router (local read)
#   router-fwd-write  POST /v2/clusters/ID/pause   via dc2's router -> dc1's router -> dc1's sim
#   nginx             GET  .../status              via nginx
#   haproxy           GET  .../status              via haproxy
# Each round runs every target with wrk, then every target with h2load; the target order is
# reversed on even rounds. Then, unless RATE=0, router-read, nginx and haproxy at one fixed
# offered load (RATE req/s over HTTP/1.1, h2load --h1 --rps), to compare latency and CPU per
# request at the same load ("T@RATE"), in the same alternating order. Then, unless IDLE=0, for router-read, nginx and haproxy
# in turn:
# hold IDLE_CONNS idle keep-alive connections open (load/idle_conns.py), run wrk again, and
# report the memory per idle connection and the throughput under that load.
#
# Usage: bash load/bench.sh [--smoke]
#   env DURATION=10 (s per run)  CONNS=32  THREADS=1  H2_STREAMS=10  ROUNDS=2
#       RATE=10000 (fixed-load phase, req/s; 0 skips it)
#       IDLE=1  IDLE_CONNS=10000  BASE_PORT=17000  SKIP_BUILD=1  KEEP_WORK=1
#       PROXY_THREADS=$(nproc) (nginx workers, haproxy threads)
#       ROUTERS_ENV="NAME=VALUE ..." (more environment for every router, e.g.
#       TOKIO_WORKER_THREADS=1)
#       QUIET_WAIT=60 QUIET_CORES=0.3 (before each run, wait up to QUIET_WAIT s for other
#       processes to use under QUIET_CORES cores)
# Output: Markdown tables on stdout, JSON in load/results/bench-YYYYmmdd-HHMMSS.json.
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
if [[ $SMOKE == 1 ]]; then
    DURATION="${DURATION:-2}"; ROUNDS="${ROUNDS:-1}"; IDLE_CONNS="${IDLE_CONNS:-1000}"
fi
DURATION="${DURATION:-10}"; DURATION="${DURATION%s}"
CONNS="${CONNS:-32}"
ROUNDS="${ROUNDS:-2}"
IDLE="${IDLE:-1}"
RATE="${RATE:-10000}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
PROXY_THREADS="${PROXY_THREADS:-$(nproc)}"

# Port offsets from the base port: DC i uses 100*(i-1)+{0..3}; the peers use 300+ (HAProxy's,
# OFF_HAPROXY and OFF_HAPROXY_H2, are lib.sh's).
OFF_NGINX=300 OFF_NGINX_H2=301

declare -A URL=() H2URL=() METHOD=() PROXY=()   # per target
declare -A NOTES=()                               # printed under the table, kept in the JSON


start_nginx() {
    local NGINX_PORT=$((BASE + OFF_NGINX)) NGINX_H2_PORT=$((BASE + OFF_NGINX_H2))
    local SIM_PORT; SIM_PORT="$(sim_port 1)"
    local USER; USER="$(id -un)"
    local WORKERS="$PROXY_THREADS" NOFILE; NOFILE="$(ulimit -n)"
    [[ $NOFILE == unlimited ]] && NOFILE=65536
    mkdir -p "$WORK/nginx/logs"
    render "$LOAD_DIR/nginx.conf" "$WORK/run/nginx.conf" USER WORKERS NOFILE WORK SIM_PORT NGINX_PORT NGINX_H2_PORT
    nginx -t -q -p "$WORK/nginx" -e "$WORK/logs/nginx-error.log" -c "$WORK/run/nginx.conf" \
        2>"$WORK/logs/nginx-test.log" || { cat "$WORK/logs/nginx-test.log" >&2; die "nginx -t failed"; }
    start nginx nginx -p "$WORK/nginx" -e "$WORK/logs/nginx-error.log" -c "$WORK/run/nginx.conf"
    wait_http nginx "http://127.0.0.1:$NGINX_PORT/status"
}


# h2_ok TARGET: can h2load do clean h2c (prior knowledge) against it? 20 requests, all 2xx.
h2_ok() {
    local t="$1" out data=()
    [[ "${METHOD[$t]}" == POST ]] && { printf '{}' >"$WORK/run/post-body"; data=(-d "$WORK/run/post-body"); }
    out="$(timeout 20 h2load -n 20 -c 1 -m 1 "${COOPR_HDRS[@]}" "${data[@]}" "${H2URL[$t]}" 2>&1 || true)"
    grep -q 'requests: 20 total, 20 started, 20 done, 20 succeeded' <<<"$out" \
        && grep -q 'status codes: 20 2xx' <<<"$out"
}

# One measurement of TARGET with TOOL, under the record name NAME (default TARGET).
run_target() {
    local tool="$1" t="$2" round="$3" name="${4:-$2}"
    if [[ $tool == wrk ]]; then
        run_wrk "$name" "$round" "${PROXY[$t]}" "$SIM1" "${URL[$t]}" "${METHOD[$t]}"
    else
        run_h2load "$name" "$round" "${PROXY[$t]}" "$SIM1" "${H2URL[$t]}" "${METHOD[$t]}"
    fi
}

# rss_kb PID...: current resident set (VmRSS) over the pids and their children.
rss_kb() {
    local total=0 pid p kb
    for pid in "$@"; do
        for p in $(pid_tree "$pid"); do
            kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
            total=$((total + ${kb:-0}))
        done
    done
    echo "$total"
}

# idle_phase TARGET: run wrk once (baseline, "TARGET+noidle"), hold IDLE_CONNS idle keep-alive
# connections on TARGET, run wrk again ("TARGET+idle"), release them; one JSON line into
# $WORK/idle.jsonl.
idle_phase() {
    local t="$1" port rss0 rss1 rss2 ready="$WORK/run/idle-$1.ready" summary i
    port="$(sed -E 's|^http://[^:]+:([0-9]+)/.*|\1|' <<<"${URL[$t]}")"
    run_target wrk "$t" 1 "$t+noidle"
    rss0="$(rss_kb ${PROXY[$t]})"
    log "idle phase $t: opening $IDLE_CONNS keep-alive connections to :$port"
    start "idle-$t" python3 "$LOAD_DIR/idle_conns.py" --port "$port" --count "$IDLE_CONNS" \
        --path "${IDLE_PATH}" --hold $((DURATION + 300)) --ready-file "$ready"
    for i in $(seq 1200); do [[ -s "$ready" ]] && break; alive "idle-$t"; sleep 0.1; done
    [[ -s "$ready" ]] || die "idle connections to $t not ready after 120 s"
    sleep 1
    rss1="$(rss_kb ${PROXY[$t]})"
    run_target wrk "$t" 1 "$t+idle"
    # Again after that load, the connections still held: memory the allocator kept from the
    # burst of opening them (freed, not yet returned) is gone by then; what they hold is not.
    rss2="$(rss_kb ${PROXY[$t]})"
    # Stop the holder and collect its summary (how many connections the proxy kept open).
    kill -TERM "${PIDS[idle-$t]}"
    wait "${PIDS[idle-$t]}" || true
    unset "PIDS[idle-$t]"
    summary="$(tail -n 1 "$WORK/logs/idle-$t.log")"
    python3 - "$t" "$rss0" "$rss1" "$summary" "$(cat "$ready")" "$rss2" >>"$WORK/idle.jsonl" <<'EOF'
import json, sys
t, rss0, rss1, summary, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rss2 = int(sys.argv[6])
try:
    s = json.loads(summary)
except ValueError:
    s = json.loads(ready)
n = s.get("opened", 0)
print(json.dumps({"target": t, **s, "rss_before_kb": rss0, "rss_idle_kb": rss1,
                  "kib_per_idle_conn": (rss1 - rss0) / n if n else None,
                  "rss_idle_after_load_kb": rss2,
                  "kib_per_idle_conn_after_load": (rss2 - rss0) / n if n else None}))
EOF
    log "idle phase $t: $(tail -n 1 "$WORK/idle.jsonl")"
}

main() {
    ensure_tools wrk h2load nginx haproxy curl ss
    # 10k idle connections need file descriptors in this shell's children (router, holder).
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [[ $IDLE == 1 && $(ulimit -n) != unlimited && $(ulimit -n) -lt $((IDLE_CONNS + 200)) ]]; then
        log "ulimit -n is $(ulimit -n): IDLE_CONNS lowered from $IDLE_CONNS"
        IDLE_CONNS=$(( $(ulimit -n) - 500 ))
    fi
    setup_workdir
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203 \
        $OFF_NGINX $OFF_NGINX_H2 $OFF_HAPROXY $OFF_HAPROXY_H2)"
    log "base port $BASE"
    start_topology
    local id; id="$(create_cluster)"
    start_nginx
    start_haproxy
    SIM1="${PIDS[sim-dc1]}"

    local read_path="/v2/clusters/$id/status" write_path="/v2/clusters/$id/pause"
    IDLE_PATH="$read_path"
    URL[direct-sim]="http://127.0.0.1:$(sim_port 1)$read_path";        PROXY[direct-sim]=""
    URL[router-read]="http://127.0.0.1:$(client_port 1)$read_path";    PROXY[router-read]="${PIDS[router-dc1]}"
    URL[router-fwd-write]="http://127.0.0.1:$(client_port 2)$write_path"
    PROXY[router-fwd-write]="${PIDS[router-dc2]} ${PIDS[router-dc1]}"
    URL[nginx]="http://127.0.0.1:$((BASE + OFF_NGINX))$read_path";     PROXY[nginx]="${PIDS[nginx]}"
    URL[haproxy]="http://127.0.0.1:$((BASE + OFF_HAPROXY))$read_path"; PROXY[haproxy]="${PIDS[haproxy]}"
    local t
    for t in "${!URL[@]}"; do METHOD[$t]=GET; H2URL[$t]="${URL[$t]}"; done
    METHOD[router-fwd-write]=POST
    H2URL[nginx]="http://127.0.0.1:$((BASE + OFF_NGINX_H2))$read_path"
    H2URL[haproxy]="http://127.0.0.1:$((BASE + OFF_HAPROXY_H2))$read_path"
    local targets=(direct-sim router-read router-fwd-write nginx haproxy)

    # Every target must answer 200 over HTTP/1.1 before it is loaded; the router routes too.
    expect_route "${URL[router-read]}" GET local
    expect_route "${URL[router-fwd-write]}" POST forwarded
    for t in direct-sim nginx haproxy; do
        curl -sf -o /dev/null "${COOPR_HDRS[@]}" "${URL[$t]}" || die "$t: GET ${URL[$t]} failed"
    done
    # h2c: a target that cannot do clean prior-knowledge h2c is left out of the h2load runs.
    local h2_targets=()
    for t in "${targets[@]}"; do
        if h2_ok "$t"; then h2_targets+=("$t")
        else NOTES[h2c-$t]="h2load (h2c prior knowledge) against $t failed its 20-request check; no h2load figures"
             log "${NOTES[h2c-$t]}"; fi
    done

    log "warm-up (1 s per target, not measured)"
    for t in "${targets[@]}"; do
        WRK_METHOD="${METHOD[$t]}" WRK_BODY='{}' timeout 20 wrk -t1 -c"$CONNS" -d1s -s "$LOAD_DIR/coopr.lua" "${URL[$t]}" >/dev/null
    done

    log "measuring: $ROUNDS rounds x ${#targets[@]} targets x (wrk, h2load), ${DURATION}s each"
    local round order tool
    for round in $(seq "$ROUNDS"); do
        order=("${targets[@]}")
        if (( round % 2 == 0 )); then
            order=(); for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[$i]}"); done
        fi
        for tool in wrk h2load; do
            for t in "${order[@]}"; do
                if [[ $tool == h2load && " ${h2_targets[*]} " != *" $t "* ]]; then continue; fi
                run_target "$tool" "$t" "$round"
            done
        done
    done

    # The same offered load on each: p99 and CPU per request compare without one target being
    # pushed harder than another. h2load's --rps is per connection.
    if (( RATE > 0 )); then
        log "fixed load: $RATE req/s over HTTP/1.1 (h2load --h1), $ROUNDS rounds"
        local rate_targets=(router-read nginx haproxy)
        H2LOAD_EXTRA=(--h1 "--rps=$(( (RATE + CONNS - 1) / CONNS ))")
        for round in $(seq "$ROUNDS"); do
            # Reversed on even rounds, as above: no target always runs first.
            order=("${rate_targets[@]}")
            (( round % 2 == 0 )) && order=(haproxy nginx router-read)
            for t in "${order[@]}"; do
                H2_STREAMS=1 run_h2load "$t@$RATE" "$round" "${PROXY[$t]}" "$SIM1" "${URL[$t]}" "${METHOD[$t]}"
            done
        done
        H2LOAD_EXTRA=()
    fi

    : >"$WORK/idle.jsonl"
    if [[ $IDLE == 1 ]]; then
        for t in router-read nginx haproxy; do idle_phase "$t"; done
    fi

    mkdir -p "$RESULTS_DIR"
    local stamp notes_json; stamp="$(date +%Y%m%d-%H%M%S)"
    NOTES[proxy CPU]="router-read: dc1 router; router-fwd-write: dc2 + dc1 routers (two hops); nginx: master + $PROXY_THREADS workers; haproxy: one process, $PROXY_THREADS threads; direct-sim: no proxy. Peak RSS is VmHWM summed over those processes."
    NOTES[sim CPU]="dc1 simulator, for reference (the same backend behind every target)"
    notes_json="$(for k in "${!NOTES[@]}"; do printf '%s\0%s\0' "$k" "${NOTES[$k]}"; done \
        | python3 -c 'import json,sys; p=sys.stdin.read().split("\0")[:-1]; print(json.dumps(dict(zip(p[::2], p[1::2]))))')"
    $REPORT summarize --records "$WORK/records.jsonl" --idle "$WORK/idle.jsonl" \
        --json-out "$RESULTS_DIR/bench-$stamp.json" \
        --title "bench (router vs nginx vs haproxy, wrk HTTP/1.1 and h2load h2c)" \
        --date "$(date '+%Y-%m-%d %H:%M:%S %Z')" \
        --machine "$(machine_json "$REPO_DIR")" \
        --settings "{\"duration_s\": $DURATION, \"conns\": $CONNS, \"wrk_threads\": ${THREADS:-1}, \"h2_streams_per_conn\": ${H2_STREAMS:-10}, \"rounds\": $ROUNDS, \"fixed_rate_rps\": $RATE, \"proxy_threads\": $PROXY_THREADS, \"idle_conns\": $([[ $IDLE == 1 ]] && echo "$IDLE_CONNS" || echo 0), \"cluster\": \"$id\"}" \
        --notes "$notes_json" \
        --order "$(IFS=,; echo "${targets[*]},router-read@$RATE,nginx@$RATE,haproxy@$RATE")" \
        --ratios "router-read:nginx,router-read:haproxy,router-read:direct-sim,router-read@$RATE:nginx@$RATE,router-read@$RATE:haproxy@$RATE" \
        --rss --p999
}

main
