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

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// (lo, hi, DC name), by lo.
    pub pins: Vec<(u64, u64, String)>,
    pub duplicates: Vec<Duplicate>,
    pub counters: Vec<CounterFix>,
}

/// Plans the adoption of `lists` (DC name -> its clusters) under `dcs`.
///
/// Every id found in exactly one DC is pinned there. Pins are ranges: consecutive ids (in the
/// order of every id found anywhere) held by the same DC form one range, so a range may span ids
/// no DC holds (deleted, or skipped by an increment): no Coopr creates them again once its
/// counter is above every existing id, which is what the counters in the plan are. A duplicate
/// id breaks a range and is not pinned.
pub fn plan(dcs: &[DcIds], lists: &BTreeMap<String, Vec<Listed>>) -> Plan {
    let mut by_id: BTreeMap<u64, Vec<(String, Listed)>> = BTreeMap::new();
    for (dc, list) in lists {
        for c in list {
            by_id.entry(c.id).or_default().push((dc.clone(), c.clone()));
        }
    }
    let mut pins: Vec<(u64, u64, String)> = Vec::new();
    let mut duplicates = Vec::new();
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
        match pins.last_mut() {
            Some((_, hi, d)) if open && *d == dc => *hi = id,
            _ => pins.push((id, id, dc)),
        }
        open = true;
    }
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
        duplicates,
        counters,
    }
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
        let p = plan(&dcs(), &lists);
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
        let p = plan(&dcs(), &lists);
        assert_eq!(p.pins, vec![(1, 500, "dc1".to_string())]);
        assert!(p.duplicates.is_empty());
        assert_eq!(p.counters[1].counter, 503);
        let empty = plan(&dcs(), &BTreeMap::new());
        assert!(empty.pins.is_empty());
        assert_eq!(
            empty.counters.iter().map(|f| f.counter).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn interleaved_dcs_alternate_ranges() {
        let mut lists = BTreeMap::new();
        lists.insert("dc1".to_string(), vec![c(1, "a"), c(4, "b"), c(5, "c")]);
        lists.insert("dc2".to_string(), vec![c(2, "d"), c(3, "e")]);
        let p = plan(&dcs(), &lists);
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
