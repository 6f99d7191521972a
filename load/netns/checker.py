#!/usr/bin/env python3
"""The checker: reads the clients' records (client*.jsonl), every simulator's log
(sim{k}.log.json, `GET /sim/log`) and the ownership map with its history (ownership.json, from
etcd) in a run directory, prints the figures and fails (exit 1) when

  lost        a write acknowledged (2xx) to a client is not in the log of the DC that answered
              it, at the epoch the answer named;
  split_brain a simulator applied a write at an epoch at which its DC did not own the shard;
  duplicate   a request id was applied more than once (in all logs together);
  backwards   a DC's replica read showed an older config of a cluster than a replica read of
              the same DC that had completed before it started;
  stale_age   a replica read showed a state older than its `Age` header says: a write newer
              than what it showed had been acknowledged before (send time - Age - 1.5 s).
  held_twice  a write held across an unplanned failover (answered with
              `x-coopr-router-held-ms`) was applied other than exactly once, by the DC that
              answered it (2xx), or more than once (an error answer).

Pure functions over plain data, so tests/test_checker.py can feed crafted inputs.
"""
import glob
import heapq
import json
import os
import sys
from collections import Counter, defaultdict

SHARDS = 12
AGE_SLACK = 1.5  # Age is whole seconds (floor) + clock reading jitter
# The client's own router is not there (killed): not a shard's unavailability.
ROUTER_GONE = {"ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected"}


def owner_epochs(ownership):
    """{shard: {epoch: owner}} from the shard keys and the history records (a move's epoch is
    the revision of its transaction, which is its history record's create_revision)."""
    out = defaultdict(dict)
    hist = defaultdict(list)
    for h in ownership["history"]:
        v = h["value"]
        if v.get("shard") is not None:
            hist[v["shard"]].append((v["prev_epoch"], v["from"], h["create_revision"], v["to"]))
    for s in ownership["shards"]:
        n = int(s["key"].rsplit("/", 1)[1])
        moves = sorted(hist.get(n, []))
        if moves:
            out[n][moves[0][0]] = moves[0][1]
            for _, _, epoch, to in moves:
                out[n][epoch] = to
        else:
            out[n][s["mod_revision"]] = s["value"]["owner"]
    return out


def applied(logs):
    """[(dc, entry)] of the writes every sim accepted (status < 300)."""
    return [(dc, e) for dc, log in logs.items() for e in log if e.get("status", 0) < 300]


def check(records, logs, ownership):
    """Returns (violations: [(kind, detail)], figures: dict)."""
    bad = []
    owners = owner_epochs(ownership)
    where = defaultdict(list)  # rid -> [(dc, epoch)]
    for dc, e in applied(logs):
        if e.get("request_id"):
            where[e["request_id"]].append((dc, e.get("epoch")))
        if e.get("epoch") is not None and e.get("cluster_id"):
            shard = int(e["cluster_id"]) % SHARDS
            owner = owners.get(shard, {}).get(int(e["epoch"]))
            if owner != dc:
                bad.append(("split_brain", f"{dc} applied {e.get('request_id')} on shard {shard}"
                            f" at epoch {e['epoch']} owned by {owner}"))
    for rid, at in where.items():
        if len(at) > 1:
            bad.append(("duplicate", f"{rid} applied {len(at)} times: {at}"))
    acked = [r for r in records if r["method"] != "GET" and 200 <= r["status"] < 300]
    for r in acked:
        dc = r.get("h", {}).get("x-coopr-router-dc")
        epoch = r.get("h", {}).get("x-coopr-router-epoch")
        at = where.get(r["rid"], [])
        if not any(d == dc and (epoch is None or e is None or e == epoch) for d, e in at):
            bad.append(("lost", f"{r['rid']} acknowledged by {dc} at epoch {epoch}, applied {at}"))
    bad += held_violations(records, where)
    bad += replica_violations(records)
    figs = figures(records)
    figs["held_writes"] = sum(1 for r in records if "x-coopr-router-held-ms" in r.get("h", {}))
    # Not a violation (the client was told it failed), but worth knowing: failed writes that
    # were applied all the same (a 502/504 after the request had reached the owner).
    figs["failed_but_applied"] = sum(
        1 for r in records if r["method"] != "GET" and not 200 <= r["status"] < 300
        and r["rid"] in where)
    return bad, figs


def held_violations(records, where):
    """A held write was sent once, to the new owner, only after the old one provably never got
    it: it must be applied exactly once, by the DC that answered (or at most once, on an error
    answer)."""
    bad = []
    for r in records:
        h = r.get("h", {})
        if "x-coopr-router-held-ms" not in h:
            continue
        at = where.get(r["rid"], [])
        ok = 200 <= r["status"] < 300
        dc = h.get("x-coopr-router-dc")
        if (ok and [d for d, _ in at] != [dc]) or len(at) > 1:
            bad.append(("held_twice", f"{r['rid']} held {h['x-coopr-router-held-ms']} ms, answered"
                        f" {r['status']} by {dc}, applied {at}"))
    return bad


def replica_violations(records):
    bad = []
    reads = defaultdict(list)
    for r in records:
        if r["kind"] == "read" and r.get("h", {}).get("x-coopr-router-route") == "replica" \
                and r.get("seen") is not None:
            reads[(r["dc"], r["cluster"])].append(r)
    acks = defaultdict(list)  # cluster -> [(t1, seq)]
    for r in records:
        if r["kind"] == "config" and 200 <= r["status"] < 300:
            acks[r["cluster"]].append((r["t1"], r["seq"]))
    for (dc, cluster), rs in reads.items():
        rs.sort(key=lambda r: r["t0"])
        done = []  # heap of (t1, seen) of reads started earlier
        best = None
        for r in rs:
            while done and done[0][0] < r["t0"]:
                _, seen, rid = heapq.heappop(done)
                if best is None or seen > best[0]:
                    best = (seen, rid)
            if best and r["seen"] < best[0]:
                bad.append(("backwards", f"{dc} read {cluster} seq {r['seen']} ({r['rid']}) after"
                            f" seq {best[0]} ({best[1]})"))
            heapq.heappush(done, (r["t1"], r["seen"], r["rid"]))
            age = r["h"].get("age")
            if age is not None:
                captured_by = r["t0"] - float(age) - AGE_SLACK
                newer = [s for t, s in acks[cluster] if s > r["seen"] and t < captured_by]
                if newer:
                    bad.append(("stale_age", f"{dc} read {cluster} seq {r['seen']} with Age {age}"
                                f" ({r['rid']}) but seq {max(newer)} was acknowledged before"))
    return bad


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def figures(records):
    errors = Counter()
    for r in records:
        if not 200 <= r["status"] < 300:
            kind = r.get("h", {}).get("x-coopr-router-error") or r.get("err") or ""
            errors[f"{r['kind']} {r['status']} {kind}".strip()] += 1
    windows = unavailability(records)
    ages = [float(r["h"]["age"]) for r in records
            if r["kind"] == "read" and "age" in r.get("h", {})]
    lags = visible_lags(records)
    return {"requests": len(records), "by_kind": dict(Counter(r["kind"] for r in records)),
            "ok": sum(1 for r in records if 200 <= r["status"] < 300),
            "errors": dict(errors.most_common()), "unavailable_per_shard": windows,
            "replica_reads": len(ages), "age_p99_s": pct(ages, 99),
            "replication_lag_p50_ms": pct(lags, 50), "replication_lag_p99_ms": pct(lags, 99),
            "lag_samples": len(lags)}


def unavailability(records):
    """{shard: per client DC, the longest time its writes failed}: from the first failed write
    after a success to the next success. A
    connection refused by the client's own router (its DC is down: a load balancer would send
    the client elsewhere) is not counted here, only in the errors."""
    by = defaultdict(list)
    for r in records:
        if r["kind"] == "write" and r.get("err") not in ROUTER_GONE:
            by[(r["shard"], r["dc"])].append(r)
    worst = defaultdict(dict)  # shard -> {dc: "N ms"}
    for (shard, dc), rs in sorted(by.items()):
        rs.sort(key=lambda r: r["t0"])
        w, start = 0.0, None
        for r in rs:
            ok = 200 <= r["status"] < 300
            if not ok and start is None:
                start = r["t0"]
            elif ok and start is not None:
                w, start = max(w, r["t1"] - start), None
        if start is not None:
            worst[shard][dc] = f"{max(w, rs[-1]['t1'] - start) * 1000:.0f} ms (not recovered)"
        elif w:
            worst[shard][dc] = f"{w * 1000:.0f} ms"
    return {s: ", ".join(f"{dc} {v}" for dc, v in worst[s].items()) for s in sorted(worst)}


def visible_lags(records):
    """For each acknowledged config write and each other DC reading that cluster from its
    replica: from the acknowledgement to the first replica read (sent after it) showing it.
    An upper bound: reads are sampled."""
    reads = defaultdict(list)
    for r in records:
        if r["kind"] == "read" and r.get("h", {}).get("x-coopr-router-route") == "replica" \
                and r.get("seen") is not None:
            reads[(r["dc"], r["cluster"])].append(r)
    for rs in reads.values():
        rs.sort(key=lambda r: r["t0"])
    lags = []
    for w in records:
        if w["kind"] != "config" or not 200 <= w["status"] < 300:
            continue
        for (dc, cluster), rs in reads.items():
            if cluster != w["cluster"] or dc == w["dc"]:
                continue
            first = next((r for r in rs if r["t0"] >= w["t1"] and r["seen"] >= w["seq"]), None)
            if first:
                lags.append((first["t1"] - w["t1"]) * 1000)
    return lags


def load(run):
    records = []
    for f in sorted(glob.glob(os.path.join(run, "client*.jsonl"))):
        with open(f) as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    logs = {}
    for f in glob.glob(os.path.join(run, "sim*.log.json")):
        k = os.path.basename(f)[3:-9]
        with open(f) as fh:
            logs[f"dc{k}"] = json.load(fh)
    with open(os.path.join(run, "ownership.json")) as fh:
        ownership = json.load(fh)
    return records, logs, ownership


def mutations_caught(records, logs, ownership):
    """Proves the checker bites on this run's real data: removes an acknowledged write from its
    log, applies one twice, and moves one to a DC that did not own its shard then; returns
    how many of the three the checker reports (3 expected)."""
    acked = [r for r in records if r["kind"] == "write" and 200 <= r["status"] < 300]
    if not acked:
        return None
    rid = acked[len(acked) // 2]["rid"]
    dc = next(d for d, log in logs.items() if any(e.get("request_id") == rid for e in log))
    e = next(e for e in logs[dc] if e.get("request_id") == rid)
    other = next(d for d in sorted(logs) if d != dc)
    cases = [("lost", dict(logs, **{dc: [x for x in logs[dc] if x is not e]})),
             ("duplicate", dict(logs, **{dc: logs[dc] + [e]})),
             ("split_brain", dict(logs, **{other: logs[other] + [dict(e, request_id="mut")]}))]
    return sum(1 for kind, l in cases
               if kind in {k for k, _ in check(records, l, ownership)[0]})


def report(run):
    data = load(run)
    bad, figs = check(*data)
    figs["checker_mutations_caught"] = f"{mutations_caught(*data)}/3"
    kinds = Counter(k for k, _ in bad)
    for k, detail in bad[:20]:
        print(f"  VIOLATION {k}: {detail}")
    figs["verdict"] = "PASS" if not bad else f"FAIL {dict(kinds)}"
    return figs


if __name__ == "__main__":
    figs = report(sys.argv[1])
    print(json.dumps(figs, indent=1))
    sys.exit(0 if figs["verdict"] == "PASS" else 1)
