//! Browser form uploads (POST Object): the `${filename}` variable of the `key` field, which S3
//! replaces with the name of the uploaded file. s3s parses and checks the form (policy,
//! signature, conditions) but leaves the variable as sent, so the form's head — every field
//! before the file's content, which S3 requires to be last — is read first and the key
//! rewritten there, before s3s sees it: the key stored, the key a redirect names and the key
//! in a 201's XML are then one value.

/// How much of a form is read to find the file's part: S3 limits the fields before it to
/// 20 KB; this leaves room for the part headers.
pub const HEAD_LIMIT: usize = 64 * 1024;

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// What the head of a form says, once the file part's headers have been read.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// More bytes are needed.
    Incomplete,
    /// The file part was found; `rewritten` is the head with `${filename}` in the key field
    /// replaced (`None`: nothing to replace).
    Found { rewritten: Option<Vec<u8>> },
    /// Not a form this can read (no file part where expected): passed on as it is.
    Unreadable,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A parameter of a Content-Disposition header line (`name="key"`): quoted values may hold
/// `;` (a file named `a;b.txt`) and backslash-escaped quotes.
fn disposition_param(line: &str, param: &str) -> Option<String> {
    let mut rest = line.split_once(';')?.1;
    loop {
        rest = rest.trim_start();
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, next)) = chars.next() {
                                value.push(next);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        if name.trim().eq_ignore_ascii_case(param) {
            return Some(value);
        }
        rest = remaining.trim_start().strip_prefix(';')?;
    }
}

/// Reads the head of a form body (`buf`, what has arrived so far).
pub fn read_head(buf: &[u8], boundary: &str) -> Head {
    let delimiter = format!("--{boundary}");
    let Some(first) = find(buf, delimiter.as_bytes(), 0) else {
        return if buf.len() < delimiter.len() + 2 {
            Head::Incomplete
        } else {
            Head::Unreadable
        };
    };
    let mut key_value: Option<(usize, usize)> = None;
    let mut at = first + delimiter.len();
    loop {
        // After a delimiter: CRLF and a part, or `--` (the end: no file part).
        let Some(after) = buf.get(at..at + 2) else {
            return Head::Incomplete;
        };
        if after != b"\r\n" {
            return Head::Unreadable;
        }
        let headers_start = at + 2;
        let Some(headers_end) = find(buf, b"\r\n\r\n", headers_start) else {
            return Head::Incomplete;
        };
        let headers = String::from_utf8_lossy(&buf[headers_start..headers_end]);
        let Some(disposition) = headers
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
        else {
            return Head::Unreadable;
        };
        let name = disposition_param(disposition, "name").unwrap_or_default();
        let body_start = headers_end + 4;
        if name.eq_ignore_ascii_case("file") {
            let Some((start, end)) = key_value else {
                return Head::Found { rewritten: None };
            };
            let key = &buf[start..end];
            let filename = disposition_param(disposition, "filename").unwrap_or_default();
            if find(key, b"${filename}", 0).is_none() {
                return Head::Found { rewritten: None };
            }
            let key = String::from_utf8_lossy(key).replace("${filename}", &filename);
            let mut out = Vec::with_capacity(buf.len() + filename.len());
            out.extend_from_slice(&buf[..start]);
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&buf[end..]);
            return Head::Found { rewritten: Some(out) };
        }
        let close = format!("\r\n{delimiter}");
        let Some(value_end) = find(buf, close.as_bytes(), body_start) else {
            return Head::Incomplete;
        };
        if name.eq_ignore_ascii_case("key") {
            key_value = Some((body_start, value_end));
        }
        at = value_end + close.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)], filename: &str) -> Vec<u8> {
        let mut b = String::new();
        for (k, v) in fields {
            b.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        b.push_str(&format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\nDATA\r\n--XyZ--\r\n"
        ));
        b.into_bytes()
    }

    #[test]
    fn disposition_parameters() {
        let line = r#"Content-Disposition: form-data; name="file"; filename="a;b \"c\".txt""#;
        assert_eq!(disposition_param(line, "name").as_deref(), Some("file"));
        assert_eq!(disposition_param(line, "filename").as_deref(), Some(r#"a;b "c".txt"#));
        assert_eq!(disposition_param("form-data; name=key", "name").as_deref(), Some("key"));
        assert_eq!(disposition_param("form-data; name=\"k\"", "filename"), None);
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn the_key_gets_the_file_name() {
        let body = form(&[("key", "uploads/${filename}"), ("policy", "abc")], "cat photo.jpg");
        let Head::Found { rewritten: Some(out) } = read_head(&body, "XyZ") else {
            panic!("{:?}", read_head(&body, "XyZ"))
        };
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\n\r\nuploads/cat photo.jpg\r\n--XyZ"), "{text}");
        assert!(text.ends_with("DATA\r\n--XyZ--\r\n"));
        assert_eq!(text.len(), body.len() - "${filename}".len() + "cat photo.jpg".len());
    }

    #[test]
    fn nothing_to_replace_or_to_read() {
        let plain = form(&[("key", "uploads/fixed.jpg")], "x.jpg");
        assert_eq!(read_head(&plain, "XyZ"), Head::Found { rewritten: None });
        // The head arrives in pieces: incomplete until the file part's headers are in.
        let body = form(&[("key", "a/${filename}")], "x.jpg");
        let file_headers_end = String::from_utf8_lossy(&body).find("image/jpeg\r\n\r\n").unwrap() + 14;
        for cut in [0, 5, 20, file_headers_end - 1] {
            assert_eq!(read_head(&body[..cut], "XyZ"), Head::Incomplete, "{cut}");
        }
        assert!(matches!(
            read_head(&body[..file_headers_end], "XyZ"),
            Head::Found { rewritten: Some(_) }
        ));
        // Not a form of this boundary; no file part.
        assert_eq!(read_head(b"garbage garbage garbage", "XyZ"), Head::Unreadable);
        let no_file = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XyZ--\r\n";
        assert_eq!(read_head(no_file, "XyZ"), Head::Unreadable);
    }
}
