//! The built-in bucket store: an S3-compatible origin on disk.
