"""The network: namespaces `{P}dc1..{P}dc3` and `{P}wan` (P = $NETNS_PREFIX, default `cr-`),
one veth pair per DC to the wan namespace, and the delaying relay in wan as the only path
between DCs (wan does not forward IP, so every byte between DCs crosses the relay).

Addresses: DC k is 10.77.k.2/24 (its wan side 10.77.k.1, its default route); the relay listens
on 10.77.0.1 (on wan's loopback) at the same port numbers as the services it fronts.
Ports of DC k (all < 32768): 2k054 sim, 2k060 client, 2k061 peer, 2k062 admin, 2k379 etcd
client, 2k380 etcd peer. Partitions: `partition(k)` sets DC k's link down, `heal(k)` up.
Packet loss: `loss(percent)` (nftables); bandwidth: `bandwidth(kbit)` (`tc tbf`).
"""
import os
import subprocess

PREFIX = os.environ.get("NETNS_PREFIX", "cr-")
DCS = [1, 2, 3]
WAN = PREFIX + "wan"
RELAY_IP = "10.77.0.1"
RELAYED = ["peer", "etcd", "etcd_peer"]


def ns(k):
    return f"{PREFIX}dc{k}"


def port(k, what):
    return 20000 + 1000 * k + {"sim": 54, "client": 60, "peer": 61, "admin": 62,
                               "etcd": 379, "etcd_peer": 380}[what]


def dc_ip(k):
    return f"10.77.{k}.2"


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def available():
    """None if this machine lets us make namespaces, else why not."""
    if os.geteuid() != 0:
        return "not root"
    probe = PREFIX + "probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


def up():
    down()
    sh("ip", "netns", "add", WAN)
    sh("ip", "-n", WAN, "link", "set", "lo", "up")
    sh("ip", "-n", WAN, "addr", "add", f"{RELAY_IP}/32", "dev", "lo")
    for k in DCS:
        sh("ip", "netns", "add", ns(k))
        sh("ip", "-n", ns(k), "link", "set", "lo", "up")
        a, b = f"{PREFIX}d{k}", f"{PREFIX}w{k}"
        sh("ip", "link", "add", a, "netns", ns(k), "type", "veth", "peer", "name", b,
           "netns", WAN)
        sh("ip", "-n", ns(k), "addr", "add", f"{dc_ip(k)}/24", "dev", a)
        sh("ip", "-n", ns(k), "link", "set", a, "up")
        sh("ip", "-n", WAN, "addr", "add", f"10.77.{k}.1/24", "dev", b)
        sh("ip", "-n", WAN, "link", "set", b, "up")
        sh("ip", "-n", ns(k), "route", "add", "default", "via", f"10.77.{k}.1")


def relay_maps():
    return [f"{RELAY_IP}:{port(k, w)}={dc_ip(k)}:{port(k, w)}" for k in DCS for w in RELAYED]


def partition(k):
    sh("ip", "-n", WAN, "link", "set", f"{PREFIX}w{k}", "down")


def heal(k):
    sh("ip", "-n", WAN, "link", "set", f"{PREFIX}w{k}", "up")
    sh("ip", "-n", ns(k), "route", "replace", "default", "via", f"10.77.{k}.1")


def loss(percent):
    """Drops `percent` % of the packets entering and leaving the wan namespace on the DC links
    (nftables `numgen random`; needs `nft`); 0 removes the rules."""
    sh("ip", "netns", "exec", WAN, "nft", "delete", "table", "inet", "wanloss", check=False)
    if percent <= 0:
        return
    rules = (f"table inet wanloss {{\n"
             f" chain in {{ type filter hook input priority 0; iifname != \"lo\" "
             f"numgen random mod 100 < {percent} counter drop; }}\n"
             f" chain out {{ type filter hook output priority 0; oifname != \"lo\" "
             f"numgen random mod 100 < {percent} counter drop; }}\n}}\n")
    r = subprocess.run(["ip", "netns", "exec", WAN, "nft", "-f", "-"], input=rules,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"nft: {r.stderr.strip()}")


def bandwidth(kbit):
    """Limits every DC link to `kbit` kbit/s each way with a token bucket (`tc tbf`, on both
    ends of each veth); 0 removes the limit."""
    for k in DCS:
        for where, dev in ((WAN, f"{PREFIX}w{k}"), (ns(k), f"{PREFIX}d{k}")):
            sh("ip", "netns", "exec", where, "tc", "qdisc", "del", "dev", dev, "root",
               check=False)
            if kbit > 0:
                sh("ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root",
                   "tbf", "rate", f"{kbit}kbit", "burst", "32kbit", "latency", "400ms")


def loss_dropped():
    """Packets the loss rules dropped so far (in + out)."""
    r = sh("ip", "netns", "exec", WAN, "nft", "list", "table", "inet", "wanloss", check=False)
    return sum(int(w.split()[1]) for w in r.stdout.split("counter")[1:])


def down():
    """Kills whatever still runs in our namespaces (only processes we started live there),
    then deletes them (which deletes the veths)."""
    for name in [WAN] + [ns(k) for k in DCS]:
        r = sh("ip", "netns", "pids", name, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", name, check=False)
