"""The deployment inside the namespaces of topo.py: per DC one etcd member (the three form one
cluster, peers through the WAN relay), one coopr-sim (state and log persisted with --data, so a
kill -9 loses nothing it acknowledged) and one router (etcd ownership, replication on, each
DC's sim doubling as the standby server for the other DCs' shards, as in the tests).
Every process is a child of this driver, started with `ip netns exec`; topo.down() kills them.
"""
import base64
import json
import os
import subprocess
import time

import topo
from topo import DCS, RELAY_IP, dc_ip, ns, port

PREFIX = "/coopr-router/"


class Deployment:
    def __init__(self, run_dir, bin_dir, op_delay_ms=50, extra=""):
        self.run = run_dir
        self.bin = bin_dir
        self.extra = extra  # config text every router starts with (a scenario's settings)
        self.op_delay_ms = op_delay_ms
        self.procs = {}  # (what, k) -> Popen
        os.makedirs(run_dir, exist_ok=True)
        self.delay_file = os.path.join(run_dir, "delay_ms")
        self.set_delay(25)

    # --- processes -------------------------------------------------------------------------
    def spawn(self, what, k, args):
        log = open(os.path.join(self.run, f"{what}{k}.log"), "ab")
        nsname = topo.WAN if k == 0 else ns(k)
        p = subprocess.Popen(["ip", "netns", "exec", nsname] + args, stdout=log, stderr=log,
                             env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
        self.procs[(what, k)] = p
        return p

    def kill(self, what, k):
        p = self.procs.pop((what, k), None)
        if p and p.poll() is None:
            p.kill()
            p.wait()

    def stop_all(self):
        for key in list(self.procs):
            self.kill(*key)

    def set_delay(self, ms):
        with open(self.delay_file + ".tmp", "w") as f:
            f.write(str(ms))
        os.replace(self.delay_file + ".tmp", self.delay_file)

    # --- HTTP inside a namespace (curl) ------------------------------------------------------
    def curl(self, k, method, url, body=None, timeout=5, headers=()):
        args = ["ip", "netns", "exec", ns(k), "curl", "-s", "-m", str(timeout), "-X", method,
                "-w", "\n%{http_code}"]
        for h in headers:
            args += ["-H", h]
        if body is not None:
            args += ["-H", "content-type: application/json", "--data-binary", body]
        r = subprocess.run(args + [url], capture_output=True, text=True)
        text, _, code = r.stdout.rpartition("\n")
        return int(code or 0), text

    def wait_until(self, what, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    # --- etcd --------------------------------------------------------------------------------
    def etcd_url(self, k):
        return f"http://127.0.0.1:{port(k, 'etcd')}"

    def start_etcd(self, k, new=True):
        peers = ",".join(f"dc{j}=http://{RELAY_IP}:{port(j, 'etcd_peer')}" for j in DCS)
        c, pp = port(k, "etcd"), port(k, "etcd_peer")
        self.spawn("etcd", k, [
            "etcd", "--name", f"dc{k}", "--data-dir", os.path.join(self.run, f"etcd{k}"),
            "--listen-client-urls", f"http://{dc_ip(k)}:{c},http://127.0.0.1:{c}",
            "--advertise-client-urls", f"http://{RELAY_IP}:{c}",
            "--listen-peer-urls", f"http://{dc_ip(k)}:{pp}",
            "--initial-advertise-peer-urls", f"http://{RELAY_IP}:{pp}",
            "--initial-cluster", peers, "--initial-cluster-token", "coopr-netns",
            "--initial-cluster-state", "new" if new else "existing",
            "--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote",
            "--logger", "zap", "--log-level", "warn"])

    def etcd_status(self, k):
        code, text = self.curl(k, "POST", self.etcd_url(k) + "/v3/maintenance/status", "{}", 2)
        if code != 200:
            return None
        j = json.loads(text)
        return {"member": j["header"]["member_id"], "leader": j.get("leader")}

    def etcd_leader(self):
        for k in DCS:
            s = self.etcd_status(k)
            if s and s["leader"] == s["member"]:
                return k
        return None

    def etcd_range(self, key, range_end):
        for k in DCS:
            b = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                            "range_end": base64.b64encode(range_end.encode()).decode()})
            code, text = self.curl(k, "POST", self.etcd_url(k) + "/v3/kv/range", b)
            if code == 200:
                out = []
                for kv in json.loads(text).get("kvs", []):
                    out.append({"key": base64.b64decode(kv["key"]).decode(),
                                "value": json.loads(base64.b64decode(kv["value"])),
                                "create_revision": int(kv["create_revision"]),
                                "mod_revision": int(kv["mod_revision"])})
                return out
        raise RuntimeError("no etcd member answered a range")

    def ownership_dump(self):
        """The shard map and every history record (for the checker)."""
        return {"shards": self.etcd_range(PREFIX + "shards/", PREFIX + "shards0"),
                "history": self.etcd_range(PREFIX + "history/", PREFIX + "history0")}

    def cli(self, k, *args, timeout=60):
        r = subprocess.run(["ip", "netns", "exec", ns(k), os.path.join(self.bin, "coopr-router")]
                           + list(args), capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    # --- sims and routers --------------------------------------------------------------------
    def start_sim(self, k):
        self.spawn("sim", k, [
            os.path.join(self.bin, "coopr-sim"), "--listen", f"127.0.0.1:{port(k, 'sim')}",
            "--id-start", str(k), "--id-increment", "3", "--op-delay-ms", str(self.op_delay_ms),
            "--seed", str(k), "--name", f"dc{k}", "--data", os.path.join(self.run, f"sim{k}.json")])

    def config_path(self, k):
        return os.path.join(self.run, f"router{k}.toml")

    def write_config(self, k, extra=None):
        extra = self.extra if extra is None else extra
        sim = f"127.0.0.1:{port(k, 'sim')}"
        t = [f'dc = "dc{k}"', "shard_count = 12", 'rules = "coopr"', "",
             "[listen]", f'client = "127.0.0.1:{port(k, "client")}"',
             f'peer = "{dc_ip(k)}:{port(k, "peer")}"', f'admin = "127.0.0.1:{port(k, "admin")}"',
             # The peer port listens on this namespace's address, in a network the harness made
             # for itself: plaintext there is the harness's choice, named as the router asks.
             "insecure_plaintext_peer = true",
             "", "[[backends]]", f'url = "http://{sim}"', ""]
        for j in DCS:
            peer = f"http://{RELAY_IP}:{port(j, 'peer')}"
            t += [f"[dcs.dc{j}]", f'peer_url = "{peer}"', f"id_start = {j}", "id_increment = 3", ""]
            if j != k:
                t += [f"[standby.dc{j}]", f'url = "http://{sim}"', ""]
        eps = [self.etcd_url(k)] + [f"http://{RELAY_IP}:{port(j, 'etcd')}" for j in DCS if j != k]
        t += ["[timeouts]", "connect_ms = 1000", "response_ms = 10000", "shutdown_grace_ms = 2000",
              "", "[ownership]", 'source = "etcd"',
              "endpoints = [" + ", ".join(f'"{e}"' for e in eps) + "]",
              f'prefix = "{PREFIX}"',
              f'state_file = "{os.path.join(self.run, f"dc{k}.ownership.json")}"', "",
              "[replication]", "enabled = true",
              f'path = "{os.path.join(self.run, f"dc{k}.replication.redb")}"',
              "poll_min_ms = 50", "poll_max_ms = 500", "", extra]
        with open(self.config_path(k) + ".tmp", "w") as f:
            f.write("\n".join(t))
        os.replace(self.config_path(k) + ".tmp", self.config_path(k))

    def start_router(self, k):
        if not os.path.exists(self.config_path(k)):
            self.write_config(k)
        self.spawn("router", k, [os.path.join(self.bin, "coopr-router"), "run", "--config",
                                 self.config_path(k)])

    def ready(self, k):
        code, _ = self.curl(k, "GET", f"http://127.0.0.1:{port(k, 'admin')}/ready", timeout=2)
        return code == 200

    def sim_log(self, k):
        code, text = self.curl(k, "GET", f"http://127.0.0.1:{port(k, 'sim')}/sim/log", timeout=20)
        if code != 200:
            raise RuntimeError(f"dc{k} sim log: {code}")
        return json.loads(text)

    def start_relay(self):
        args = ["python3", os.path.join(os.path.dirname(__file__), "relay.py"),
                "--delay-file", self.delay_file]
        for m in topo.relay_maps():
            args += ["--map", m]
        self.spawn("relay", 0, args)

    def start(self):
        self.start_relay()
        for k in DCS:
            self.start_etcd(k)
        self.wait_until("etcd leader", lambda: self.etcd_leader() is not None)
        code, out = self.cli(1, "ownership", "--etcd", self.etcd_url(1), "init", "--dcs",
                             "dc1,dc2,dc3", "--shards", "12")
        if code != 0:
            raise RuntimeError("ownership init: " + out)
        for k in DCS:
            self.start_sim(k)
            self.start_router(k)
        for k in DCS:
            self.wait_until(f"dc{k} ready", lambda k=k: self.ready(k))
