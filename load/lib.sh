# Shared functions for load/bench-demo.sh and load/bench.sh. Source it; do not run it.
#
# It keeps every process it starts in PIDS (name -> pid) and stops exactly those on exit
# (trap installed by `setup_workdir`), so a failed run leaves nothing behind.

LOAD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LOAD_DIR/.." && pwd)"
RESULTS_DIR="$LOAD_DIR/results"
REPORT="python3 $LOAD_DIR/report.py"

declare -A PIDS=()          # name -> pid of every process this script started
WORK=""                     # temp dir: configs, logs, pid files, binaries, raw outputs
CLK_TCK="$(getconf CLK_TCK)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Set-up and clean-up

setup_workdir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/coopr-load.XXXXXX")"
    mkdir -p "$WORK/bin" "$WORK/logs" "$WORK/run" "$WORK/out"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    log "work dir $WORK (logs under $WORK/logs; removed on exit unless KEEP_WORK=1)"
}

# Stop every process we started: SIGTERM, up to 5 s grace, then SIGKILL. By pid only.
cleanup() {
    local rc=$? name pid i
    for name in "${!PIDS[@]}"; do
        pid="${PIDS[$name]}"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        pid="${PIDS[$name]}"
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) did not stop on SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 && -n "$WORK" ]]; then
        log "failed (exit $rc); last log lines:"
        tail -n 5 "$WORK"/logs/*.log >&2 2>/dev/null || true
    fi
    if [[ -n "$WORK" && "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$WORK"; fi
    exit $rc
}

# Install the load tools with apt when one is missing (only possible as root).
ensure_tools() {
    local -A pkg_of=([wrk]=wrk [h2load]=nghttp2-client [nginx]=nginx [haproxy]=haproxy
                     [curl]=curl [ss]=iproute2)
    local missing=() bin
    for bin in "$@"; do
        command -v "$bin" >/dev/null 2>&1 || [[ -x "/usr/sbin/$bin" ]] || missing+=("${pkg_of[$bin]:-$bin}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing tools (${missing[*]}); install them: apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; } \
        || die "apt-get install ${missing[*]} failed"
}

# Build the release binaries (unless SKIP_BUILD=1) and copy them into the work dir, so that a
# concurrent rebuild of the shared target dir cannot swap a binary in the middle of a run.
build_binaries() {
    local target
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release"
        (cd "$REPO_DIR" && cargo build --release --bins) >"$WORK/logs/build.log" 2>&1 \
            || { tail -n 30 "$WORK/logs/build.log" >&2
                 die "cargo build --release failed (the tree may be mid-edit); SKIP_BUILD=1 uses the binaries already in target/release"; }
    fi
    target="$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    cp "$target/release/coopr-router" "$target/release/coopr-sim" "$WORK/bin/" \
        || die "no release binaries under $target/release"
    BINARY_INFO="$(date -r "$target/release/coopr-router" '+%Y-%m-%d %H:%M:%S')$([[ "${SKIP_BUILD:-0}" == 1 ]] && echo ' (SKIP_BUILD=1)' || true)"
    # ROUTER=path: that router binary instead (e.g. a copy of an older build, for A/B).
    if [[ -n "${ROUTER:-}" ]]; then
        cp "$ROUTER" "$WORK/bin/coopr-router" || die "cannot copy ROUTER=$ROUTER"
        BINARY_INFO="$ROUTER ($(date -r "$ROUTER" '+%Y-%m-%d %H:%M:%S'))"
    fi
    ROUTER_BIN="$WORK/bin/coopr-router"
    SIM_BIN="$WORK/bin/coopr-sim"
}

# ---------------------------------------------------------------------------------------------
# Ports

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# Pick a base port P such that every port in "P+offset" for the given offsets is free.
# Starts at BASE_PORT (default 17000) and moves up by 1000 on a clash.
pick_base_port() {
    local base="${BASE_PORT:-17000}" tries off ok
    for tries in $(seq 20); do
        ok=1
        for off in "$@"; do port_free $((base + off)) || { ok=0; break; }; done
        if [[ $ok == 1 ]]; then echo "$base"; return 0; fi
        [[ -n "${BASE_PORT:-}" && "${BASE_PORT_STRICT:-0}" == 1 ]] && break
        base=$((base + 1000))
    done
    die "no free base port found (last tried $base)"
}

# ---------------------------------------------------------------------------------------------
# Processes

# start NAME CMD...: run CMD in the background, output to $WORK/logs/NAME.log, pid in PIDS.
start() {
    local name="$1"; shift
    "$@" >"$WORK/logs/$name.log" 2>&1 &
    PIDS[$name]=$!
    echo "$!" >"$WORK/run/$name.pid"
}

# stop NAME: SIGTERM one process we started and wait for it.
stop() {
    local name="$1" pid="${PIDS[$1]:-}" i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

alive() { kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 exited; see $WORK/logs/$1.log: $(tail -n 3 "$WORK/logs/$1.log")"; }

# wait_http NAME URL [CODE] [SECONDS]: poll until URL answers CODE (default 200).
wait_http() {
    local name="$1" url="$2" want="${3:-200}" secs="${4:-20}" i code
    for i in $(seq $((secs * 10))); do
        alive "$name"
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
        [[ "$code" == "$want" ]] && return 0
        sleep 0.1
    done
    die "$url did not answer $want within ${secs}s (last $code)"
}

# A pid and its children (nginx master + workers); one level is enough for our peers.
pid_tree() {
    local pid="$1" t
    echo "$pid"
    for t in /proc/"$pid"/task/*/children; do cat "$t" 2>/dev/null; done | tr ' ' '\n' | grep . || true
}

# cpu_ticks PID...: utime+stime (clock ticks) summed over the pids and their children.
cpu_ticks() {
    local total=0 pid p stat rest
    for pid in "$@"; do
        for p in $(pid_tree "$pid"); do
            stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
            rest="${stat##*) }"                 # fields from 3 (state) on; comm may hold spaces
            read -r -a f <<<"$rest"
            total=$((total + f[11] + f[12]))    # fields 14 (utime) and 15 (stime)
        done
    done
    echo "$total"
}

# sys_ticks PID...: stime alone (clock ticks), summed as cpu_ticks sums: the kernel's share.
sys_ticks() {
    local total=0 pid p stat rest
    for pid in "$@"; do
        for p in $(pid_tree "$pid"); do
            stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
            rest="${stat##*) }"
            read -r -a f <<<"$rest"
            total=$((total + f[12]))            # field 15 (stime)
        done
    done
    echo "$total"
}

# reset_hwm PID...: reset the peak RSS (VmHWM) of the pids and their children to their current
# RSS (Linux >= 4.0, `echo 5 > /proc/PID/clear_refs`), so that a run's peak is its own and not
# that of an earlier run. Best effort: without permission the peak stays cumulative.
reset_hwm() {
    local pid p
    for pid in "$@"; do
        for p in $(pid_tree "$pid"); do echo 5 2>/dev/null >"/proc/$p/clear_refs" || true; done
    done
}

# rss_hwm_kb PID...: peak resident set (VmHWM) summed over the pids and their children.
rss_hwm_kb() {
    local total=0 pid p kb
    for pid in "$@"; do
        for p in $(pid_tree "$pid"); do
            kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
            total=$((total + ${kb:-0}))
        done
    done
    echo "$total"
}

# ---------------------------------------------------------------------------------------------
# The Coopr topology: three sims and three routers, DC i on ports P+100*(i-1)+{0 client,
# 1 peer, 2 admin, 3 sim} (the layout of `coopr-router demo --base-port P`).

COOPR_HDRS=(-H 'Coopr-UserID: admin' -H 'Coopr-TenantID: superadmin')

client_port() { echo $((BASE + 100 * ($1 - 1))); }
peer_port()   { echo $((BASE + 100 * ($1 - 1) + 1)); }
admin_port()  { echo $((BASE + 100 * ($1 - 1) + 2)); }
sim_port()    { echo $((BASE + 100 * ($1 - 1) + 3)); }

write_router_config() {
    local i="$1" j file="$WORK/run/router-dc$1.toml"
    {
        echo "dc = \"dc$i\""
        echo "shard_count = 12"
        echo "[listen]"
        echo "client = \"127.0.0.1:$(client_port "$i")\""
        echo "peer = \"127.0.0.1:$(peer_port "$i")\""
        echo "admin = \"127.0.0.1:$(admin_port "$i")\""
        # listen.threads (default: one per CPU, as PROXY_THREADS); unset for builds without it.
        [[ -n "${ROUTER_THREADS:-}" ]] && echo "threads = $ROUTER_THREADS"
        echo "[[backends]]"
        echo "url = \"http://127.0.0.1:$(sim_port "$i")\""
        for j in 1 2 3; do
            echo "[dcs.dc$j]"
            echo "peer_url = \"http://127.0.0.1:$(peer_port "$j")\""
            echo "id_start = $j"
            echo "id_increment = 3"
        done
        echo "[log]"
        echo "access_log = false"
        # More TOML for every router, e.g. ROUTER_CONFIG_EXTRA='[timeouts]\nidle_park_ms = 0'.
        [[ -n ${ROUTER_CONFIG_EXTRA:-} ]] && printf '%b\n' "$ROUTER_CONFIG_EXTRA"
    } >"$file"
    "$ROUTER_BIN" check-config "$file" >/dev/null || die "router config $file refused"
    echo "$file"
}

# Start sims and routers for dc1..dc3 and wait until every router is ready.
start_topology() {
    local i cfg
    for i in 1 2 3; do
        start "sim-dc$i" env RUST_LOG="${SIM_LOG:-warn}" "$SIM_BIN" --listen "127.0.0.1:$(sim_port "$i")" \
            --id-start "$i" --id-increment 3 --op-delay-ms "${OP_DELAY_MS:-200}" --name "dc$i"
    done
    for i in 1 2 3; do
        cfg="$(write_router_config "$i")"
        # ROUTERS_ENV="NAME=VALUE ...": more environment for every router (e.g.
        # TOKIO_WORKER_THREADS=1); split on spaces on purpose.
        # shellcheck disable=SC2086
        start "router-dc$i" env RUST_LOG="${ROUTER_LOG:-warn}" ${ROUTERS_ENV:-} "$ROUTER_BIN" run --config "$cfg"
    done
    for i in 1 2 3; do wait_http "router-dc$i" "http://127.0.0.1:$(admin_port "$i")/ready"; done
    log "3 sims + 3 routers ready (dc1 client :$(client_port 1), dc2 client :$(client_port 2), dc1 sim :$(sim_port 1))"
}

# Create one cluster in dc1 through dc1's router and wait until it is active; prints its id.
create_cluster() {
    local body id status i
    # CLIENT_SCHEME=https: the client ports speak TLS (profile.sh TLS=1; dev certificates).
    local scheme="${CLIENT_SCHEME:-http}"
    body="$(curl -skf -X POST "${COOPR_HDRS[@]}" -H 'Content-Type: application/json' \
        -d '{"name":"bench","clusterTemplate":"demo","numMachines":1}' \
        "$scheme://127.0.0.1:$(client_port 1)/v2/clusters")" || die "create cluster failed"
    id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$body")"
    for i in $(seq 100); do
        status="$(curl -skf "${COOPR_HDRS[@]}" "$scheme://127.0.0.1:$(client_port 1)/v2/clusters/$id/status" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' || true)"
        [[ "$status" == active ]] && { log "cluster $id is active"; echo "$id"; return 0; }
        sleep 0.1
    done
    die "cluster $id not active after 10 s (status $status)"
}

# expect_route URL METHOD ROUTE: one request must return 200 and x-coopr-router-route: ROUTE.
expect_route() {
    local url="$1" method="$2" want="$3" head code route
    head="$(curl -s -o /dev/null -D - -X "$method" "${COOPR_HDRS[@]}" "$url")"
    code="$(awk 'NR==1 {print $2}' <<<"$head")"
    route="$(tr -d '\r' <<<"$head" | awk -F': ' 'tolower($1)=="x-coopr-router-route" {print $2}')"
    [[ "$code" == 200 && "$route" == "$want" ]] \
        || die "$method $url: got $code route '$route', want 200 route '$want'"
    log "check: $method $url -> 200, x-coopr-router-route: $route"
}

# ---------------------------------------------------------------------------------------------
# HAProxy, the peer of bench.sh and of `profile.sh` with PEER=haproxy: load/haproxy.cfg with
# PROXY_THREADS threads (default: one per core), in front of dc1's sim.

OFF_HAPROXY=310 OFF_HAPROXY_H2=311

# Fill a config template: every @NAME@ from the named shell variables.
render() {
    local src="$1" dst="$2"; shift 2
    local args=() v
    for v in "$@"; do args+=(-e "s|@$v@|${!v}|g"); done
    sed "${args[@]}" "$src" >"$dst"
    ! grep -v '^[[:space:]]*#' "$dst" | grep '@[A-Z_]*@' || die "unfilled placeholder in $dst"
}

start_haproxy() {
    local HAPROXY_PORT=$((BASE + OFF_HAPROXY)) HAPROXY_H2_PORT=$((BASE + OFF_HAPROXY_H2))
    local SIM_PORT; SIM_PORT="$(sim_port 1)"
    local THREADS="${PROXY_THREADS:-$(nproc)}" HAPROXY_MAXCONN=$((${IDLE_CONNS:-0} + 1000))
    render "$LOAD_DIR/haproxy.cfg" "$WORK/run/haproxy.cfg" THREADS HAPROXY_MAXCONN SIM_PORT HAPROXY_PORT HAPROXY_H2_PORT
    haproxy -c -q -f "$WORK/run/haproxy.cfg" >"$WORK/logs/haproxy-check.log" 2>&1 \
        || { cat "$WORK/logs/haproxy-check.log" >&2; die "haproxy -c failed"; }
    start haproxy haproxy -db -f "$WORK/run/haproxy.cfg" -p "$WORK/run/haproxy.pid"
    wait_http haproxy "http://127.0.0.1:$HAPROXY_PORT/status"
}

# ---------------------------------------------------------------------------------------------
# Measurement

# System-wide CPU ticks spent in processes (all cores) from /proc/stat: user+nice+system
# (irq/softirq/steal are left out: tasks are not charged for them either).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4; exit}' /proc/stat; }

# The benchmark shares the machine: other sessions' builds and tests steal the 2 cores. Before a
# run, wait (up to QUIET_WAIT s, default 60) until the machine outside our own processes is
# quiet: under QUIET_CORES (default 0.3) cores busy over a 1 s sample. Our processes are idle
# between runs, so system-wide busy time is other work.
wait_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-60})) b0 b1 cores said=0
    while :; do
        b0="$(busy_ticks)"; sleep 1; b1="$(busy_ticks)"
        cores="$(awk "BEGIN {printf \"%.2f\", ($b1 - $b0) / $CLK_TCK}")"
        if awk "BEGIN {exit !($cores < ${QUIET_CORES:-0.3})}"; then return 0; fi
        if (( SECONDS >= deadline )); then
            log "machine still busy ($cores cores used by other processes); measuring anyway (flagged in the record)"
            return 0
        fi
        [[ $said == 1 ]] || log "machine busy ($cores cores used by other processes); waiting up to ${QUIET_WAIT:-60}s"
        said=1
    done
}

# measure TARGET TOOL ROUND "PROXY_PIDS" "SIM_PIDS" OUT -- CMD...: run one bounded load
# command with its output in OUT, snapshot CPU ticks of the proxy and sim processes around it,
# and append one JSON record (parsed by report.py) to $WORK/records.jsonl. Extra arguments for
# `report.py record` can be put in the array RECORD_ARGS.
# Also recorded: "other" CPU = system-wide busy time minus every process we started and minus
# the load tool itself (its cutime via a wrapper shell): other sessions' work during the run.
measure() {
    local target="$1" tool="$2" round="$3" proxy_pids="$4" sim_pids="$5" out="$6"; shift 7
    local p0=0 p1=0 ps0=0 ps1=0 s0 s1 rss=0 t0 t1 has_proxy=0 all0 all1 b0 b1 tool_ticks
    wait_quiet
    [[ -n "$proxy_pids" ]] && { has_proxy=1; reset_hwm $proxy_pids; p0="$(cpu_ticks $proxy_pids)"; ps0="$(sys_ticks $proxy_pids)"; }
    s0="$(cpu_ticks $sim_pids)"
    all0="$(cpu_ticks "${PIDS[@]}")"; b0="$(busy_ticks)"
    t0="$(date +%s.%N)"
    # The wrapper shell waits for the tool, so its cutime+cstime (fields 16, 17) are the tool's.
    sh -c '"$@"; rc=$?; cat /proc/$$/stat >"$0"; exit $rc' "$out.stat" "$@" >"$out" 2>&1 \
        || { tail -n 20 "$out" >&2; die "$tool against $target failed"; }
    t1="$(date +%s.%N)"
    b1="$(busy_ticks)"; all1="$(cpu_ticks "${PIDS[@]}")"
    [[ $has_proxy == 1 ]] && { p1="$(cpu_ticks $proxy_pids)"; ps1="$(sys_ticks $proxy_pids)"; rss="$(rss_hwm_kb $proxy_pids)"; }
    s1="$(cpu_ticks $sim_pids)"
    tool_ticks="$(sed 's/.*) //' "$out.stat" | awk '{print $14 + $15}')"
    $REPORT record --out "$WORK/records.jsonl" --target "$target" --tool "$tool" --round "$round" \
        --raw "$out" --has-proxy "$has_proxy" --proxy-ticks $((p1 - p0)) --proxy-sys-ticks $((ps1 - ps0)) \
        --sim-ticks $((s1 - s0)) \
        --clk-tck "$CLK_TCK" --proxy-rss-kb "$rss" --wall "$(awk "BEGIN {print $t1 - $t0}")" \
        --tool-ticks "$tool_ticks" --other-ticks $(( (b1 - b0) - (all1 - all0) - tool_ticks )) \
        "${RECORD_ARGS[@]}"
}
RECORD_ARGS=()
H2LOAD_EXTRA=()

# run_wrk TARGET ROUND "PROXY_PIDS" "SIM_PIDS" URL [METHOD]: HTTP/1.1 load with wrk for
# DURATION seconds over CONNS connections (THREADS threads, default 1).
run_wrk() {
    local target="$1" round="$2" proxy_pids="$3" sim_pids="$4" url="$5" method="${6:-GET}"
    RECORD_ARGS=(--url "$url" --method "$method")
    measure "$target" wrk "$round" "$proxy_pids" "$sim_pids" "$WORK/out/$target.wrk.$round.txt" -- \
        env WRK_METHOD="$method" WRK_BODY="$([[ $method == POST ]] && echo '{}' || true)" timeout $((DURATION + 30)) \
        wrk -t"${THREADS:-1}" -c"$CONNS" -d"${DURATION}s" --latency -s "$LOAD_DIR/coopr.lua" "$url"
}

# run_h2load TARGET ROUND "PROXY_PIDS" "SIM_PIDS" URL [METHOD]: HTTP/2 (h2c, prior knowledge)
# load with h2load for DURATION seconds, CONNS connections, H2_STREAMS (default 10) streams
# each. Latency percentiles come from h2load's per-request log. Extra h2load arguments (e.g.
# `--h1 --rps=N`) can be put in the array H2LOAD_EXTRA.
run_h2load() {
    local target="$1" round="$2" proxy_pids="$3" sim_pids="$4" url="$5" method="${6:-GET}"
    local hlog="$WORK/out/$target.h2load.$round.log" data=()
    # h2load -d (a POST) cannot send an empty file; both tools send the same "{}" body.
    [[ "$method" == POST ]] && { printf '{}' >"$WORK/run/post-body"; data=(-d "$WORK/run/post-body"); }
    RECORD_ARGS=(--url "$url" --method "$method" --h2-log "$hlog")
    measure "$target" h2load "$round" "$proxy_pids" "$sim_pids" "$WORK/out/$target.h2load.$round.txt" -- \
        timeout $((DURATION + 30)) h2load -D "$DURATION" -c "$CONNS" -m "${H2_STREAMS:-10}" -t 1 \
        "${H2LOAD_EXTRA[@]}" "${COOPR_HDRS[@]}" "${data[@]}" --log-file="$hlog" "$url"
}

machine_json() {
    BINARY_INFO="${BINARY_INFO:-}" python3 - "$@" <<'EOF'
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
print(json.dumps({
    "nproc": os.cpu_count(),
    "kernel": platform.release(),
    "cpu": sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo"),
    "git": sh("git -C %s rev-parse --short HEAD" % sys.argv[1]) + (" (dirty)" if sh("git -C %s status --porcelain --untracked-files=no" % sys.argv[1]) else ""),
    "router_binary_built": os.environ.get("BINARY_INFO", ""),
    "wrk": sh("wrk -v 2>&1 | head -1"),
    "h2load": sh("h2load --version"),
    "nginx": sh("nginx -v 2>&1"),
    "haproxy": sh("haproxy -v | head -1"),
}))
EOF
}
