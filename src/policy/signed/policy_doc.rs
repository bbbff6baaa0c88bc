//! Signed-URL policies: the canned policy as the signers build it, and a custom policy's
//! conditions (resource, time window, source address).

use std::net::IpAddr;

use crate::policy::ip::Cidr;
use crate::policy::path_pattern::glob_match;

/// The canned policy, byte for byte as the signers build it.
pub fn canned_policy(url: &str, expires: u64) -> String {
    format!(r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#)
}

/// A custom policy's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub resource: Option<String>,
    pub date_less_than: u64,
    pub date_greater_than: Option<u64>,
    pub source_ip: Option<Cidr>,
}

impl Policy {
    pub fn allows(&self, url: &str, client: IpAddr, now: u64) -> bool {
        self.resource
            .as_deref()
            .is_none_or(|r| glob_match(r.as_bytes(), url.as_bytes()))
            && now < self.date_less_than
            && self.date_greater_than.is_none_or(|t| now > t)
            && self.source_ip.is_none_or(|c| c.contains(client))
    }
}

/// Decimal seconds as a signer writes them: digits only.
pub(super) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `{"AWS:EpochTime": N}`: N a JSON integer (CloudFront's form) or a string of digits.
fn epoch(v: &serde_json::Value) -> Option<u64> {
    let t = v.get("AWS:EpochTime")?;
    t.as_u64().or_else(|| decimal(t.as_str()?))
}

/// `AWS:SourceIp`: an address with an optional `/LENGTH`, written without blanks or signs
/// (which `Cidr::parse`, made for the config file, lets through).
fn source_ip(text: &str) -> Option<Cidr> {
    let plain = |b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'/';
    if !text.bytes().all(plain) {
        return None;
    }
    Cidr::parse(text)
}

/// One statement, as an array of one or a bare object (CloudFront: "You can include only
/// one statement"; two are MalformedPolicy); `DateLessThan` required.
pub fn parse_policy(bytes: &[u8]) -> Option<Policy> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let statement = match doc.get("Statement")? {
        serde_json::Value::Array(list) if list.len() == 1 => &list[0],
        obj @ serde_json::Value::Object(_) => obj,
        _ => return None,
    };
    let resource = match statement.get("Resource") {
        None => None,
        Some(r) => Some(r.as_str()?.to_string()),
    };
    let cond = statement.get("Condition")?;
    let date_less_than = epoch(cond.get("DateLessThan")?)?;
    let date_greater_than = match cond.get("DateGreaterThan") {
        None => None,
        Some(v) => Some(epoch(v)?),
    };
    let source_ip = match cond.get("IpAddress") {
        None => None,
        Some(v) => Some(source_ip(v.get("AWS:SourceIp")?.as_str()?)?),
    };
    Some(Policy {
        resource,
        date_less_than,
        date_greater_than,
        source_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parsing() {
        let p = parse_policy(br#"{"Statement":{"Condition":{"DateLessThan":{"AWS:EpochTime":"10"}}}}"#).unwrap();
        assert_eq!((p.resource, p.date_less_than), (None, 10));
        for bad in [
            &br#"not json"#[..],
            br#"{"Statement":[]}"#,
            br#"{"Statement":[{"Condition":{}}]}"#,
            br#"{"Statement":[{"Resource":1,"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1},"IpAddress":{"AWS:SourceIp":"x"}}}]}"#,
        ] {
            assert!(parse_policy(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
