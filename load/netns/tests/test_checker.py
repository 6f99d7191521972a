"""Unit tests of checker.py on crafted inputs: each violation is caught, and a clean run passes.
Run: python3 -m unittest discover -s load/netns/tests
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import checker  # noqa: E402

# Shard 1: dc1 at epoch 2, moved to dc2 at epoch 10 (history record created at revision 10).
OWNERSHIP = {
    "shards": [{"key": "/coopr-router/shards/00001", "value": {"owner": "dc2"},
                "mod_revision": 10},
               {"key": "/coopr-router/shards/00002", "value": {"owner": "dc2"},
                "mod_revision": 2}],
    "history": [{"key": "/coopr-router/history/00001/00000000000000000002",
                 "value": {"shard": 1, "from": "dc1", "to": "dc2", "prev_epoch": 2},
                 "create_revision": 10, "mod_revision": 10}],
}


def write(rid, dc, epoch, status=201, t=1.0):
    return {"dc": dc, "kind": "write", "method": "POST", "path": "/v2/nodes", "rid": rid,
            "shard": 1, "t0": t, "t1": t + 0.01, "status": status,
            "h": {"x-coopr-router-dc": dc, "x-coopr-router-epoch": str(epoch)}}


def entry(rid, epoch, cluster="00000001", status=201):
    return {"method": "POST", "path": "/v2/nodes", "cluster_id": cluster, "epoch": str(epoch),
            "request_id": rid, "status": status}


def read(rid, dc, seen, t0, t1, age="0"):
    return {"dc": dc, "kind": "read", "method": "GET", "rid": rid, "cluster": "00000002",
            "t0": t0, "t1": t1, "status": 200, "seen": seen,
            "h": {"x-coopr-router-route": "replica", "age": age}}


def config(seq, t1):
    return {"dc": "dc2", "kind": "config", "method": "PUT", "rid": f"c{seq}", "cluster": "00000002",
            "seq": seq, "t0": t1 - 0.01, "t1": t1, "status": 200,
            "h": {"x-coopr-router-dc": "dc2", "x-coopr-router-epoch": "2"}}


def kinds(records, logs):
    bad, _ = checker.check(records, logs, OWNERSHIP)
    return sorted(k for k, _ in bad)


class Checker(unittest.TestCase):
    def test_owner_epochs_follow_history(self):
        o = checker.owner_epochs(OWNERSHIP)
        self.assertEqual(o[1], {2: "dc1", 10: "dc2"})
        self.assertEqual(o[2], {2: "dc2"})

    def test_clean_run_passes(self):
        recs = [write("a", "dc1", 2), write("b", "dc2", 10)]
        logs = {"dc1": [entry("a", 2)], "dc2": [entry("b", 10)]}
        self.assertEqual(kinds(recs, logs), [])

    def test_acknowledged_write_missing_is_lost(self):
        self.assertEqual(kinds([write("a", "dc1", 2)], {"dc1": [], "dc2": []}), ["lost"])

    def test_write_in_another_dc_or_epoch_is_lost(self):
        self.assertIn("lost", kinds([write("a", "dc1", 2)], {"dc2": [entry("a", 10)]}))
        self.assertIn("lost", kinds([write("a", "dc2", 10)], {"dc2": [entry("a", 11)]}))

    def test_refused_write_need_not_be_anywhere(self):
        self.assertEqual(kinds([write("a", "dc1", 2, status=503)], {"dc1": []}), [])

    def test_write_by_old_owner_after_move_is_split_brain(self):
        # dc1 applies at epoch 10, at which dc2 owns shard 1.
        self.assertEqual(kinds([], {"dc1": [entry("x", 10)]}), ["split_brain"])
        # An epoch that never existed is split brain too.
        self.assertEqual(kinds([], {"dc2": [entry("x", 5)]}), ["split_brain"])

    def test_rejected_log_entries_are_not_applied(self):
        self.assertEqual(kinds([], {"dc1": [entry("x", 10, status=409)]}), [])

    def test_same_request_applied_twice_is_duplicate(self):
        recs = [write("a", "dc1", 2)]
        logs = {"dc1": [entry("a", 2)], "dc2": [entry("a", 10)]}
        self.assertEqual(kinds(recs, logs), ["duplicate"])

    def test_held_write_applied_once_by_the_answering_dc(self):
        held = write("h", "dc2", 10)
        held["h"]["x-coopr-router-held-ms"] = "6400"
        self.assertEqual(kinds([held], {"dc2": [entry("h", 10)]}), [])
        # Applied twice (also a duplicate), or by another DC than the one that answered.
        self.assertIn("held_twice", kinds([held], {"dc1": [entry("h", 2)], "dc2": [entry("h", 10)]}))
        self.assertIn("held_twice", kinds([held], {"dc1": [entry("h", 2)]}))
        # An error answer: at most once.
        failed = dict(held, status=502)
        self.assertEqual(kinds([failed], {"dc2": []}), [])
        self.assertIn("held_twice", kinds([failed], {"dc1": [entry("h", 2)], "dc2": [entry("h", 10)]}))

    def test_replica_going_backwards(self):
        recs = [read("r1", "dc1", 5, 1.0, 1.1), read("r2", "dc1", 4, 1.2, 1.3)]
        self.assertEqual(kinds(recs, {}), ["backwards"])

    def test_overlapping_reads_may_disagree(self):
        recs = [read("r1", "dc1", 5, 1.0, 1.3), read("r2", "dc1", 4, 1.2, 1.4)]
        self.assertEqual(kinds(recs, {}), [])

    def test_other_dcs_reads_are_separate(self):
        recs = [read("r1", "dc1", 5, 1.0, 1.1), read("r2", "dc3", 4, 1.2, 1.3)]
        self.assertEqual(kinds(recs, {}), [])

    def test_state_older_than_age_says(self):
        # seq 3 acknowledged at t=10; a read at t=20 with Age 1 shows seq 2.
        recs = [config(2, 5.0), config(3, 10.0), read("r", "dc1", 2, 20.0, 20.1, age="1")]
        self.assertEqual(kinds(recs, {"dc2": [entry("c2", 2, "00000002"),
                                             entry("c3", 2, "00000002")]}), ["stale_age"])
        # With Age 10 the same read is honest.
        recs[-1] = read("r", "dc1", 2, 20.0, 20.1, age="10")
        self.assertEqual(kinds(recs, {"dc2": [entry("c2", 2, "00000002"),
                                             entry("c3", 2, "00000002")]}), [])

    def test_unavailability_window(self):
        recs = [write("a", "dc1", 2, t=1.0), write("b", "dc1", 2, status=503, t=2.0),
                write("c", "dc1", 2, status=0, t=3.0), write("d", "dc1", 10, t=5.0)]
        figs = checker.figures(recs)
        self.assertEqual(figs["unavailable_per_shard"], {1: "dc1 3010 ms"})
        self.assertEqual(figs["errors"], {"write 503": 1, "write 0": 1})


if __name__ == "__main__":
    unittest.main()
