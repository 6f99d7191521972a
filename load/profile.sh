#!/usr/bin/env bash
# Profiles dc1's router under wrk load (issue 9): the topology of bench.sh (3 sims, 3 routers),
# one cluster, then wrk against the router's local read (or the forwarded write) while a
# profiler watches dc1's router.
#
# Usage: bash load/profile.sh [perf|perfstat|heaptrack|callgrind|strace|stat] [read|write]
#   perf       perf record -g (DWARF unwinding) on the running router for DURATION s; prints the
#              top of `perf report --no-children` and keeps perf.data in load/results/
#   heaptrack  runs the router under heaptrack; prints allocations per request
#   callgrind  runs dc1's router under callgrind; user-space instructions per request over
#              REQUESTS (5000) HTTP/1.1 requests from h2load (deterministic, whatever the load;
#              H2C=1: h2c, 10 streams per connection)
#   perfstat   perf stat of the router's system calls, context switches, page faults and
#              softirqs, per request (counts from the kernel's tracepoints: nothing slowed down)
#   strace     strace -c -f: system calls per request (slows the router down; counts only)
#   stat       no profiler: CPU ticks per 100k requests and the RSS, as bench.sh measures them
#   read: GET /v2/clusters/ID/status on dc1's router; write: POST .../pause on dc2's router,
#   forwarded to dc1's (the profiled router is dc1's, for a write the owner's side, unless
#   PROFILE_DC=2: dc2's, the forwarding side of a write); local-write: the same POST on dc1's
#   router, the owner (one hop: what a write costs before any forwarding)
#   env ROUTER_ENV="NAME=VALUE ..." for dc1's router only
#   env IDLE_CONNS=N: before the load, hold N idle keep-alive connections (load/idle_conns.py)
#       and report the router's RSS per idle connection
#   env ROUTER=path: profile that router binary (e.g. an older build, for A/B)
#   env TLS=1: TLS on the client ports (dev certificates), the load and the idle connections
#       over TLS (HTTP/1.1)
#   env H2C=1: the load over h2c (h2load, 10 streams per connection) instead of HTTP/1.1 (wrk)
#   env PEER=haproxy: profile HAProxy (load/haproxy.cfg, PROXY_THREADS threads) in front of
#       dc1's sim instead of dc1's router, under the same load (read only; not callgrind or
#       heaptrack): the same counts for the peer bench.sh compares against
#   env DURATION=10 CONNS=32 SKIP_BUILD=1 KEEP_WORK=1
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="${1:-stat}" WHAT="${2:-read}" DC="${PROFILE_DC:-1}"
DURATION="${DURATION:-10}" CONNS="${CONNS:-32}"

# What `perfstat` counts (kernel tracepoints and software events: no hardware counters needed).
PERFSTAT_EVENTS=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev
PERFSTAT_EVENTS+=,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl
PERFSTAT_EVENTS+=,syscalls:sys_enter_futex,syscalls:sys_enter_connect,syscalls:sys_enter_accept4
PERFSTAT_EVENTS+=,context-switches,page-faults
PERFSTAT_EVENTS+=,irq:softirq_entry

# load SECONDS: the profile's load on $url for SECONDS (wrk, or h2load with H2C=1; a POST
# sends "{}"), its report on stdout.
load() {
    if [[ "${H2C:-0}" == 1 ]]; then
        local data=()
        [[ $method == POST ]] && { printf '{}' >"$WORK/run/post-body"; data=(-d "$WORK/run/post-body"); }
        h2load -D "$1" -c "$CONNS" -m 10 -t 1 "${COOPR_HDRS[@]}" "${data[@]}" "$url"
    else
        WRK_METHOD="$method" WRK_BODY='{}' wrk -t1 -c"$CONNS" -d"$1s" --latency \
            -s "$LOAD_DIR/coopr.lua" "$url"
    fi
}

main() {
    ensure_tools wrk h2load curl ss
    setup_workdir
    build_binaries
    BASE="$(pick_base_port 0 1 2 3 100 101 102 103 200 201 202 203 "$OFF_HAPROXY" "$OFF_HAPROXY_H2")"
    local scheme=http idle_tls=()
    if [[ "${TLS:-0}" == 1 ]]; then
        # TLS on every router's client port (dev certificates for 127.0.0.1; peers stay plain).
        "$WORK/bin/coopr-router" certs dev --out "$WORK/certs" --dcs dc1 >/dev/null
        ROUTER_CONFIG_EXTRA="${ROUTER_CONFIG_EXTRA:-}\n[tls.client]\ncert_file = \"$WORK/certs/dc1/server.pem\"\nkey_file = \"$WORK/certs/dc1/server.key\""
        scheme=https CLIENT_SCHEME=https idle_tls=(--tls)
    fi
    local wrap=""
    [[ $MODE == heaptrack ]] && wrap="heaptrack -o $WORK/out/heaptrack"
    [[ $MODE == callgrind ]] && wrap="valgrind --tool=callgrind --callgrind-out-file=$WORK/out/callgrind.out"
    # ROUTER_ENV="NAME=VALUE ...": environment for dc1's router only (e.g. TOKIO_WORKER_THREADS=1).
    [[ -n "${ROUTER_ENV:-}" ]] && wrap="env $ROUTER_ENV $wrap"
    if [[ -n "$wrap" ]]; then
        # lib.sh starts routers with "$ROUTER_BIN run ..."; wrap dc1's in the profiler.
        cat >"$WORK/bin/router-wrapped" <<WRAP
#!/bin/sh
case "\$*" in *"run --config"*router-dc$DC.toml*) exec $wrap "$WORK/bin/coopr-router" "\$@";; esac
exec "$WORK/bin/coopr-router" "\$@"
WRAP
        chmod +x "$WORK/bin/router-wrapped"
        ROUTER_BIN="$WORK/bin/router-wrapped"
    fi
    start_topology
    local id url method=GET; id="$(create_cluster)"
    url="$scheme://127.0.0.1:$(client_port 1)/v2/clusters/$id/status"
    if [[ $WHAT == write ]]; then
        method=POST; url="$scheme://127.0.0.1:$(client_port 2)/v2/clusters/$id/pause"
    elif [[ $WHAT == local-write ]]; then
        method=POST; url="$scheme://127.0.0.1:$(client_port 1)/v2/clusters/$id/pause"
    fi
    # dc1's router process itself (under heaptrack it is a child of the wrapper).
    local router p
    for p in $(pgrep -f "router-dc$DC.toml"); do
        [[ "$(cat "/proc/$p/comm" 2>/dev/null)" =~ ^(coopr-router|callgrind) ]] && router="$p"
    done
    [[ -n "${router:-}" ]] || die "dc$DC's router process not found"
    if [[ "${PEER:-}" == haproxy ]]; then
        [[ $WHAT == read && $MODE != callgrind && $MODE != heaptrack ]] \
            || die "PEER=haproxy profiles a read, in modes perf, perfstat, strace and stat"
        ensure_tools haproxy
        start_haproxy
        router="${PIDS[haproxy]}"
        url="http://127.0.0.1:$((BASE + OFF_HAPROXY))/v2/clusters/$id/status"
        [[ "${H2C:-0}" == 1 ]] && url="http://127.0.0.1:$((BASE + OFF_HAPROXY_H2))/v2/clusters/$id/status"
        log "profiling HAProxy ($router), $url"
    fi
    load 1 >/dev/null
    if [[ -n "${IDLE_CONNS:-}" ]]; then
        # Memory per idle keep-alive connection: RSS before and while IDLE_CONNS are held.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        local before ready="$WORK/run/idle.ready"
        before="$(awk '/^VmRSS:/ {print $2}' "/proc/$router/status")"
        start idle python3 "$LOAD_DIR/idle_conns.py" --port "$(client_port 1)" --count "$IDLE_CONNS" \
            --path "/v2/clusters/$id/status" --hold 600 --ready-file "$ready" "${idle_tls[@]}"
        for p in $(seq 1200); do [[ -s "$ready" ]] && break; alive idle; sleep 0.1; done
        sleep 1
        local held; held="$(awk '/^VmRSS:/ {print $2}' "/proc/$router/status")"
        log "idle: $(cat "$ready"); router RSS $((before / 1024)) -> $((held / 1024)) MiB, $(awk "BEGIN {printf \"%.2f\", ($held - $before) / $IDLE_CONNS}") KiB per idle connection"
    fi
    if [[ $MODE == callgrind ]]; then
        # Instructions per request (user space only), over a fixed number of requests.
        local n="${REQUESTS:-5000}"
        callgrind_control -z "$router" >/dev/null
        local data=()
        [[ $method == POST ]] && { printf '{}' >"$WORK/run/post-body"; data=(-d "$WORK/run/post-body"); }
        # H2C=1: h2c with 10 streams per connection (as bench.sh's h2load rows), else HTTP/1.1.
        local proto=(--h1)
        [[ "${H2C:-0}" == 1 ]] && proto=(-m 10)
        h2load "${proto[@]}" -n "$n" -c "$CONNS" "${COOPR_HDRS[@]}" "${data[@]}" "$url" >"$WORK/out/h2load.txt"
        grep -E "^requests:" "$WORK/out/h2load.txt" >&2
        callgrind_control -d "$router" >/dev/null
        local dump; dump="$(ls -t "$WORK"/out/callgrind.out* | head -1)"
        local ir; ir="$(awk '/^summary:|^totals:/ {print $2; exit}' "$dump")"
        log "user-space instructions per request: $((ir / n)) ($ir over $n requests)"
        mkdir -p "$RESULTS_DIR"; cp "$dump" "$RESULTS_DIR/callgrind-$WHAT$([[ $DC == 1 ]] || echo "-dc$DC")$([[ "${H2C:-0}" == 1 ]] && echo "-h2c").out"
        return 0
    fi
    local t0 t1 rss reqs out="$WORK/out/wrk.txt"
    t0="$(cpu_ticks "$router")"
    if [[ $MODE == strace ]]; then
        strace -c -f -p "$router" -o "$WORK/out/strace.txt" &
        local strace_pid=$!
        sleep 0.5
    fi
    if [[ $MODE == perfstat ]]; then
        perf stat -e "$PERFSTAT_EVENTS" -p "$router" -o "$WORK/out/perfstat.txt" \
            -- sleep "$((DURATION + 1))" 2>"$WORK/logs/perf.log" &
        local perf_pid=$!
        sleep 0.3
    fi
    if [[ $MODE == perf ]]; then
        perf record -F 499 -g --call-graph dwarf,16384 -p "$router" -o "$WORK/out/perf.data" \
            -- sleep "$DURATION" 2>"$WORK/logs/perf.log" &
        local perf_pid=$!
    fi
    load "$DURATION" >"$out"
    t1="$(cpu_ticks "$router")"
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$router/status")"
    reqs="$(awk '/requests in/ {print $1} /^requests:/ {print $8}' "$out")"
    log "load: $(grep -E 'Requests/sec|^finished in' "$out")"
    log "${PEER:-router} CPU s/100k req: $(awk "BEGIN {printf \"%.2f\", ($t1 - $t0) / $CLK_TCK / $reqs * 100000}"); RSS $((rss / 1024)) MiB"
    case "$MODE" in
        perfstat)
            wait "$perf_pid" || true
            log "per request ($reqs requests; the counts span the load and ~1 s around it, when the process is idle):"
            awk -v n="$reqs" '/^ *[0-9,.]+ +[a-z]/ && $2 != "seconds" {gsub(",", "", $1); printf "  %-36s %8.3f\n", $2, $1 / n}' \
                "$WORK/out/perfstat.txt"
            ;;
        strace)
            kill -INT "$strace_pid"; wait "$strace_pid" || true
            log "syscalls of dc1's router for $reqs requests:"
            cat "$WORK/out/strace.txt"
            ;;
        perf)
            wait "$perf_pid" || true
            mkdir -p "$RESULTS_DIR"
            cp "$WORK/out/perf.data" "$RESULTS_DIR/perf-$WHAT.data"
            perf report -i "$RESULTS_DIR/perf-$WHAT.data" --no-children --percent-limit 0.7 \
                --stdio -g none --sort dso,symbol 2>/dev/null | grep -v -e '^$' -e '^#' \
                | cut -c1-160 | sed 's/ *$//' | head -60
            ;;
        heaptrack)
            # The router writes its heaptrack data as it exits; heaptrack (its parent) then ends.
            kill -TERM "$router"
            stop "router-dc$DC"
            local file; file="$(ls "$WORK"/out/heaptrack* | head -1)"
            heaptrack_print "$file" >"$WORK/out/heaptrack.txt" 2>/dev/null || true
            heaptrack_print "$file" --flamegraph-cost-type allocations -F "$WORK/out/stacks.txt" >/dev/null 2>&1 || true
            heaptrack_print "$file" --flamegraph-cost-type peak -F "$WORK/out/peak.txt" >/dev/null 2>&1 || true
            mkdir -p "$RESULTS_DIR"; cp "$WORK/out/stacks.txt" "$RESULTS_DIR/heaptrack-$WHAT.stacks"
            cp "$WORK/out/peak.txt" "$RESULTS_DIR/heaptrack-$WHAT.peak"; cp "$file" "$RESULTS_DIR/"
            log "allocations: $(grep -E '^total (memory leaked|calls to allocation)|^calls to allocation' "$WORK/out/heaptrack.txt" | tr '\n' ' ')"
            mkdir -p "$RESULTS_DIR"; cp "$WORK/out/heaptrack.txt" "$RESULTS_DIR/heaptrack-$WHAT.txt"
            log "report: $RESULTS_DIR/heaptrack-$WHAT.txt (requests measured: $reqs, plus warm-up)"
            ;;
    esac
}

main
