//! Pure: the adoption plan for clusters that existed before the router. From every DC's list of
//! clusters: the pins that keep each cluster where it lives, the ids found in more than one DC
//! (never pinned: the operator decides), and per DC the id counter that puts its next ids in its
//! home shards, above every existing id.

use crate::routing::pins::next_counter;
use std::collections::BTreeMap;

/// One cluster as a DC's Coopr lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    pub tenant: String,
    pub name: String,
    /// `createTime` (ms since the epoch), when given.
    pub create_time: Option<u64>,
    pub status: String,
}

/// A DC as the plan sees it: its name and its Coopr id settings from the router's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcIds {
    pub name: String,
    pub id_start: u64,
    pub id_increment: u64,
}

/// An id found in several DCs, with what tells the clusters apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub id: u64,
    /// (DC name, the cluster there)
    pub copies: Vec<(String, Listed)>,
}

/// What a DC's Coopr must be set to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterFix {
    pub dc: String,
    pub start: u64,
    pub increment: u64,
    /// The value for the cluster id counter (ZooKeeper `/ids/clusters`).
    pub counter: u64,
    /// How many clusters it holds, and its highest id.
    pub clusters: usize,
    pub highest: Option<u64>,
}

/// An id that lives in one DC but is pinned to another: the operator must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub id: u64,
    /// Where the cluster lives.
    pub lives: String,
    /// Where the existing pin sends it.
    pub pinned: String,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The pins to add: (lo, hi, DC name), by lo; none overlaps an existing pin.
    pub pins: Vec<(u64, u64, String)>,
    /// Ids already pinned to the DC they live in.
    pub kept: usize,
    pub duplicates: Vec<Duplicate>,
    pub conflicts: Vec<Conflict>,
    pub counters: Vec<CounterFix>,
}

/// Plans the adoption of `lists` (DC name -> its clusters) under `dcs`, given the pins that
/// exist already (`existing`: lo, hi, DC name).
///
/// Every id found in exactly one DC is pinned there, unless an existing pin already says so (or
/// says another DC: a conflict, reported). Pins are ranges: consecutive ids (in the order of
/// every id found anywhere) held by the same DC form one range, so a range may span ids no DC
/// holds (deleted, or skipped by an increment): no Coopr creates them again once its counter is
/// above every existing id, which is what the counters in the plan are. A duplicate id, a kept
/// or conflicting one breaks a range, and ranges are cut around existing pins, so running the
/// plan again adds nothing.
pub fn plan(
    dcs: &[DcIds],
    lists: &BTreeMap<String, Vec<Listed>>,
    existing: &[(u64, u64, String)],
) -> Plan {
    let pinned = |id: u64| existing.iter().find(|(lo, hi, _)| *lo <= id && id <= *hi);
    let mut by_id: BTreeMap<u64, Vec<(String, Listed)>> = BTreeMap::new();
    for (dc, list) in lists {
        for c in list {
            by_id.entry(c.id).or_default().push((dc.clone(), c.clone()));
        }
    }
    let mut pins: Vec<(u64, u64, String)> = Vec::new();
    let mut duplicates = Vec::new();
    let mut conflicts = Vec::new();
    let mut kept = 0;
    // Whether the last range may grow (no duplicate since it ended).
    let mut open = false;
    for (id, mut copies) in by_id.clone() {
        copies.dedup_by(|a, b| a.0 == b.0);
        if copies.len() > 1 {
            duplicates.push(Duplicate { id, copies });
            open = false;
            continue;
        }
        let dc = copies.swap_remove(0).0;
        if let Some((_, _, to)) = pinned(id) {
            match *to == dc {
                true => kept += 1,
                false => conflicts.push(Conflict {
                    id,
                    lives: dc,
                    pinned: to.clone(),
                }),
            }
            open = false;
            continue;
        }
        match pins.last_mut() {
            Some((_, hi, d)) if open && *d == dc => *hi = id,
            _ => pins.push((id, id, dc)),
        }
        open = true;
    }
    let pins = pins
        .into_iter()
        .flat_map(|(lo, hi, dc)| {
            cut(lo, hi, existing)
                .into_iter()
                .map(move |(a, b)| (a, b, dc.clone()))
        })
        .collect();
    let highest = by_id.keys().next_back().copied().unwrap_or(0);
    let counters = dcs
        .iter()
        .map(|d| {
            let list = lists.get(&d.name).map_or(&[][..], Vec::as_slice);
            CounterFix {
                dc: d.name.clone(),
                start: d.id_start,
                increment: d.id_increment,
                counter: next_counter(highest, d.id_start, d.id_increment),
                clusters: list.len(),
                highest: list.iter().map(|c| c.id).max(),
            }
        })
        .collect();
    Plan {
        pins,
        kept,
        duplicates,
        conflicts,
        counters,
    }
}

/// `lo..=hi` without the ids of `existing` pins, as ranges.
fn cut(lo: u64, hi: u64, existing: &[(u64, u64, String)]) -> Vec<(u64, u64)> {
    let mut holes: Vec<(u64, u64)> = existing
        .iter()
        .filter(|(a, b, _)| *a <= hi && *b >= lo)
        .map(|(a, b, _)| (*a, *b))
        .collect();
    holes.sort_unstable();
    let mut out = Vec::new();
    let mut at = lo;
    for (a, b) in holes {
        if a > at {
            out.push((at, a - 1));
        }
        match b.checked_add(1) {
            Some(next) => at = at.max(next),
            None => return out,
        }
    }
    if at <= hi {
        out.push((at, hi));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, name: &str) -> Listed {
        Listed {
            id,
            tenant: "superadmin".into(),
            name: name.into(),
            create_time: Some(1000 + id),
            status: "active".into(),
        }
    }

    fn dcs() -> Vec<DcIds> {
        (1..=3)
            .map(|k| DcIds {
                name: format!("dc{k}"),
                id_start: k,
                id_increment: 3,
            })
            .collect()
    }

    #[test]
    fn ranges_per_dc_duplicates_apart_counters_above_everything() {
        let mut lists = BTreeMap::new();
        // dc1 ran alone with the defaults: ids 1..=6 (4 deleted); dc2 ran alone too: 1, 2, 9.
        lists.insert(
            "dc1".to_string(),
            vec![c(1, "a"), c(2, "b"), c(3, "c"), c(5, "e"), c(6, "f")],
        );
        lists.insert("dc2".to_string(), vec![c(1, "x"), c(2, "y"), c(9, "z")]);
        let p = plan(&dcs(), &lists, &[]);
        assert_eq!(
            p.pins,
            vec![(3, 6, "dc1".to_string()), (9, 9, "dc2".to_string())]
        );
        assert_eq!(
            p.duplicates.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(p.duplicates[0].copies[0].1.name, "a");
        assert_eq!(p.duplicates[0].copies[1].1.name, "x");
        let counters: Vec<(String, u64)> = p
            .counters
            .iter()
            .map(|f| (f.dc.clone(), f.counter))
            .collect();
        // Above 9, in each DC's partition: 10 % 3 == 1, 11 % 3 == 2, 12 % 3 == 0.
        assert_eq!(
            counters,
            vec![
                ("dc1".to_string(), 10),
                ("dc2".to_string(), 11),
                ("dc3".to_string(), 12)
            ]
        );
        assert_eq!(p.counters[2].clusters, 0);
        assert_eq!(p.counters[0].highest, Some(6));
    }

    #[test]
    fn one_existing_dc_is_one_range_and_an_empty_install_needs_nothing() {
        let mut lists = BTreeMap::new();
        lists.insert("dc1".to_string(), (1..=500).map(|i| c(i, "n")).collect());
        lists.insert("dc2".to_string(), vec![]);
        let p = plan(&dcs(), &lists, &[]);
        assert_eq!(p.pins, vec![(1, 500, "dc1".to_string())]);
        assert!(p.duplicates.is_empty());
        assert_eq!(p.counters[1].counter, 503);
        let empty = plan(&dcs(), &BTreeMap::new(), &[]);
        assert!(empty.pins.is_empty());
        assert_eq!(
            empty.counters.iter().map(|f| f.counter).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn existing_pins_are_kept_cut_out_or_reported() {
        let mut lists = BTreeMap::new();
        lists.insert("dc1".to_string(), (1..=10).map(|i| c(i, "n")).collect());
        lists.insert("dc2".to_string(), vec![c(20, "m")]);
        let all = plan(&dcs(), &lists, &[]);
        assert_eq!(
            all.pins,
            vec![(1, 10, "dc1".to_string()), (20, 20, "dc2".to_string())]
        );
        // Run again with what the first run wrote: nothing to add.
        let again = plan(&dcs(), &lists, &all.pins);
        assert!(again.pins.is_empty());
        assert_eq!(again.kept, 11);
        // A single pin (a misplaced create) inside dc1's ids, and a pin of a gap id (15) that
        // no DC lists: cut out; an id pinned to the wrong DC: a conflict.
        let existing = vec![
            (6, 6, "dc1".to_string()),
            (9, 9, "dc2".to_string()),
            (15, 15, "dc3".to_string()),
        ];
        lists.insert(
            "dc1".to_string(),
            (1..=10).chain([16]).map(|i| c(i, "n")).collect(),
        );
        let p = plan(&dcs(), &lists, &existing);
        assert_eq!(
            p.pins,
            vec![
                (1, 5, "dc1".to_string()),
                (7, 8, "dc1".to_string()),
                (10, 14, "dc1".to_string()),
                (16, 16, "dc1".to_string()),
                (20, 20, "dc2".to_string())
            ]
        );
        assert_eq!(p.kept, 1);
        assert_eq!(
            p.conflicts,
            vec![Conflict {
                id: 9,
                lives: "dc1".into(),
                pinned: "dc2".into()
            }]
        );
    }

    #[test]
    fn cut_ranges() {
        let e = |v: &[(u64, u64)]| -> Vec<(u64, u64, String)> {
            v.iter().map(|&(a, b)| (a, b, "x".to_string())).collect()
        };
        assert_eq!(cut(1, 10, &e(&[])), vec![(1, 10)]);
        assert_eq!(cut(1, 10, &e(&[(1, 10)])), vec![]);
        assert_eq!(
            cut(1, 10, &e(&[(0, 3), (5, 5), (9, 20)])),
            vec![(4, 4), (6, 8)]
        );
        assert_eq!(cut(5, 5, &e(&[(0, u64::MAX)])), vec![]);
    }

    #[test]
    fn interleaved_dcs_alternate_ranges() {
        let mut lists = BTreeMap::new();
        lists.insert("dc1".to_string(), vec![c(1, "a"), c(4, "b"), c(5, "c")]);
        lists.insert("dc2".to_string(), vec![c(2, "d"), c(3, "e")]);
        let p = plan(&dcs(), &lists, &[]);
        assert_eq!(
            p.pins,
            vec![
                (1, 1, "dc1".to_string()),
                (2, 3, "dc2".to_string()),
                (4, 5, "dc1".to_string())
            ]
        );
    }
}
