#!/usr/bin/env python3
"""The verdicts of the convergence scenarios (issue 17, "replicas converge by themselves"):
run.py's `janitor` and `outbox-wipe` faults probe replica reads of one cluster from the other
DCs' routers and write what they saw to converge.json in the run directory; these pure
functions judge it (tests/test_converge.py feeds them crafted inputs). The usual checker
(checker.py) judges the clients' records of the same run as for every scenario.

  janitor_late / janitor_not_converged
      a replica DC showed the cluster expired straight on its owner's Coopr (the lease janitor)
      as terminated, from its replica store, later than sweep_ms + SLACK_S after the expiry, or
      never;
  wipe_late / wipe_not_converged
      after the owner's replication store was deleted while the replica DC was down, the
      replica DC showed the probe cluster's last state (terminated while it was down) later
      than sweep_ms + SLACK_S after both were back, or never;
  wipe_stale
      a replica read by the replica DC of the owner's config-written cluster, sent later than
      sweep_ms + SLACK_S after both were back, showed an older config than the one acknowledged
      when both were back (or no such read was made: wipe_unobserved).

  python3 load/netns/converge.py /dev/shm/coopr-netns/janitor     # re-judge a run
"""
import json
import os
import sys

# Beyond sweep_ms: the janitor's delete (the sims' 50 ms operations), the capture (five reads),
# one WAN crossing (25 ms), the probe's own 200 ms polling, and a loaded 2-core machine.
SLACK_S = 3.0


def first_seen(obs, dc, since, want):
    """The first time (s) `dc` answered from its replica store with status `want`, at or after
    `since`; None if never."""
    ts = [o["t"] for o in obs if o["dc"] == dc and o.get("route") == "replica"
          and o.get("status") == want and o["t"] >= since]
    return min(ts) if ts else None


def janitor(c):
    """c: {"expired_at", "sweep_ms", "replicas": [dc], "obs": [{"dc", "t", "route",
    "status"}]}. Returns (violations, figures)."""
    bad, figs = [], {}
    bound = c["sweep_ms"] / 1000 + SLACK_S
    for dc in c["replicas"]:
        t = first_seen(c["obs"], dc, c["expired_at"], "terminated")
        if t is None:
            bad.append(("janitor_not_converged", f"{dc} never showed the expired cluster"
                        " terminated from its replica store"))
            figs[dc] = "never"
            continue
        took = t - c["expired_at"]
        figs[dc] = f"{took * 1000:.0f} ms"
        if took > bound:
            bad.append(("janitor_late", f"{dc} showed it terminated {took:.1f} s after the"
                        f" expiry (bound {bound:.1f} s)"))
    return bad, {"janitor_terminated_after": figs, "janitor_bound_s": bound}


def outbox_wipe(c, records):
    """c: {"back_at", "sweep_ms", "replica": dc, "probe_obs": [...], "cluster": id of the owner's
    config-written cluster, "t0": the run's start (records' clock)}; records: the clients'
    records (times are absolute, c's are relative to t0). Returns (violations, figures)."""
    bad, figs = [], {}
    bound = c["sweep_ms"] / 1000 + SLACK_S
    dc = c["replica"]
    t = first_seen(c["probe_obs"], dc, c["back_at"], "terminated")
    if t is None:
        bad.append(("wipe_not_converged", f"{dc} never showed the probe's last state"))
        figs["probe"] = "never"
    else:
        took = t - c["back_at"]
        figs["probe"] = f"{took * 1000:.0f} ms after both were back"
        if took > bound:
            bad.append(("wipe_late", f"{dc} showed the probe's last state {took:.1f} s after"
                        f" both were back (bound {bound:.1f} s)"))
    back_abs = c["t0"] + c["back_at"]
    acked = [r["seq"] for r in records if r.get("kind") == "config"
             and r.get("cluster") == c["cluster"] and 200 <= r.get("status", 0) < 300
             and r["t1"] <= back_abs]
    want = max(acked) if acked else 0
    later = [r for r in records if r.get("kind") == "read" and r.get("dc") == dc
             and r.get("cluster") == c["cluster"] and r.get("seen") is not None
             and r.get("h", {}).get("x-coopr-router-route") == "replica"
             and r["t0"] >= back_abs + bound]
    stale = [r for r in later if r["seen"] < want]
    figs["config_seq_at_back"] = want
    figs["replica_reads_after_bound"] = len(later)
    if not later:
        bad.append(("wipe_unobserved", f"{dc} made no replica read of {c['cluster']} after"
                    f" {bound:.1f} s past both back"))
    for r in stale[:5]:
        bad.append(("wipe_stale", f"{dc} read {c['cluster']} seq {r['seen']} ({r['rid']}) but"
                    f" seq {want} was acknowledged before both were back"))
    if len(stale) > 5:
        bad.append(("wipe_stale", f"... and {len(stale) - 5} more"))
    return bad, figs


def report(run, records=None):
    """Judges run/converge.json if the scenario wrote one: (violations, figures) or None."""
    path = os.path.join(run, "converge.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        c = json.load(f)
    if c["kind"] == "janitor":
        return janitor(c)
    if records is None:
        import checker
        records = checker.load(run)[0]
    return outbox_wipe(c, records)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    got = report(sys.argv[1])
    if got is None:
        print("no converge.json in this run")
        sys.exit(2)
    bad, figs = got
    for k, detail in bad:
        print(f"  VIOLATION {k}: {detail}")
    print(json.dumps(figs, indent=1))
    sys.exit(1 if bad else 0)
