//! Certificates: store, SNI selection, self-signed default.
