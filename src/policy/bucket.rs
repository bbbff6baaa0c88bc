//! Buckets: the versioning state a bucket's configuration can set.

use serde::{Deserialize, Serialize};

/// A bucket's versioning state, once it has been set (S3: a bucket never returns to
/// unversioned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
}
