"""Unit tests of converge.py (the verdicts of the `janitor` and `outbox-wipe` scenarios) on
crafted inputs: a replica that converges in time passes; late, never, stale or unobserved fail.
Run: python3 -m unittest discover -s load/netns/tests
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import converge  # noqa: E402


def ob(dc, t, status, route="replica"):
    return {"dc": dc, "t": t, "route": route, "status": status}


def janitor_case(obs):
    return {"kind": "janitor", "expired_at": 5.0, "sweep_ms": 3000,
            "replicas": ["dc2", "dc3"], "obs": obs}


def kinds(bad):
    return sorted(k for k, _ in bad)


def config(seq, t1, status=200):
    return {"dc": "dc1", "kind": "config", "cluster": "00000001", "seq": seq, "t0": t1 - 0.01,
            "t1": t1, "status": status, "rid": f"c{seq}"}


def read(seen, t0, dc="dc2", route="replica"):
    return {"dc": dc, "kind": "read", "cluster": "00000001", "seen": seen, "t0": t0,
            "t1": t0 + 0.01, "status": 200, "rid": f"r{t0}", "h": {"x-coopr-router-route": route}}


def wipe_case(obs):
    return {"kind": "outbox-wipe", "back_at": 10.0, "t0": 1000.0, "sweep_ms": 3000,
            "replica": "dc2", "probe_obs": obs, "cluster": "00000001"}


class Janitor(unittest.TestCase):
    def test_both_replicas_in_time_pass(self):
        bad, figs = converge.janitor(janitor_case(
            [ob("dc2", 5.2, "active"), ob("dc3", 5.2, "active"),
             ob("dc2", 7.0, "terminated"), ob("dc3", 8.1, "terminated")]))
        self.assertEqual(bad, [])
        self.assertEqual(figs["janitor_terminated_after"], {"dc2": "2000 ms", "dc3": "3100 ms"})

    def test_late_replica_fails(self):
        # Bound: sweep_ms 3 s + 3 s slack = 6 s after the expiry at 5 s.
        bad, _ = converge.janitor(janitor_case(
            [ob("dc2", 7.0, "terminated"), ob("dc3", 11.5, "terminated")]))
        self.assertEqual(kinds(bad), ["janitor_late"])

    def test_never_and_read_through_do_not_count(self):
        # dc3 saw terminated only through the owner (not its replica store): not converged.
        bad, _ = converge.janitor(janitor_case(
            [ob("dc2", 7.0, "terminated"), ob("dc3", 7.0, "terminated", route="forwarded")]))
        self.assertEqual(kinds(bad), ["janitor_not_converged"])

    def test_a_state_before_the_expiry_does_not_count(self):
        bad, _ = converge.janitor(janitor_case(
            [ob("dc2", 4.0, "terminated"), ob("dc3", 6.0, "terminated")]))
        self.assertEqual(kinds(bad), ["janitor_not_converged"])


class OutboxWipe(unittest.TestCase):
    # Config seq 7 acknowledged at 1009.0 (before both were back at 1010.0); the bound ends at
    # 1016.0 (sweep 3 s + slack 3 s).
    RECS = [config(6, 1008.0), config(7, 1009.0), config(8, 1012.0)]

    def test_converged_passes(self):
        bad, figs = converge.outbox_wipe(
            wipe_case([ob("dc2", 10.5, "active"), ob("dc2", 13.0, "terminated")]),
            self.RECS + [read(5, 1011.0), read(8, 1016.5), read(7, 1017.0)])
        self.assertEqual(bad, [])
        self.assertEqual(figs["config_seq_at_back"], 7)
        self.assertEqual(figs["replica_reads_after_bound"], 2)

    def test_probe_never_or_late(self):
        recs = self.RECS + [read(8, 1017.0)]
        bad, _ = converge.outbox_wipe(wipe_case([ob("dc2", 12.0, "active")]), recs)
        self.assertEqual(kinds(bad), ["wipe_not_converged"])
        bad, _ = converge.outbox_wipe(wipe_case([ob("dc2", 17.0, "terminated")]), recs)
        self.assertEqual(kinds(bad), ["wipe_late"])

    def test_stale_config_after_the_bound_fails(self):
        bad, _ = converge.outbox_wipe(
            wipe_case([ob("dc2", 13.0, "terminated")]),
            self.RECS + [read(8, 1016.5), read(6, 1018.0)])
        self.assertEqual(kinds(bad), ["wipe_stale"])

    def test_no_read_after_the_bound_is_unobserved(self):
        bad, _ = converge.outbox_wipe(
            wipe_case([ob("dc2", 13.0, "terminated")]),
            self.RECS + [read(8, 1015.0), read(8, 1020.0, dc="dc3"),
                         read(8, 1020.0, route="forwarded")])
        self.assertEqual(kinds(bad), ["wipe_unobserved"])


if __name__ == "__main__":
    unittest.main()
