//! A CloudFront KeyValueStore, read-only at the edge: loaded from a JSON file in
//! CloudFront's import format (`{"data": [{"key": "k", "value": "v"}, ...]}`), with
//! CloudFront's limits on keys, values and the whole store.

use std::collections::HashMap;

use serde::Deserialize;

/// The most bytes of one key, one value and a whole store (CloudFront's quotas).
pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 1024;
pub const MAX_STORE: usize = 5 * 1024 * 1024;

/// A loaded store.
#[derive(Debug, Default)]
pub struct Kvs {
    entries: HashMap<String, String>,
    /// When it was loaded (ISO 8601), for `meta()`.
    pub loaded_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportFile {
    data: Vec<ImportEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEntry {
    key: String,
    value: String,
}

impl Kvs {
    /// A store from the text of an import file; the error says what is wrong (and, for a
    /// JSON error, where).
    pub fn parse(text: &str, loaded_at: u64) -> Result<Kvs, String> {
        let file: ImportFile = serde_json::from_str(text).map_err(|e| {
            format!("not a KeyValueStore import file ({{\"data\": [{{\"key\": ..., \"value\": ...}}]}}): {e}")
        })?;
        let mut entries = HashMap::with_capacity(file.data.len());
        let mut total = 0usize;
        for (i, e) in file.data.into_iter().enumerate() {
            if e.key.is_empty() || e.key.len() > MAX_KEY {
                return Err(format!("data[{i}]: a key is 1 to {MAX_KEY} bytes"));
            }
            if e.value.len() > MAX_VALUE {
                return Err(format!("data[{i}] ({}): a value is at most {MAX_VALUE} bytes", e.key));
            }
            total += e.key.len() + e.value.len();
            if total > MAX_STORE {
                return Err(format!("the store is larger than {MAX_STORE} bytes"));
            }
            if entries.insert(e.key.clone(), e.value).is_some() {
                return Err(format!("data[{i}]: the key '{}' is given twice", e.key));
            }
        }
        Ok(Kvs {
            entries,
            loaded_at: crate::util::iso8601(loaded_at),
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_file_loads_and_bad_ones_say_why() {
        let kvs = Kvs::parse(
            r#"{"data":[{"key":"a","value":"1"},{"key":"b","value":"{\"x\":2}"}]}"#,
            0,
        )
        .unwrap();
        assert_eq!(kvs.get("a"), Some("1"));
        assert_eq!(kvs.get("b"), Some("{\"x\":2}"));
        assert_eq!(kvs.get("c"), None);
        assert_eq!(kvs.len(), 2);
        assert!(Kvs::parse("[]", 0).unwrap_err().contains("import file"));
        let long = format!(r#"{{"data":[{{"key":"k","value":"{}"}}]}}"#, "v".repeat(MAX_VALUE + 1));
        assert!(Kvs::parse(&long, 0).unwrap_err().contains("at most 1024"));
        assert!(
            Kvs::parse(r#"{"data":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}"#, 0)
                .unwrap_err()
                .contains("twice")
        );
    }
}
