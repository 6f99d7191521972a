//! The label values with cached request handles (routes, classes, status classes) and the slot
//! of a combination (pure).

/// The route kinds with cached handles (`replica` is reserved for replica reads).
pub(super) const ROUTES: [&str; 4] = ["local", "forwarded", "replica", "error"];
/// Request classes; `none` is a request refused before it could be classified.
pub(super) const CLASSES: [&str; 5] = ["read", "write", "local", "global", "none"];
pub(super) const STATUSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
pub(super) const SLOTS: usize = ROUTES.len() * CLASSES.len() * STATUSES.len();

/// The label value of a status code: `2xx`, `4xx`, ...
pub fn status_class(status: u16) -> &'static str {
    STATUSES[status_index(status)]
}

pub(super) fn status_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => STATUSES.len() - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let rows = [
            (101, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (421, "4xx"),
            (599, "5xx"),
            (600, "other"),
        ];
        for (code, want) in rows {
            assert_eq!(status_class(code), want, "{code}");
        }
    }
}
