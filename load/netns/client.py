#!/usr/bin/env python3
"""The workload generator: runs inside one DC's namespace against that DC's router and records
every request and its response, one JSON line each, to --out. Bounded by --seconds and by
--count requests per thread.

Threads send a mix of node writes (`POST /v2/nodes` naming a cluster id 1..12, so every shard
gets writes), cluster creates and reads of the --clusters' config (served locally or, for other
DCs' clusters, from the replica store). One more thread is the only writer of the config of the
clusters this DC created (`PUT /v2/clusters/{id}/config` with `{"seq": n}`, n increasing), so
the checker can tell which state a replica read shows. No request is retried: each attempt has
its own `x-request-id` and record.
"""
import argparse
import http.client
import json
import random
import threading
import time

AUTH = {"Coopr-UserID": "admin", "Coopr-TenantID": "superadmin"}
KEEP = ["x-coopr-router-held-ms", "x-coopr-router-dc", "x-coopr-router-route", "x-coopr-router-epoch",
        "x-coopr-router-shard", "x-coopr-router-error", "x-coopr-router-replica-epoch", "age",
        "retry-after"]


def find_seq(v):
    if isinstance(v, dict):
        if isinstance(v.get("seq"), int):
            return v["seq"]
        for x in v.values():
            s = find_seq(x)
            if s is not None:
                return s
    return None


class Client:
    def __init__(self, args):
        self.a = args
        self.host, self.port = args.url.split("//")[1].split(":")
        self.lock = threading.Lock()
        self.out = open(args.out, "a")
        self.n = 0
        self.stop_at = time.time() + args.seconds

    def call(self, kind, method, path, body=None, **extra):
        with self.lock:
            self.n += 1
            rid = f"{self.a.tag}-{self.n}"
        rec = {"dc": self.a.dc, "kind": kind, "method": method, "path": path, "rid": rid,
               "t0": time.time()}
        rec.update(extra)
        try:
            c = http.client.HTTPConnection(self.host, int(self.port), timeout=self.a.timeout)
            h = dict(AUTH, **{"x-request-id": rid})
            if body is not None:
                h["content-type"] = "application/json"
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers=h)
            r = c.getresponse()
            data = r.read()
            c.close()
            rec["status"] = r.status
            rec["h"] = {k: r.getheader(k) for k in KEEP if r.getheader(k) is not None}
            if r.status < 300 and data[:1] in (b"{", b"["):
                j = json.loads(data)
                if kind == "create":
                    rec["id"] = j.get("id")
                elif kind == "read":
                    rec["seen"] = find_seq(j)
            elif r.status >= 300:
                rec["body"] = data[:200].decode("utf-8", "replace")
        except Exception as e:  # a network failure is a result to record, not a crash
            rec["status"] = 0
            rec["err"] = type(e).__name__
        rec["t1"] = time.time()
        with self.lock:
            self.out.write(json.dumps(rec) + "\n")
        return rec

    def mixed(self, seed):
        rnd = random.Random(seed)
        for _ in range(self.a.count):
            if time.time() > self.stop_at:
                return
            x = rnd.random()
            if x < 0.55:
                cid = rnd.randint(1, 12)
                self.call("write", "POST", "/v2/nodes",
                          {"id": f"n{seed}-{rnd.randrange(1 << 30)}", "clusterId": f"{cid:08d}"},
                          shard=cid % 12)
            elif x < 0.60:
                self.call("create", "POST", "/v2/clusters",
                          {"name": f"w{seed}", "clusterTemplate": "demo", "numMachines": 1})
            elif self.a.clusters:
                cid = rnd.choice(list(self.a.clusters))
                self.call("read", "GET", f"/v2/clusters/{cid}/config", cluster=cid)
            time.sleep(self.a.pause)

    def config_writer(self):
        mine = [c for c, dc in self.a.clusters.items() if dc == self.a.dc]
        seq = {c: 0 for c in mine}
        for _ in range(self.a.count):
            if time.time() > self.stop_at or not mine:
                return
            for c in mine:
                seq[c] += 1
                self.call("config", "PUT", f"/v2/clusters/{c}/config",
                          {"config": {"seq": seq[c]}}, cluster=c, seq=seq[c])
            time.sleep(max(self.a.pause, 0.1))

    def run(self):
        ts = [threading.Thread(target=self.mixed, args=(f"{self.a.tag}{i}",))
              for i in range(self.a.threads)]
        ts.append(threading.Thread(target=self.config_writer))
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.out.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dc", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tag", required=True, help="request id prefix, unique per client run")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--count", type=int, default=100000, help="requests per thread at most")
    p.add_argument("--threads", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.01, help="seconds between a thread's requests")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--clusters", type=json.loads, default={}, help='{"id": "dcK", ...}')
    Client(p.parse_args()).run()


if __name__ == "__main__":
    main()
