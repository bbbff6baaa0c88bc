//! The CloudFront Functions event a viewer's request becomes (`functions::event`), and what
//! a returned request does to it: the part of a function's way that a viewer controls.
//!
//! Input: a method, path and query, and header fields with arbitrary names and value bytes
//! (each kept only if HTTP would carry it), drawn from the bytes; then a field to add.
//!
//! Checked: nothing panics; the event's JSON reads back as the same request (what the
//! engine is given is what the edge built); a request returned untouched changes nothing
//! (no target, no fields); a request returned with one field added keeps every other field
//! byte for byte and in number, and adds that one; a query returned untouched keeps the
//! target as sent.
#![no_main]

use homefront::functions::event::{self, Field, Request, RequestEdit};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn bytes<'a>(u: &mut Unstructured<'a>, max: usize) -> Result<&'a [u8]> {
    let n = u.int_in_range(0..=max)?;
    u.bytes(n.min(u.len()))
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let method = *u.choose(&["GET", "HEAD", "POST", "OPTIONS"])?;
    let path = String::from_utf8_lossy(bytes(u, 24)?).into_owned();
    let query = if u.arbitrary()? {
        Some(String::from_utf8_lossy(bytes(u, 32)?).into_owned())
    } else {
        None
    };
    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let name = match HeaderName::from_bytes(bytes(u, 12)?) {
            Ok(n) => n,
            Err(_) => continue,
        };
        if let Ok(value) = HeaderValue::from_bytes(bytes(u, 24)?) {
            headers.append(name, value);
        }
    }
    let before = event::request_of(method, &path, query.as_deref(), &headers);
    let json = serde_json::to_string(&before).expect("an event serializes");
    let back: Request = serde_json::from_str(&json).expect("the event's JSON reads back");
    assert_eq!(back, before);
    assert_eq!(
        event::request_edit(&before, &back, &headers),
        Ok(RequestEdit::default())
    );

    // One field added (a name no event field has, that a function may set).
    let name = format!("x-fuzz-{}", u.int_in_range(0u16..=999)?);
    let value = String::from_utf8_lossy(bytes(u, 16)?).into_owned();
    let mut after = before.clone();
    let added = Field {
        value: value.clone(),
        multi_value: None,
    };
    // The viewer may have sent that very field already: then nothing changed.
    let same = before.headers.get(&name) == Some(&added);
    after.headers.insert(name.clone(), added);
    match event::request_edit(&before, &after, &headers) {
        Ok(edit) if same => assert_eq!(edit, RequestEdit::default()),
        Ok(edit) => {
            assert_eq!(edit.target, None);
            let fields = edit.headers.expect("the fields changed");
            for (n, v) in headers.iter() {
                if n.as_str().starts_with("x-fuzz-") {
                    continue;
                }
                let sent: Vec<&HeaderValue> = headers.get_all(n).iter().collect();
                let kept: Vec<&HeaderValue> = fields.get_all(n).iter().collect();
                if n == http::header::COOKIE {
                    // Cookies the function left alone are sent as they came.
                    assert_eq!(kept, sent);
                    continue;
                }
                assert_eq!(kept, sent, "{n}: {v:?}");
            }
            assert_eq!(fields.get(&name).map(|v| v.as_bytes()), Some(value.as_bytes()));
        }
        // Only a value HTTP cannot carry is refused.
        Err(_) => assert!(HeaderValue::from_str(&value).is_err()),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
