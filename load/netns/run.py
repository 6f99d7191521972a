#!/usr/bin/env python3
"""Runs chaos scenarios on three DCs in network namespaces and checks every one.

  python3 load/netns/run.py [--bin-dir DIR] [--out DIR] [--seconds S] [SCENARIO ...]
  python3 load/netns/run.py --ci        # the short set; prints why it skipped if it cannot run

Each scenario gets a fresh deployment (topo.up, deploy.start), one pre-created cluster per DC,
a client per DC for the scenario's length, its fault at fixed times, then the simulators' logs
and the ownership history are collected and checker.py gives the verdict. Everything created is
removed on the way out, whatever happens (finally + SIGTERM/SIGINT handlers).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checker  # noqa: E402
import converge  # noqa: E402
import deploy  # noqa: E402
import topo  # noqa: E402
from topo import DCS, ns, port  # noqa: E402

AUTH = ["Coopr-UserID: admin", "Coopr-TenantID: superadmin"]


def at(t0, seconds):
    """Sleeps until t0 + seconds."""
    time.sleep(max(0.0, t0 + seconds - time.time()))


# --- the faults (each gets the deployment and the start time, returns notes) ---------------
def none(d, t0, length):
    return "no fault"


def kill_dc1(d, t0, length):
    at(t0, 5)
    d.kill("router", 1)
    d.kill("sim", 1)
    at(t0, length - 8)
    d.start_sim(1)
    d.start_router(1)
    return "kill -9 of dc1's router and sim at 5 s, both restarted at end-8 s (no failback)"


def handoffs(d, t0, length):
    notes = []
    for i, to in enumerate(["dc2", "dc3", "dc1", "dc2", "dc1"]):
        at(t0, 4 + i * 4)
        k = int(to[2])
        t = time.time()
        code, out = d.cli(k, "handoff", "--etcd", d.etcd_url(k), "--shard", "1", "--to", to,
                          "--timeout-ms", "15000")
        notes.append(f"shard 1 -> {to}: rc {code} in {(time.time() - t) * 1000:.0f} ms")
    return "; ".join(notes)


def partition_dc2(d, t0, length):
    at(t0, 5)
    topo.partition(2)
    at(t0, 35)
    topo.heal(2)
    return "dc2's link down from 5 s to 35 s"


def partition_dc2_leader(d, t0, length):
    """dc2 cut off while its etcd member is the leader: the new leader extends every lease, so
    dc2's `alive/` key outlives the cut; its routers' heartbeats (member keys) do not."""
    at(t0, 3)
    member = (d.etcd_status(2) or {}).get("member")
    leader = d.etcd_leader()
    if member and leader and leader != 2:
        code, text = d.curl(leader, "POST", d.etcd_url(leader) + "/v3/maintenance/transfer-leadership",
                            json.dumps({"targetID": member}), 5)
        if code != 200:
            raise RuntimeError(f"transfer-leadership to dc2's member: {code} {text}")
    d.wait_until("dc2's member leads", lambda: d.etcd_leader() == 2, 10)
    at(t0, 5)
    topo.partition(2)
    at(t0, 35)
    topo.heal(2)
    return "etcd leadership moved to dc2's member at 3 s; dc2's link down from 5 s to 35 s"


def kill_etcd_leader(d, t0, length):
    at(t0, 5)
    k = d.etcd_leader()
    d.kill("etcd", k)
    at(t0, 15)
    d.start_etcd(k, new=False)
    return f"etcd leader (dc{k}'s member) killed -9 at 5 s, restarted at 15 s"


def failback(d, t0, length):
    """dc1 killed at 5 s, back at 16 s (its shards failed over meanwhile: lease 5 s + grace 2 s),
    then its shards come home by themselves (the
    routers run with failover.failback_after_ms = 5000, min_interval_ms = 5000)."""
    at(t0, 5)
    d.kill("router", 1)
    d.kill("sim", 1)
    at(t0, 16)
    d.start_sim(1)
    d.start_router(1)
    back = None
    while time.time() < t0 + length - 2:
        shards = {int(s["key"].rsplit("/", 1)[1]): s["value"]["owner"]
                  for s in d.ownership_dump()["shards"]}
        # dc1's home shards: n mod 3 == 1 (id_start 1, increment 3).
        if all(o == "dc1" for n, o in shards.items() if n % 3 == 1) and back is None:
            moved = [h for h in d.ownership_dump()["history"] if h["value"].get("by") == "failback"]
            if moved:
                back = time.time() - t0
        time.sleep(0.5)
    when = f"all home at {back:.1f} s" if back else "NOT all home by the end"
    return f"kill -9 of dc1's router and sim at 5 s, both restarted at 16 s; failback: {when}"


def wan_200(d, t0, length):
    at(t0, 5)
    d.set_delay(200)
    at(t0, length - 5)
    d.set_delay(25)
    return "WAN delay 25 -> 200 ms each way from 5 s to end-5 s"


def loss_5(d, t0, length):
    at(t0, 5)
    topo.loss(5)
    at(t0, length - 5)
    dropped = topo.loss_dropped()
    topo.loss(0)
    return (f"5 % of packets dropped each way on every WAN link from 5 s to end-5 s (nftables):"
            f" {dropped} packets dropped")


def bw_1mbit(d, t0, length):
    at(t0, 5)
    topo.bandwidth(1000)
    at(t0, length - 5)
    topo.bandwidth(0)
    return "every DC link limited to 1 Mbit/s each way (tc tbf) from 5 s to end-5 s"


def reloads(d, t0, length):
    n = 0
    while time.time() < t0 + length - 3:
        at(t0, 2 + n)
        k = DCS[n % 3]
        d.write_config(k, f"# reload {n}\n[health]\ninterval_ms = {900 + 100 * (n % 3)}\n")
        d.procs[("router", k)].send_signal(signal.SIGHUP)
        n += 1
    return f"{n} config rewrites + SIGHUP, one a second, round robin"


# --- convergence (issue 17): probes of one cluster's replica reads, judged by converge.py ----
SWEEP_MS = 3000  # the routers' replication.sweep_ms in these scenarios (SCENARIO_CONFIG)


def get_route_status(d, k, cid):
    """(x-coopr-router-route, status) of GET /v2/clusters/{cid} through dc k's router."""
    r = subprocess.run(["ip", "netns", "exec", ns(k), "curl", "-s", "-i", "-m", "3"]
                       + sum((["-H", h] for h in AUTH), [])
                       + [f"http://127.0.0.1:{port(k, 'client')}/v2/clusters/{cid}"],
                       capture_output=True, text=True)
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    route = None
    for line in head.split("\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-coopr-router-route":
            route = value.strip()
    try:
        status = json.loads(body).get("status")
    except ValueError:
        status = None
    return route, status


def probe_cluster(d, name):
    """A cluster created through dc1's router (a dc1 shard), once every DC reads it active from
    its replica store: its id."""
    code, text = d.curl(1, "POST", f"http://127.0.0.1:{port(1, 'client')}/v2/clusters",
                        json.dumps({"name": name, "clusterTemplate": "demo", "numMachines": 1}),
                        headers=AUTH)
    if code != 200:
        raise RuntimeError(f"create {name} through dc1: {code} {text}")
    cid = json.loads(text)["id"]
    for k in (2, 3):
        d.wait_until(f"dc{k} reads {name} active from its replica",
                     lambda k=k: get_route_status(d, k, cid) == ("replica", "active"), 30)
    return cid


def watch(d, t0, cid, dcs, until, stop=lambda: False):
    """Replica reads of cid from each of dcs every 200 ms until `until` (s after t0) or stop()."""
    obs = []
    while time.time() < t0 + until and not stop():
        for k in dcs:
            route, status = get_route_status(d, k, cid)
            obs.append({"dc": f"dc{k}", "t": time.time() - t0, "route": route, "status": status})
        time.sleep(0.2)
    return obs


def janitor(d, t0, length):
    """A cluster of dc1's expired straight on dc1's Coopr (the lease janitor: /sim/expire) at
    5 s; dc2 and dc3 are probed until both read it terminated from their replica stores."""
    cid = probe_cluster(d, "lease")
    at(t0, 5)
    code, text = d.curl(1, "POST", f"http://127.0.0.1:{port(1, 'sim')}/sim/expire/{cid}")
    if code != 200:
        raise RuntimeError(f"expire {cid} on dc1's sim: {code} {text}")
    expired_at = time.time() - t0

    def both():
        return all(any(o["dc"] == f"dc{k}" and o["route"] == "replica"
                       and o["status"] == "terminated" for o in obs[-6:]) for k in (2, 3))
    obs = []
    while time.time() < t0 + length - 1 and not (obs and both()):
        obs += watch(d, t0, cid, (2, 3), time.time() - t0 + 0.01)
    with open(os.path.join(d.run, "converge.json"), "w") as f:
        json.dump({"kind": "janitor", "cluster": cid, "expired_at": expired_at,
                   "sweep_ms": SWEEP_MS, "replicas": ["dc2", "dc3"], "obs": obs}, f)
    return (f"cluster {cid} (dc1's) expired on dc1's sim at {expired_at:.1f} s (/sim/expire, as"
            f" Coopr's lease janitor); replication.sweep_ms = {SWEEP_MS}")


def outbox_wipe(d, t0, length):
    """dc2's router stopped at 5 s; through dc1 a probe cluster is deleted; dc1's router
    stopped at 8 s, its replication store deleted, dc1 restarted at 9 s and dc2 at 10 s; dc2 is
    probed until it reads the probe terminated from its replica store."""
    cid = probe_cluster(d, "wipe-probe")
    at(t0, 5)
    d.kill("router", 2)
    code, text = d.curl(1, "DELETE", f"http://127.0.0.1:{port(1, 'client')}/v2/clusters/{cid}",
                        headers=AUTH)
    if code != 200:
        raise RuntimeError(f"delete {cid} through dc1: {code} {text}")
    d.wait_until("dc3 reads the probe terminated",
                 lambda: get_route_status(d, 3, cid) == ("replica", "terminated"), 30)
    at(t0, 8)
    d.kill("router", 1)
    store = os.path.join(d.run, "dc1.replication.redb")
    os.remove(store)
    at(t0, 9)
    d.start_router(1)
    at(t0, 10)
    d.start_router(2)
    d.wait_until("dc1 and dc2 ready", lambda: d.ready(1) and d.ready(2), 30)
    back_at = time.time() - t0

    def seen(obs):
        return any(o["route"] == "replica" and o["status"] == "terminated" for o in obs[-3:])
    obs = []
    while time.time() < t0 + length - 1 and not (obs and seen(obs)):
        obs += watch(d, t0, cid, (2,), time.time() - t0 + 0.01)
    pre1 = next(c for c, dc in d.clusters.items() if dc == "dc1")
    with open(os.path.join(d.run, "converge.json"), "w") as f:
        json.dump({"kind": "outbox-wipe", "probe": cid, "back_at": back_at, "t0": t0,
                   "sweep_ms": SWEEP_MS, "replica": "dc2", "probe_obs": obs,
                   "cluster": pre1}, f)
    return (f"dc2's router killed at 5 s; probe {cid} deleted through dc1; dc1's router killed"
            f" at 8 s and its replication store deleted; dc1 back at 9 s, dc2 at 10 s (both"
            f" ready at {back_at:.1f} s); replication.sweep_ms = {SWEEP_MS}")


SCENARIOS = {"baseline": (none, 15), "kill": (kill_dc1, 30), "handoff": (handoffs, 26),
             "partition": (partition_dc2, 50), "partition-leader": (partition_dc2_leader, 50),
             "etcd-leader": (kill_etcd_leader, 25),
             "wan-200": (wan_200, 25), "loss-5": (loss_5, 25), "bw-1mbit": (bw_1mbit, 25),
             "reload": (reloads, 15), "failback": (failback, 45),
             "janitor": (janitor, 25), "outbox-wipe": (outbox_wipe, 35)}
# Settings a scenario's routers start with.
SCENARIO_CONFIG = {
    "failback": "[failover]\nfailback_after_ms = 5000\nmin_interval_ms = 5000\n",
    # `replication.sweep_ms`: the [replication] table is the last of the generated config.
    "janitor": f"sweep_ms = {SWEEP_MS}\n",
    "outbox-wipe": f"sweep_ms = {SWEEP_MS}\n",
}
CI_SET = ["kill", "handoff", "partition", "partition-leader", "etcd-leader"]


def precreate(d):
    clusters = {}
    for k in DCS:
        code, text = d.curl(k, "POST", f"http://127.0.0.1:{port(k, 'client')}/v2/clusters",
                            json.dumps({"name": f"pre{k}", "clusterTemplate": "demo",
                                        "numMachines": 1}), headers=AUTH)
        if code != 200:
            raise RuntimeError(f"create through dc{k}: {code} {text}")
        clusters[json.loads(text)["id"]] = f"dc{k}"
    return clusters


def run_one(name, args):
    fault, length = SCENARIOS[name]
    length = args.seconds or length
    run = os.path.join(args.out, name)
    shutil.rmtree(run, ignore_errors=True)
    topo.up()
    d = deploy.Deployment(run, args.bin_dir, extra=SCENARIO_CONFIG.get(name, ""))
    clients = []
    try:
        d.start()
        clusters = precreate(d)
        d.clusters = clusters
        t0 = time.time()
        for k in DCS:
            clients.append(subprocess.Popen(
                ["ip", "netns", "exec", ns(k), sys.executable, os.path.join(HERE, "client.py"),
                 "--dc", f"dc{k}", "--url", f"http://127.0.0.1:{port(k, 'client')}",
                 "--out", os.path.join(run, f"client{k}.jsonl"), "--tag", f"{name}-dc{k}",
                 "--seconds", str(length), "--threads", str(args.threads),
                 "--clusters", json.dumps(clusters)]))
        notes = fault(d, t0, length)
        for c in clients:
            c.wait(timeout=length + 60)
        # A killed simulator comes back on its --data file, so its log can be read.
        for k in DCS:
            if ("sim", k) not in d.procs:
                d.start_sim(k)
            topo.heal(k)
        for k in DCS:
            d.wait_until(f"dc{k} sim log", lambda k=k: d.curl(
                k, "GET", f"http://127.0.0.1:{port(k, 'sim')}/status")[0] == 200, 30)
            with open(os.path.join(run, f"sim{k}.log.json"), "w") as f:
                json.dump(d.sim_log(k), f)
        d.wait_until("etcd", lambda: d.etcd_leader() is not None, 30)
        dump = d.ownership_dump()
        with open(os.path.join(run, "ownership.json"), "w") as f:
            json.dump(dump, f)
        figs = checker.report(run)
        judged = converge.report(run)
        if judged is not None:
            bad, more = judged
            figs.update(more)
            for k, detail in bad[:20]:
                print(f"  VIOLATION {k}: {detail}")
            if bad:
                kinds = {}
                for k, _ in bad:
                    kinds[k] = kinds.get(k, 0) + 1
                figs["verdict"] = (figs["verdict"] + " + " if figs["verdict"] != "PASS"
                                   else "") + f"FAIL {kinds}"
        figs["scenario"], figs["fault"], figs["seconds"] = name, notes, length
        # When each automatic move committed, in s after the scenario's start (faults at 5 s).
        figs["moves_at_s"] = sorted(
            f"shard {h['value']['shard']} {h['value']['from']}->{h['value']['to']}"
            f" ({h['value']['by']}) {h['value']['at_ms'] / 1000 - t0:.1f}"
            for h in dump["history"]
            if h["value"].get("by") in ("failover", "failback") and h["value"].get("at_ms"))
        return figs
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
        d.stop_all()
        topo.down()
        for k in DCS:  # the etcd data; records, logs and configs stay for reading
            shutil.rmtree(os.path.join(run, f"etcd{k}"), ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenarios", nargs="*")
    p.add_argument("--ci", action="store_true", help="the short set; skip if namespaces fail")
    p.add_argument("--bin-dir", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "debug"))
    p.add_argument("--out", default="/dev/shm/coopr-netns")
    p.add_argument("--seconds", type=float, default=0, help="override each scenario's length")
    p.add_argument("--threads", type=int, default=3, help="mixed-load threads per DC client")
    args = p.parse_args()
    why = topo.available()
    for tool in ["etcd", "curl"]:
        if not shutil.which(tool):
            why = why or f"{tool} is not installed"
    for b in ["coopr-router", "coopr-sim"]:
        if not os.path.exists(os.path.join(args.bin_dir, b)):
            why = why or f"{args.bin_dir}/{b} missing (cargo build --bins)"
    if why:
        print(f"netns chaos: SKIPPED: {why}")
        return 0
    names = args.scenarios or (CI_SET if args.ci else list(SCENARIOS))
    if "loss-5" in names and not shutil.which("nft"):
        print("netns chaos: loss-5 skipped: nft is not installed (apt-get install nftables)")
        names = [n for n in names if n != "loss-5"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    results, failed = [], False
    for name in names:
        print(f"=== {name}", flush=True)
        try:
            figs = run_one(name, args)
        except Exception as e:  # a harness failure fails the scenario, cleanup already ran
            figs = {"scenario": name, "verdict": f"ERROR {e}"}
        print(json.dumps(figs, indent=1), flush=True)
        results.append(figs)
        failed |= figs["verdict"] != "PASS"
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n".join(f"{r['scenario']:12} {r['verdict']}" for r in results))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        topo.down()
