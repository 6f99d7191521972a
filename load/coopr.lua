-- wrk script for coopr-router benchmarks.
-- Adds the two Coopr headers every /v2 request needs, takes the method from the
-- WRK_METHOD environment variable (default GET), asks for a new connection per request with
-- WRK_CLOSE=1 (Connection: close), and prints one machine-readable
-- line at the end:  WRKJSON {"requests":...,"p50_us":...}
-- Usage: WRK_METHOD=POST wrk -s load/coopr.lua --latency http://127.0.0.1:7000/v2/...

wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.headers["Coopr-UserID"] = "admin"
wrk.headers["Coopr-TenantID"] = "superadmin"
if os.getenv("WRK_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
local body = os.getenv("WRK_BODY") or ""
if (wrk.method == "POST" or wrk.method == "PUT") and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
