//! Behavior selection: the first behavior whose path pattern (`policy::path_pattern`)
//! matches the request path; the default `*` is last.

use crate::config::model::{Behavior, Distribution};

/// First behavior of `dist` whose pattern matches `path` (the query string already removed).
/// The compiled config guarantees the last behavior is `*`, so this always finds one.
pub fn select(dist: &Distribution, path: impl AsRef<[u8]>) -> Option<(usize, &Behavior)> {
    let path = path.as_ref();
    dist.behaviors
        .iter()
        .enumerate()
        .find(|(_, b)| b.path_pattern.matches(path))
}
