//! The S3 side of additional checksums: the claim a request makes, read from its headers;
//! the check of a received body against it; the checksum fields of answers.

use s3s::{s3_error, S3Error, S3Result};

use crate::origin::checksum::{self, Algorithm, ChecksumError, Claim, Fields, Stored};
use crate::origin::transfer::Received;

pub(super) fn map_checksum(e: ChecksumError) -> S3Error {
    match e {
        ChecksumError::Invalid(m) => s3_error!(InvalidRequest, "{m}"),
        e @ ChecksumError::Mismatch(_) => s3_error!(BadDigest, "{e}"),
    }
}

/// A header's value when it is sent once and is text.
fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checksum a request claims for its body (PutObject, UploadPart, a form upload): the
/// values s3s parsed into the operation's input (`values`, in [`checksum::ALL`]'s order, from
/// the headers or a form's fields), its algorithm (`x-amz-sdk-checksum-algorithm`, else the
/// input's), and the trailer the headers announce.
pub(super) fn request_claim(
    headers: &http::HeaderMap,
    values: [Option<&str>; 5],
    algorithm: Option<&str>,
) -> S3Result<Option<Claim>> {
    checksum::claim(Fields {
        values,
        sdk_algorithm: header(headers, "x-amz-sdk-checksum-algorithm").or(algorithm),
        trailer: header(headers, "x-amz-trailer"),
    })
    .map_err(map_checksum)
}

/// Checks what was received against the claim (its value from a header or, now that the body
/// has been read, the trailer) and returns the checksum to store.
pub(super) fn check_received(
    claim: Option<&Claim>,
    algorithm: Algorithm,
    trailers: Option<&s3s::TrailingHeaders>,
    received: &Received,
) -> S3Result<Stored> {
    if let Some(claim) = claim {
        let trailers = checksum::trailers_of(trailers);
        checksum::verify(claim, trailers.as_ref(), &received.checksum).map_err(map_checksum)?;
    }
    Ok(Stored::full(algorithm, &received.checksum))
}

/// Sets an s3s output's checksum fields (`checksum_crc32`.. and, with `type`, `checksum_type`)
/// from a stored checksum.
macro_rules! set_checksum {
    ($out:expr, $stored:expr) => {
        if let Some(stored) = $stored {
            let c = crate::origin::checksum::to_dto(stored);
            $out.checksum_crc32 = c.checksum_crc32;
            $out.checksum_crc32c = c.checksum_crc32c;
            $out.checksum_crc64nvme = c.checksum_crc64nvme;
            $out.checksum_sha1 = c.checksum_sha1;
            $out.checksum_sha256 = c.checksum_sha256;
        }
    };
    ($out:expr, $stored:expr, type) => {
        if let Some(stored) = $stored {
            set_checksum!($out, Some(stored));
            $out.checksum_type = Some(s3s::dto::ChecksumType::from(stored.kind.name().to_string()));
        }
    };
}
pub(super) use set_checksum;

/// The five checksum fields of an s3s value (an input, a part of a CompleteMultipartUpload
/// list), in [`checksum::ALL`]'s order.
macro_rules! checksum_values {
    ($p:expr) => {
        [
            $p.checksum_crc32.as_deref(),
            $p.checksum_crc32c.as_deref(),
            $p.checksum_crc64nvme.as_deref(),
            $p.checksum_sha1.as_deref(),
            $p.checksum_sha256.as_deref(),
        ]
    };
}
pub(super) use checksum_values;

/// The checksum values an s3s value gives: (algorithm, base64) for each.
macro_rules! given_checksums {
    ($p:expr) => {
        crate::origin::checksum::ALL
            .into_iter()
            .zip(crate::origin::s3::checksums::checksum_values!($p))
            .filter_map(|(a, v)| v.map(|v| (a, v.to_string())))
            .collect::<Vec<_>>()
    };
}
pub(super) use given_checksums;
