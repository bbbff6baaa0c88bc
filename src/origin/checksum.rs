//! S3's additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256): which one a request
//! claims and how, the hashers, what is stored beside an object, and the composite and
//! full-object values of a multipart upload. Pure rules; the S3 operations read them.
//!
//! Every object gets exactly one checksum, as on S3 since 2025: the algorithm the client
//! named, else CRC64NVME. It is computed in the same pass as the MD5 of the ETag.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

pub const ALL: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

/// The algorithm of objects whose upload named none.
pub const DEFAULT: Algorithm = Algorithm::Crc64Nvme;

impl Algorithm {
    /// As S3 spells it in `x-amz-checksum-algorithm` and XML (`CRC32`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header that carries its value (`x-amz-checksum-crc32`).
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// By name, in any case (S3 accepts `crc32` and `CRC32`).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether a multipart upload may use it for a full-object checksum (the CRCs, which
    /// combine) or a composite one (all but CRC64NVME).
    pub fn allows(self, kind: Kind) -> bool {
        match kind {
            Kind::FullObject => matches!(self, Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme),
            Kind::Composite => self != Algorithm::Crc64Nvme,
        }
    }

    /// The kind a multipart upload gets when it names only the algorithm.
    pub fn default_kind(self) -> Kind {
        if self == Algorithm::Crc64Nvme {
            Kind::FullObject
        } else {
            Kind::Composite
        }
    }

    pub fn hasher(self) -> Hasher {
        use s3s::crypto::Checksum as _;
        match self {
            Algorithm::Crc32 => Hasher::Crc32(s3s::crypto::Crc32::new()),
            Algorithm::Crc32c => Hasher::Crc32c(s3s::crypto::Crc32c::new()),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(s3s::crypto::Crc64Nvme::new()),
            Algorithm::Sha1 => Hasher::Sha1(s3s::crypto::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(s3s::crypto::Sha256::new()),
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// A multipart object's checksum: of the whole object, or of the parts' checksums (`-N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    #[serde(rename = "COMPOSITE")]
    Composite,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FullObject => "FULL_OBJECT",
            Kind::Composite => "COMPOSITE",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::FullObject, Kind::Composite]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }
}

pub enum Hasher {
    Crc32(s3s::crypto::Crc32),
    Crc32c(s3s::crypto::Crc32c),
    Crc64Nvme(s3s::crypto::Crc64Nvme),
    Sha1(s3s::crypto::Sha1),
    Sha256(s3s::crypto::Sha256),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        use s3s::crypto::Checksum as _;
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(h) => h.update(data),
            Hasher::Crc64Nvme(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        use s3s::crypto::Checksum as _;
        match self {
            Hasher::Crc32(h) => h.finalize().to_vec(),
            Hasher::Crc32c(h) => h.finalize().to_vec(),
            Hasher::Crc64Nvme(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().as_ref().to_vec(),
            Hasher::Sha256(h) => h.finalize().as_ref().to_vec(),
        }
    }
}

pub fn base64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

/// A base64 digest of `algorithm`'s length, decoded; `None` when it is not one.
pub fn decode(algorithm: Algorithm, value: &str) -> Option<Vec<u8>> {
    let value = value.trim();
    // OpenSSL's decoder skips whitespace inside: a value with any is not one we issued.
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let bytes = openssl::base64::decode_block(value).ok()?;
    (bytes.len() == algorithm.digest_len() && base64(&bytes) == value).then_some(bytes)
}

/// What is stored beside an object (or a part): its checksum, base64, with `-N` for a
/// composite one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub algorithm: Algorithm,
    pub value: String,
    pub kind: Kind,
}

impl Stored {
    pub fn full(algorithm: Algorithm, digest: &[u8]) -> Stored {
        Stored {
            algorithm,
            value: base64(digest),
            kind: Kind::FullObject,
        }
    }
}

/// Why a request's checksum is refused: `Invalid` is S3's 400 InvalidRequest, `Mismatch`
/// (the body is not the one the checksum was made of) its 400 BadDigest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumError {
    Invalid(String),
    Mismatch(Algorithm),
}

impl std::fmt::Display for ChecksumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChecksumError::Invalid(m) => f.write_str(m),
            ChecksumError::Mismatch(a) => write!(
                f,
                "The {} you specified did not match the calculated checksum.",
                a.name()
            ),
        }
    }
}

/// The checksum a request claims for its body: the algorithm, and the value when it came in
/// a header (`None`: it comes in the aws-chunked trailer, after the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub algorithm: Algorithm,
    pub value: Option<Vec<u8>>,
}

/// The checksum fields of a request, as sent: the value of each `x-amz-checksum-*` header (in
/// [`ALL`]'s order), `x-amz-sdk-checksum-algorithm` and `x-amz-trailer`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields<'a> {
    pub values: [Option<&'a str>; 5],
    pub sdk_algorithm: Option<&'a str>,
    pub trailer: Option<&'a str>,
}

/// What `fields` claim, checked as S3 checks them: one checksum at most, a valid value of the
/// algorithm's length, a trailer that names a checksum header, an SDK algorithm that agrees.
pub fn claim(fields: Fields<'_>) -> Result<Option<Claim>, ChecksumError> {
    let mut claims = Vec::new();
    for (algorithm, value) in ALL.into_iter().zip(fields.values) {
        if let Some(v) = value {
            let bytes = decode(algorithm, v).ok_or_else(|| {
                ChecksumError::Invalid(format!("Value for {} header is invalid.", algorithm.header()))
            })?;
            claims.push(Claim {
                algorithm,
                value: Some(bytes),
            });
        }
    }
    if let Some(t) = fields.trailer.map(str::trim).filter(|t| !t.is_empty()) {
        let algorithm = ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                ChecksumError::Invalid(format!(
                    "The value specified in the x-amz-trailer header is not supported: {}",
                    t.replace(['<', '>', '&'], "")
                ))
            })?;
        claims.push(Claim { algorithm, value: None });
    }
    if claims.len() > 1 {
        return Err(ChecksumError::Invalid(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.".into(),
        ));
    }
    let claim = claims.pop();
    if let Some(sdk) = fields.sdk_algorithm {
        let named = Algorithm::from_name(sdk).ok_or_else(|| {
            ChecksumError::Invalid("Value for x-amz-sdk-checksum-algorithm header is invalid.".into())
        })?;
        match &claim {
            Some(c) if c.algorithm != named => {
                return Err(ChecksumError::Invalid(
                    "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
                ))
            }
            Some(_) => {}
            None => {
                return Err(ChecksumError::Invalid(
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found."
                        .into(),
                ))
            }
        }
    }
    Ok(claim)
}

/// The value a claim made in the trailer, read from the trailing headers once the body has
/// been read; a claim made in a header needs no trailer.
pub fn trailer_value(claim: &Claim, trailers: Option<&http::HeaderMap>) -> Result<Vec<u8>, ChecksumError> {
    if let Some(v) = &claim.value {
        return Ok(v.clone());
    }
    let sent = trailers
        .and_then(|t| t.get(claim.algorithm.header()))
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ChecksumError::Invalid(format!(
                "The request's x-amz-trailer header names {} but its trailer does not carry it.",
                claim.algorithm.header()
            ))
        })?;
    decode(claim.algorithm, sent).ok_or_else(|| {
        ChecksumError::Invalid(format!(
            "Value for {} trailing header is invalid.",
            claim.algorithm.header()
        ))
    })
}

/// Checks a received body's digest against what the request claimed (in a header, or in the
/// trailer that came after the body).
pub fn verify(claim: &Claim, trailers: Option<&http::HeaderMap>, computed: &[u8]) -> Result<(), ChecksumError> {
    let claimed = trailer_value(claim, trailers)?;
    if claimed == computed {
        Ok(())
    } else {
        Err(ChecksumError::Mismatch(claim.algorithm))
    }
}

/// The trailing headers of an aws-chunked body, once it has been read.
pub fn trailers_of(handle: Option<&s3s::TrailingHeaders>) -> Option<http::HeaderMap> {
    handle.and_then(|t| t.read(|h| h.clone()))
}

/// The composite checksum of a multipart object: the algorithm over the concatenated binary
/// checksums of its parts, then `-N`.
pub fn composite(algorithm: Algorithm, parts: &[Vec<u8>]) -> String {
    let mut h = algorithm.hasher();
    for p in parts {
        h.update(p);
    }
    format!("{}-{}", base64(&h.finish()), parts.len())
}

/// A [`Stored`] checksum as the s3s fields of an answer.
pub fn to_dto(stored: &Stored) -> s3s::dto::Checksum {
    let mut c = s3s::dto::Checksum {
        checksum_type: Some(s3s::dto::ChecksumType::from(stored.kind.name().to_string())),
        ..Default::default()
    };
    let v = Some(stored.value.clone());
    match stored.algorithm {
        Algorithm::Crc32 => c.checksum_crc32 = v,
        Algorithm::Crc32c => c.checksum_crc32c = v,
        Algorithm::Crc64Nvme => c.checksum_crc64nvme = v,
        Algorithm::Sha1 => c.checksum_sha1 = v,
        Algorithm::Sha256 => c.checksum_sha256 = v,
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(values: &[(Algorithm, &'a str)]) -> Fields<'a> {
        let mut f = Fields::default();
        for (a, v) in values {
            let i = ALL.iter().position(|x| x == a).unwrap();
            f.values[i] = Some(v);
        }
        f
    }

    #[test]
    fn digests_match_the_published_values() {
        // "Hello world" as the AWS documentation and SDK tests give it.
        let d = |a: Algorithm| base64(&a.digest(b"Hello world"));
        assert_eq!(d(Algorithm::Crc32), "i9aeUg==");
        assert_eq!(d(Algorithm::Crc32c), "crUfeA==");
        assert_eq!(d(Algorithm::Sha1), "e1AsOh9IyGCa4hLN+2Od7jlnP14=");
        assert_eq!(d(Algorithm::Sha256), "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw=");
        // CRC-64/NVME of "123456789" is 0xae8b14860a799888.
        assert_eq!(
            Algorithm::Crc64Nvme.digest(b"123456789"),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        // Fed in pieces, the same.
        let mut h = Algorithm::Crc64Nvme.hasher();
        h.update(b"1234");
        h.update(b"56789");
        assert_eq!(h.finish(), Algorithm::Crc64Nvme.digest(b"123456789"));
    }

    #[test]
    fn names_and_kinds() {
        assert_eq!(Algorithm::from_name("crc32c"), Some(Algorithm::Crc32c));
        assert_eq!(Algorithm::from_name("CRC64NVME"), Some(Algorithm::Crc64Nvme));
        assert_eq!(Algorithm::from_name("md5"), None);
        assert!(!Algorithm::Sha256.allows(Kind::FullObject));
        assert!(!Algorithm::Crc64Nvme.allows(Kind::Composite));
        assert!(Algorithm::Crc32.allows(Kind::FullObject) && Algorithm::Crc32.allows(Kind::Composite));
        assert_eq!(Algorithm::Crc64Nvme.default_kind(), Kind::FullObject);
        assert_eq!(Algorithm::Sha1.default_kind(), Kind::Composite);
        assert_eq!(Kind::from_name("full_object"), Some(Kind::FullObject));
        // Stored spellings are S3's.
        let s = Stored::full(Algorithm::Crc32c, &[1, 2, 3, 4]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"algorithm":"CRC32C","value":"AQIDBA==","kind":"FULL_OBJECT"}"#
        );
        assert_eq!(serde_json::from_str::<Stored>(&json).unwrap(), s);
    }

    #[test]
    fn values_must_be_canonical_base64_of_the_right_length() {
        assert_eq!(decode(Algorithm::Crc32, "i9aeUg=="), Some(vec![0x8b, 0xd6, 0x9e, 0x52]));
        for bad in [
            "",
            "i9aeUg",
            "i9ae Ug==",
            "i9aeUgAA",
            "!!!!!!!!",
            "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw=",
        ] {
            assert_eq!(decode(Algorithm::Crc32, bad), None, "{bad}");
        }
    }

    #[test]
    fn claims_as_s3_checks_them() {
        assert_eq!(claim(Fields::default()), Ok(None));
        let one = claim(fields(&[(Algorithm::Crc32, "i9aeUg==")])).unwrap().unwrap();
        assert_eq!(one.algorithm, Algorithm::Crc32);
        assert_eq!(one.value.as_deref(), Some(&[0x8b, 0xd6, 0x9e, 0x52][..]));
        // Two checksums: refused.
        let two = fields(&[(Algorithm::Crc32, "i9aeUg=="), (Algorithm::Crc32c, "crUfeA==")]);
        assert!(matches!(claim(two), Err(ChecksumError::Invalid(_))));
        // A bad value names its header.
        let bad = claim(fields(&[(Algorithm::Sha256, "i9aeUg==")])).unwrap_err();
        assert!(bad.to_string().contains("x-amz-checksum-sha256"), "{bad}");
        // The trailer.
        let t = Fields {
            trailer: Some("x-amz-checksum-crc32c"),
            sdk_algorithm: Some("CRC32C"),
            ..Default::default()
        };
        assert_eq!(
            claim(t),
            Ok(Some(Claim {
                algorithm: Algorithm::Crc32c,
                value: None
            }))
        );
        let header_and_trailer = Fields {
            trailer: Some("x-amz-checksum-crc32c"),
            ..fields(&[(Algorithm::Crc32, "i9aeUg==")])
        };
        assert!(claim(header_and_trailer).is_err());
        assert!(claim(Fields {
            trailer: Some("x-amz-meta-a"),
            ..Default::default()
        })
        .is_err());
        // The SDK's algorithm must agree, and name something sent.
        let disagree = Fields {
            sdk_algorithm: Some("SHA256"),
            ..fields(&[(Algorithm::Crc32, "i9aeUg==")])
        };
        assert!(claim(disagree).is_err());
        let agree = Fields {
            sdk_algorithm: Some("crc32"),
            ..fields(&[(Algorithm::Crc32, "i9aeUg==")])
        };
        assert!(claim(agree).unwrap().is_some());
        assert!(claim(Fields {
            sdk_algorithm: Some("CRC32"),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn trailer_values() {
        let c = Claim {
            algorithm: Algorithm::Crc32,
            value: None,
        };
        let mut t = http::HeaderMap::new();
        assert!(trailer_value(&c, None).is_err());
        assert!(trailer_value(&c, Some(&t)).is_err());
        t.insert("x-amz-checksum-crc32", "i9aeUg==".parse().unwrap());
        assert_eq!(trailer_value(&c, Some(&t)).unwrap(), vec![0x8b, 0xd6, 0x9e, 0x52]);
        t.insert("x-amz-checksum-crc32", "nope".parse().unwrap());
        assert!(trailer_value(&c, Some(&t)).is_err());
        let sent = Claim {
            algorithm: Algorithm::Crc32,
            value: Some(vec![1]),
        };
        assert_eq!(
            verify(&sent, None, &[2]),
            Err(ChecksumError::Mismatch(Algorithm::Crc32))
        );
        assert_eq!(verify(&sent, None, &[1]), Ok(()));
        t.insert("x-amz-checksum-crc32", "AAAAAQ==".parse().unwrap());
        assert_eq!(verify(&c, Some(&t), &[0, 0, 0, 1]), Ok(()));
        assert!(verify(&c, Some(&t), &[0, 0, 0, 2]).is_err());
    }

    #[test]
    fn composite_values() {
        // The algorithm over the parts' binary checksums, then the part count.
        let parts = vec![Algorithm::Crc32.digest(b"a"), Algorithm::Crc32.digest(b"b")];
        let mut joined = parts[0].clone();
        joined.extend_from_slice(&parts[1]);
        assert_eq!(
            composite(Algorithm::Crc32, &parts),
            format!("{}-2", base64(&Algorithm::Crc32.digest(&joined)))
        );
        let dto = to_dto(&Stored {
            algorithm: Algorithm::Sha256,
            value: "x-2".into(),
            kind: Kind::Composite,
        });
        assert_eq!(dto.checksum_sha256.as_deref(), Some("x-2"));
        assert_eq!(dto.checksum_type.as_ref().map(|t| t.as_str()), Some("COMPOSITE"));
        assert!(dto.checksum_crc32.is_none());
    }
}
