//! What the bucket store reads of an upload before s3s does: the head of a browser form
//! (`post_form::read_head`, which puts the file's name into the key's `${filename}`) and the
//! additional-checksum headers (`checksum::claim`, `checksum::decode`).
//!
//! Input: arbitrary bytes as a form body (with a boundary drawn from them), and a form built
//! from drawn fields, key, file name and cut point; checksum header values drawn likewise.
//!
//! Checked: nothing panics; on a built form, `read_head` finds the file part once its headers
//! have arrived and not before (a cut inside the head is `Incomplete`), and its rewrite is
//! the same form with `${filename}` in the key replaced by the file's name and every other
//! byte unchanged; on any bytes, a rewrite changes only the key field's value (what follows
//! it is the input's, byte for byte); an accepted checksum value is canonical base64 of the
//! algorithm's length; `claim` accepts at most one checksum.
#![no_main]

use homefront::origin::checksum::{self, Fields};
use homefront::origin::post_form::{read_head, Head};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// A field name or value: printable, without the CR/LF and quotes that would end it.
fn token(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    let mut s = String::new();
    for _ in 0..n {
        let c = u.int_in_range(0x20u8..=0x7e)? as char;
        if c != '"' && c != '\\' {
            s.push(c);
        }
    }
    Ok(s)
}

fn built_form(u: &mut Unstructured<'_>) -> Result<()> {
    let boundary = format!("b{}", u.int_in_range(0u32..=999_999)?);
    let fields = u.int_in_range(0..=4)?;
    let prefix = token(u, 12)?.replace(&boundary, "");
    let filename = token(u, 20)?.replace(&boundary, "");
    let key = format!("{prefix}${{filename}}");
    let mut head = String::new();
    let mut expected = String::new();
    let mut put = |name: &str, value: &str, substituted: &str| {
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
        expected.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{substituted}\r\n"
        ));
    };
    for i in 0..fields {
        let value = token(u, 30)?.replace(&boundary, "");
        put(&format!("f{i}"), &value, &value);
    }
    put("key", &key, &format!("{prefix}{filename}"));
    let file_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    head.push_str(&file_head);
    expected.push_str(&file_head);
    let len = u.int_in_range(0..=64)?;
    let data = u.bytes(len)?;
    let mut body = head.clone().into_bytes();
    body.extend_from_slice(data);
    let mut want = expected.into_bytes();
    want.extend_from_slice(data);
    match read_head(&body, &boundary) {
        Head::Found { rewritten: Some(out) } => assert_eq!(out, want, "the rewrite of a built form"),
        other => panic!("a built form is read: {other:?}"),
    }
    let cut = u.int_in_range(0..=head.len().saturating_sub(1))?;
    assert_eq!(read_head(&body[..cut], &boundary), Head::Incomplete, "cut at {cut}");
    Ok(())
}

fn any_bytes(u: &mut Unstructured<'_>) -> Result<()> {
    let boundary = token(u, 10)?;
    let len = u.len();
    let body = u.bytes(len)?;
    if let Head::Found { rewritten: Some(out) } = read_head(body, &boundary) {
        // Only the key's value changed: the input's tail after the first `${filename}` of the
        // key field is the output's tail.
        let at = body
            .windows(11)
            .position(|w| w == b"${filename}")
            .expect("a rewrite replaces a ${filename}");
        let rest = &body[at + 11..];
        assert!(out.ends_with(rest) || rest.windows(11).any(|w| w == b"${filename}"));
    }
    Ok(())
}

fn checksums(u: &mut Unstructured<'_>) -> Result<()> {
    let mut values: [Option<String>; 5] = Default::default();
    for v in values.iter_mut() {
        if u.arbitrary()? {
            *v = Some(token(u, 50)?);
        }
    }
    let sdk = if u.arbitrary()? { Some(token(u, 12)?) } else { None };
    let trailer = if u.arbitrary()? { Some(token(u, 30)?) } else { None };
    for (algorithm, v) in checksum::ALL.into_iter().zip(&values) {
        if let Some(bytes) = v.as_deref().and_then(|v| checksum::decode(algorithm, v)) {
            assert_eq!(bytes.len(), algorithm.digest_len());
            assert_eq!(checksum::base64(&bytes), v.as_deref().unwrap_or("").trim());
        }
    }
    let fields = Fields {
        values: [
            values[0].as_deref(),
            values[1].as_deref(),
            values[2].as_deref(),
            values[3].as_deref(),
            values[4].as_deref(),
        ],
        sdk_algorithm: sdk.as_deref(),
        trailer: trailer.as_deref(),
    };
    if let Ok(Some(_)) = checksum::claim(fields) {
        let given = values.iter().filter(|v| v.is_some()).count()
            + usize::from(trailer.as_deref().is_some_and(|t| !t.trim().is_empty()));
        assert_eq!(given, 1, "one checksum claimed");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0u8..=2) {
        Ok(0) => built_form(&mut u),
        Ok(1) => checksums(&mut u),
        _ => any_bytes(&mut u),
    };
});
