//! The README's configuration reference is checked against the schema: it must load, and it
//! must show every key the schema accepts.

use crate::common;

fn reference_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Configuration reference")
        .nth(1)
        .expect("README has a configuration reference");
    let start = section.find("```yaml\n").expect("the reference has a yaml block") + "```yaml\n".len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_string()
}

#[test]
fn the_reference_shows_every_key_of_the_schema() {
    let missing = homefront::config::undocumented_keys(&reference_block()).unwrap();
    assert!(
        missing.is_empty(),
        "keys the README's configuration reference does not show: {missing:?}"
    );
}

#[test]
fn the_reference_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    common::make_cert(&dir.path().join("certs"), "cdn", &["cdn.example.com", "*.example.com"]);
    // The ACME example trusts a test CA from a file.
    common::make_cert(dir.path(), "pebble-ca", &["ca.test"]);
    std::env::set_var("HOMEFRONT_CI_SECRET", "ci-secret");
    std::env::set_var("MEDIA_SECRET", "media-secret");
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/minio.key"), "minio-secret").unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(dir.path().join("keys/media.pub.pem"), rsa.public_key_to_pem().unwrap()).unwrap();
    // The functions it names: AWS's samples, and a KeyValueStore.
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudfront-functions");
    std::fs::create_dir_all(dir.path().join("functions")).unwrap();
    for (name, sample) in [
        ("index.js", "url-rewrite-single-page-apps.js"),
        ("security.js", "add-security-headers.js"),
    ] {
        std::fs::copy(format!("{samples}/{sample}"), dir.path().join("functions").join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("functions/store.json"),
        r#"{"data":[{"key":"k","value":"v"}]}"#,
    )
    .unwrap();
    let path = dir.path().join("homefront.yaml");
    std::fs::write(&path, reference_block()).unwrap();
    let loaded = homefront::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.functions.len(), 2);
    assert!(c.distributions[0].behaviors[2].functions.viewer_response.is_some());
    assert_eq!(c.distributions[0].behaviors.len(), 3);
    assert!(c.distributions[0].behaviors[0].trusted_keys.is_some());
    assert_eq!(c.trusted_proxies.len(), 2);
    assert_eq!(c.origins.len(), 6);
    assert!(c
        .origins
        .iter()
        .any(|o| matches!(o.kind, homefront::config::model::OriginKind::Group { .. })));
    assert_eq!(
        loaded.secrets_to_generate.len(),
        1,
        "the first secret lives in data_dir and is generated"
    );
    assert_eq!(
        c.origin_server.as_ref().unwrap().credentials[1].secret_access_key,
        "ci-secret"
    );
}

/// The first yaml block of the README section `heading`.
fn yaml_block_of(heading: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has {heading}"));
    let start = section.find("```yaml\n").expect("the section has a yaml block") + "```yaml\n".len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_string()
}

#[test]
fn the_home_server_example_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(dir.path().join("keys/family.pub.pem"), rsa.public_key_to_pem().unwrap()).unwrap();
    let path = dir.path().join("homefront.yaml");
    std::fs::write(&path, yaml_block_of("## homefront in front of your apps")).unwrap();
    let loaded = homefront::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    let names: Vec<&str> = c.distributions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["site", "cloud", "home", "notebook"]);
    let acme = c.tls.acme.as_ref().expect("certificates from ACME");
    assert_eq!(acme.domains.len(), 4);
    // The apps are not cached; the notebook needs signed cookies; the site is a bucket.
    for d in &c.distributions[1..] {
        assert!(d.behaviors[0].cache.max_ttl.is_zero(), "{}", d.name);
    }
    assert!(c.distributions[3].behaviors[0].trusted_keys.is_some());
    assert!(c.distributions[0].behaviors[0].trusted_keys.is_none());
    let assistant = c.origins.iter().find(|o| o.name == "assistant").unwrap();
    assert_eq!(assistant.timeouts.response, std::time::Duration::from_secs(3600));
}
