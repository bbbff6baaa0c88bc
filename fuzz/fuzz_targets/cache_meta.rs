//! The edge cache's meta files (`cache/<hh>/<key>.meta`), as they are read back from disk
//! at start-up and on every disk hit: `MetaFile::decode`, then pingora's
//! `CacheMeta::deserialize` of the response header and cache times it holds.
//!
//! The first input byte picks how the rest is used:
//! - 0: the rest is a meta file as found on disk;
//! - 1: the rest is a meta file's body, framed here with the right magic and checksum, so
//!   that mutations reach the field parser behind the checksum;
//! - 2: the rest describes an entry (fields, response status and headers, cache times),
//!   which is written as the cache writes it and read back.
//!
//! Checked: decoding any bytes gives a value or an `InvalidData` error, never a panic; what
//! decodes re-encodes to a file that decodes to the same value (and to the same bytes when
//! nothing trailed); a cache meta that deserializes serializes again and is then a fixed
//! point; a written entry reads back equal; a torn (truncated) meta file and one with any
//! single bit flipped are refused.
#![no_main]

use std::io::ErrorKind;
use std::time::{Duration, SystemTime};

use homefront::cache::{EntryLabel, MetaFile};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;

fn check_decoded(file: &[u8]) {
    let meta = match MetaFile::decode(file) {
        Ok(meta) => meta,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            return;
        }
    };
    let encoded = meta.encode();
    assert_eq!(MetaFile::decode(&encoded).expect("re-encoded meta"), meta);
    // A file of the format before hosts were recorded (HFC1) has no host, and is written
    // back in today's format with an empty one: 4 bytes longer.
    let v1 = file.starts_with(b"HFC1");
    assert!(!v1 || meta.label.host.is_empty(), "an HFC1 entry has no host");
    let allowance = if v1 { 4 } else { 0 };
    assert!(encoded.len() <= file.len() + allowance, "encoding grew");
    if !v1 && encoded.len() == file.len() {
        assert_eq!(encoded, file, "two encodings of one entry");
    }
    check_cache_meta(&meta.internal, &meta.header);
}

/// pingora's part: whatever deserializes is a fixed point after one serialization.
fn check_cache_meta(internal: &[u8], header: &[u8]) {
    let Ok(meta) = CacheMeta::deserialize(internal, header) else {
        return;
    };
    let (internal, header) = meta.serialize().expect("a cache meta that was read serializes");
    let again = CacheMeta::deserialize(&internal, &header).expect("a serialized cache meta reads back");
    assert_eq!(again.serialize().expect("serializes"), (internal, header));
}

/// A file framed with the magic and checksum an encoded meta file starts with.
fn frame(body: &[u8]) -> Vec<u8> {
    let empty = MetaFile {
        gen: 0,
        body_len: 0,
        body_crc: 0,
        label: EntryLabel {
            distribution: String::new(),
            host: String::new(),
            path: String::new(),
        },
        internal: Vec::new(),
        header: Vec::new(),
    };
    let magic = &empty.encode()[..4];
    let mut file = magic.to_vec();
    file.extend_from_slice(&crc32(body).to_le_bytes());
    file.extend_from_slice(body);
    file
}

/// CRC-32 (IEEE), bit by bit: the checksum the meta file format specifies.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A response as the cache would store it, from fuzz input.
fn cache_meta(u: &mut Unstructured<'_>) -> Result<Option<CacheMeta>> {
    let status: u16 = u.int_in_range(100..=999)?;
    let Ok(mut header) = ResponseHeader::build(status, None) else {
        return Ok(None);
    };
    for _ in 0..u.int_in_range(0..=8)? {
        let name: String = u.arbitrary()?;
        let value: Vec<u8> = u.arbitrary()?;
        // Names and values http refuses never reach the cache.
        let _ = header.append_header(name, value.as_slice());
    }
    let epoch = |secs: u32| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(secs));
    let created = epoch(u.arbitrary()?);
    let fresh_until = epoch(u.arbitrary()?);
    Ok(Some(CacheMeta::new(
        fresh_until,
        created,
        u.arbitrary()?,
        u.arbitrary()?,
        header,
    )))
}

fn check_written(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let (internal, header) = match cache_meta(&mut u)? {
        Some(meta) => meta.serialize().expect("a new cache meta serializes"),
        None => (u.arbitrary()?, u.arbitrary()?),
    };
    let meta = MetaFile {
        gen: u.arbitrary()?,
        body_len: u.arbitrary()?,
        body_crc: u.arbitrary()?,
        label: EntryLabel {
            distribution: u.arbitrary()?,
            host: u.arbitrary()?,
            path: u.arbitrary()?,
        },
        internal,
        header,
    };
    let encoded = meta.encode();
    let read = MetaFile::decode(&encoded).expect("a written meta file reads back");
    assert_eq!(read, meta);
    check_cache_meta(&read.internal, &read.header);

    let cut: usize = u.arbitrary()?;
    let torn = &encoded[..cut % encoded.len()];
    assert!(MetaFile::decode(torn).is_err(), "a torn meta file was accepted");
    let bit: u8 = u.arbitrary()?;
    let mut flipped = encoded.clone();
    flipped[cut % encoded.len()] ^= 1 << (bit % 8);
    assert!(MetaFile::decode(&flipped).is_err(), "a flipped bit went unnoticed");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_decoded(rest),
        1 => check_decoded(&frame(rest)),
        _ => {
            let _ = check_written(rest);
        }
    }
});
