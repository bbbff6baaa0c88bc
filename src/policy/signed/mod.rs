//! CloudFront signed URLs and signed cookies: verification (per request, pure: the caller
//! passes the time and the client address) and signing (for `homefront sign-url`), in the
//! exact wire format of botocore's `CloudFrontSigner` and `@aws-sdk/cloudfront-signer`.

mod keys;
mod policy_doc;
mod sign;
#[cfg(test)]
mod test_support;
mod verify;

pub use keys::{TrustedKeys, VerifyKey};
pub use policy_doc::{canned_policy, parse_policy, Policy};
pub use sign::{sign_cookies, sign_url, SignSpec};
pub use verify::{has_signing_params, strip_signing_params, url_b64encode, verify, ViewerRequest};

/// Query parameters that carry the signature; never forwarded, never in the cache key.
pub const SIGNING_PARAMS: [&str; 5] = ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// The 403 reasons, with CloudFront's codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedError {
    MissingKey,
    InvalidKey,
    MalformedSignature,
    MalformedPolicy,
    AccessDenied,
}

impl SignedError {
    pub fn code(self) -> &'static str {
        match self {
            SignedError::MissingKey => "MissingKey",
            SignedError::InvalidKey => "InvalidKey",
            SignedError::MalformedSignature => "MalformedSignature",
            SignedError::MalformedPolicy => "MalformedPolicy",
            SignedError::AccessDenied => "AccessDenied",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            SignedError::MissingKey => "Missing Key-Pair-Id query parameter or cookie value",
            SignedError::InvalidKey => "Unknown Key",
            SignedError::MalformedSignature => "Could not unencode Signature",
            SignedError::MalformedPolicy => "Malformed Policy",
            SignedError::AccessDenied => "Access denied",
        }
    }
}
