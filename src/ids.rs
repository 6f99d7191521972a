//! Coopr identifiers: parsing and normalising cluster ids, task ids and job ids, and formatting
//! them the way Coopr does (`%08d`). Pure functions; no I/O.
//!
//! Coopr stores cluster ids as a Java `long` and parses them with `Long.parseLong`, so `42`,
//! `0042` and `00000042` name the same cluster. The router normalises every id the same way, and
//! refuses what Coopr could not parse: anything but 1 to 19 ASCII digits, or a value past
//! `i64::MAX`.

use std::fmt;

/// A normalised Coopr cluster id: a non-negative integer no larger than `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(u64);

/// Why a piece of text is not a cluster id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("cluster id is empty")]
    Empty,
    #[error("cluster id {0:?} is not a number")]
    NotNumeric(String),
    #[error("cluster id {0:?} has more than 19 digits")]
    TooLong(String),
    #[error("cluster id {0:?} is larger than Coopr can store")]
    TooLarge(String),
}

/// The most digits a cluster id may have (`i64::MAX` has 19).
pub const MAX_ID_DIGITS: usize = 19;

impl ClusterId {
    /// Builds an id from a number; `None` past `i64::MAX`.
    pub fn new(n: u64) -> Option<Self> {
        (n <= i64::MAX as u64).then_some(ClusterId(n))
    }

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses a cluster id as Coopr would: 1 to 19 ASCII digits, leading zeros allowed.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::NotNumeric(clip(text)));
        }
        if text.len() > MAX_ID_DIGITS {
            return Err(IdError::TooLong(clip(text)));
        }
        // At most 19 digits, so this fits in a u64; Coopr's limit is i64::MAX.
        let mut n: u64 = 0;
        for b in text.bytes() {
            n = n * 10 + u64::from(b - b'0');
        }
        ClusterId::new(n).ok_or_else(|| IdError::TooLarge(clip(text)))
    }

    /// Parses the cluster id out of a job id (`00000042-107`) or task id (`00000042-107-1234`):
    /// the text before the first `-`.
    pub fn from_task_or_job(text: &str) -> Result<Self, IdError> {
        let head = text.split('-').next().unwrap_or(text);
        ClusterId::parse(head)
    }

    /// The shard this cluster belongs to: `id mod shard_count`. `shard_count` must be > 0.
    pub fn shard(self, shard_count: u32) -> u32 {
        // shard_count > 0 is guaranteed by config validation; max(1) keeps this total anyway.
        (self.0 % u64::from(shard_count.max(1))) as u32
    }
}

/// Formats the id as Coopr does: zero-padded to at least 8 digits.
impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

/// Whether `raw` is already an id as Coopr writes it (`%08d`): exactly 8 digits, or more
/// without a leading zero.
fn is_canonical(raw: &str) -> bool {
    raw.bytes().all(|b| b.is_ascii_digit())
        && (raw.len() == 8 || (raw.len() > 8 && !raw.starts_with('0')))
}

/// The path with its cluster id written as Coopr writes it, for `/v2/clusters/{id}[/...]`
/// whose id is written otherwise (`/v2/clusters/42/abort` -> `/v2/clusters/00000042/abort`);
/// `None` when there is nothing to change. Coopr builds job ids from the path id as written,
/// so an unpadded id would give jobs (`42-007`) that its own plan lookups (under `00000042`)
/// do not find. Segments are compared percent-decoded (as Coopr matches them); everything but
/// the id is left exactly as it was.
pub fn canonical_cluster_path(path: &str) -> Option<String> {
    // The common spelling first, with no decoding and no allocation: `/v2/clusters/` and an
    // id of plain digits, already as Coopr writes it.
    if let Some(rest) = path.strip_prefix("/v2/clusters/") {
        let end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
        if is_canonical(&rest[..end]) {
            return None;
        }
    }
    fn decoded(seg: &str) -> std::borrow::Cow<'_, str> {
        percent_encoding::percent_decode_str(seg).decode_utf8_lossy()
    }
    let mut seen = 0;
    let mut offset = 0;
    for seg in path.split('/') {
        let start = offset;
        offset += seg.len() + 1;
        if seg.is_empty() {
            continue;
        }
        seen += 1;
        match seen {
            1 if decoded(seg) != "v2" => return None,
            2 if decoded(seg) != "clusters" => return None,
            3 => {
                let raw = decoded(seg);
                if is_canonical(&raw) {
                    return None;
                }
                let id = ClusterId::parse(&raw).ok()?;
                return Some(format!(
                    "{}{id}{}",
                    &path[..start],
                    &path[start + seg.len()..]
                ));
            }
            _ => {}
        }
    }
    None
}

/// Error messages quote at most this much of the offending text.
fn clip(text: &str) -> String {
    const MAX: usize = 40;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Formats a job id: `<cluster>-<job number padded to 3>`.
pub fn job_id(cluster: ClusterId, job: u64) -> String {
    format!("{cluster}-{job:03}")
}

/// Formats a task id: `<cluster>-<job padded to 3>-<task padded to 3>`.
pub fn task_id(cluster: ClusterId, job: u64, task: u64) -> String {
    format!("{cluster}-{job:03}-{task:03}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let ok = [("42", 42), ("0042", 42), ("00000042", 42), ("0", 0)];
        for (text, n) in ok {
            assert_eq!(ClusterId::parse(text).map(ClusterId::get), Ok(n), "{text}");
        }
        assert_eq!(ClusterId::parse(""), Err(IdError::Empty));
        assert!(matches!(
            ClusterId::parse("-1"),
            Err(IdError::NotNumeric(_))
        ));
        assert!(matches!(
            ClusterId::parse("+1"),
            Err(IdError::NotNumeric(_))
        ));
        assert!(matches!(
            ClusterId::parse("4 2"),
            Err(IdError::NotNumeric(_))
        ));
        assert!(matches!(
            ClusterId::parse("٤٢"),
            Err(IdError::NotNumeric(_))
        ));
        assert!(matches!(
            ClusterId::parse("12345678901234567890"),
            Err(IdError::TooLong(_))
        ));
        assert!(matches!(
            ClusterId::parse("9999999999999999999"),
            Err(IdError::TooLarge(_))
        ));
        assert_eq!(
            ClusterId::parse("9223372036854775807").map(ClusterId::get),
            Ok(i64::MAX as u64)
        );
    }

    #[test]
    fn formats_like_coopr() {
        let id = ClusterId::parse("42").unwrap();
        assert_eq!(id.to_string(), "00000042");
        assert_eq!(job_id(id, 7), "00000042-007");
        assert_eq!(task_id(id, 107, 1234), "00000042-107-1234");
        assert_eq!(
            ClusterId::from_task_or_job("00000005-1234-56789")
                .unwrap()
                .get(),
            5
        );
    }

    proptest! {
        #[test]
        fn every_id_maps_to_one_shard_in_range(n in 0u64..=i64::MAX as u64, count in 1u32..4096) {
            let id = ClusterId::new(n).unwrap();
            let s = id.shard(count);
            prop_assert!(s < count);
            prop_assert_eq!(u64::from(s), n % u64::from(count));
            // Padding never changes the shard.
            let padded = ClusterId::parse(&format!("{n:019}")).unwrap();
            prop_assert_eq!(padded.shard(count), s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = ClusterId::parse(&s);
            let _ = ClusterId::from_task_or_job(&s);
        }

        #[test]
        fn display_roundtrips(n in 0u64..=i64::MAX as u64) {
            let id = ClusterId::new(n).unwrap();
            prop_assert_eq!(ClusterId::parse(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn cluster_paths_are_written_as_coopr_writes_ids() {
        let table = [
            ("/v2/clusters/42", Some("/v2/clusters/00000042")),
            ("/v2/clusters/42/abort", Some("/v2/clusters/00000042/abort")),
            (
                "/v2//clusters//0042/plans/42-007",
                Some("/v2//clusters//00000042/plans/42-007"),
            ),
            ("/v2/%63lusters/7", Some("/v2/%63lusters/00000007")),
            ("/v2/clusters/%34%32", Some("/v2/clusters/00000042")),
            ("/v2/clusters/000000042", Some("/v2/clusters/00000042")),
            ("/v2/clusters/123456789", None),
            ("/v2/clusters/00000042", None),
            ("/v2/clusters/00000042/status", None),
            ("/v2/clusters", None),
            ("/v2/clusters/", None),
            ("/v2/nodes/42", None),
            ("/v2/clusters/abc", None),
            ("/status", None),
        ];
        for (path, want) in table {
            assert_eq!(canonical_cluster_path(path).as_deref(), want, "{path}");
        }
    }
}
