//! `s3` origins: the edge in front of an S3-compatible service elsewhere — here a second
//! homefront started as `homefront origin` (a separate process, as on another machine) —
//! signing every request with SigV4 (origin access control): unsigned requests straight to
//! the bucket get 403, through the edge 200; a wrong secret is a 403 the edge explains in its
//! log (without the secret); `signing: never` reaches only public-read objects.

use crate::common::*;

const REMOTE_SECRET: &str = "remote-secret-0123456789abcdef";

const REMOTE: &str = r#"
origins:
  media: { bucket: media }
distributions:
  - domains: ["*"]
    behaviors: [ { path_pattern: "*", origin: media } ]
buckets:
  media: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: remotekey, secret_access_key_file: remote.key } ]
"#;

const EDGE: &str = r#"
listen: { http: "127.0.0.1:{http}" }
origins:
  media:
    s3:
      endpoint: "http://127.0.0.1:{remote}"
      bucket: media
      region: us-east-1
      access_key_id: remotekey
      secret_access_key_file: edge.key
    signing: {signing}
distributions:
  - domains: ["*"]
    behaviors: [ { path_pattern: "*", origin: media, cache: { max_ttl: 0 } } ]
"#;

fn start_remote() -> Homefront {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("remote.key"), REMOTE_SECRET).unwrap();
    let ports = Ports::new();
    std::fs::write(dir.path().join("origin.yaml"), ports.fill(REMOTE, dir.path())).unwrap();
    let args: Vec<String> = ["origin", "-c", "origin.yaml"].iter().map(|s| s.to_string()).collect();
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    hf.wait_port(hf.ports.origin);
    hf
}

fn start_edge(remote: u16, secret: &str, signing: &str) -> Homefront {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("edge.key"), secret).unwrap();
    let config = EDGE
        .replace("{remote}", &remote.to_string())
        .replace("{signing}", signing);
    Homefront::start_in(dir, &config, &[])
}

async fn get(hf: &Homefront, path: &str) -> (u16, Vec<u8>) {
    let r = hf
        .client(&["cdn.test"])
        .get(format!("{}{path}", hf.http_base("cdn.test")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_signs_for_a_remote_bucket_that_refuses_everyone_else() {
    let remote = start_remote();
    let s3 = s3_client_as(remote.ports.origin, "remotekey", REMOTE_SECRET);
    for (key, body) in [
        ("photos/cat.jpg", &b"\xff\xd8 a cat"[..]),
        ("docs/a b+c ü.txt", &b"odd name"[..]),
    ] {
        s3.put_object()
            .bucket("media")
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }

    let edge = start_edge(remote.ports.origin, REMOTE_SECRET, "always");
    assert_eq!(get(&edge, "/photos/cat.jpg").await, (200, b"\xff\xd8 a cat".to_vec()));
    assert_eq!(
        get(&edge, "/docs/a%20b%2Bc%20%C3%BC.txt").await,
        (200, b"odd name".to_vec())
    );
    assert_eq!(get(&edge, "/photos/missing.jpg").await.0, 404);

    // Straight to the bucket, without the edge's signature: refused.
    let direct = reqwest::get(format!("http://127.0.0.1:{}/media/photos/cat.jpg", remote.ports.origin))
        .await
        .unwrap();
    assert_eq!(direct.status(), 403);
    assert!(direct.text().await.unwrap().contains("AccessDenied"));

    // A wrong secret in the edge's config: the bucket's 403, and the reason in the log.
    let wrong = start_edge(remote.ports.origin, "not-the-secret", "always");
    assert_eq!(get(&wrong, "/photos/cat.jpg").await.0, 403);
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    while !wrong.stderr().contains("signed as remotekey") {
        assert!(
            std::time::Instant::now() < deadline,
            "no explanation logged:\n{}",
            wrong.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !wrong.stderr().contains("not-the-secret"),
        "the secret leaked into the log"
    );

    // signing: never — only what the bucket makes public is readable through this edge.
    let unsigned = start_edge(remote.ports.origin, REMOTE_SECRET, "never");
    assert_eq!(get(&unsigned, "/photos/cat.jpg").await.0, 403);
    s3.put_object_acl()
        .bucket("media")
        .key("photos/cat.jpg")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&unsigned, "/photos/cat.jpg").await,
        (200, b"\xff\xd8 a cat".to_vec())
    );
}

/// `examples/edge-cluster.yaml` as the README's scaling section describes it: two edges from
/// the same file in front of two bucket-store nodes; both edges serve, and keep serving when
/// the first node stops.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_example_serves_through_two_edges_and_survives_a_node() {
    let node1 = start_remote();
    let node2 = start_remote();
    for node in [&node1, &node2] {
        s3_client_as(node.ports.origin, "remotekey", REMOTE_SECRET)
            .put_object()
            .bucket("media")
            .key("video/intro.txt")
            .body(b"replicated".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/edge-cluster.yaml")).unwrap();
    // This machine's addresses, the test credential, no ACME (no public CA here).
    let config = example
        .replace("\"0.0.0.0:80\"", "\"127.0.0.1:{http}\"")
        .replace("\"0.0.0.0:443\"", "\"127.0.0.1:{https}\"")
        .replace("\"127.0.0.1:9100\"", "\"127.0.0.1:{metrics}\"")
        .replace("\"127.0.0.1:9101\"", "\"127.0.0.1:{admin}\"")
        .replace("10.0.0.11:9000", &format!("127.0.0.1:{}", node1.ports.origin))
        .replace("10.0.0.12:9000", &format!("127.0.0.1:{}", node2.ports.origin))
        .replace("edge-reader", "remotekey")
        .replace(
            "cache: { disk_size: 50GiB, memory_size: 1GiB }",
            "cache: { disk_size: 1GiB, memory_size: 64MiB }",
        );
    let acme_start = config.find("tls:\n").unwrap();
    let acme_end = config.find("origins:").unwrap();
    let config = format!("{}{}", &config[..acme_start], &config[acme_end..]);
    let edges: Vec<Homefront> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
            std::fs::write(dir.path().join("secrets/s3.key"), REMOTE_SECRET).unwrap();
            Homefront::start_in(dir, &config, &[])
        })
        .collect();
    let fetch = |edge: &Homefront, path: &str| {
        let client = edge.client(&["cdn.example.com"]);
        let url = format!("{}{path}", edge.https_base("cdn.example.com"));
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for edge in &edges {
        assert_eq!(fetch(edge, "/video/intro.txt").await, (200, "replicated".to_string()));
    }
    // node1 stops: what is not cached yet comes from node2.
    drop(node1);
    s3_client_as(node2.ports.origin, "remotekey", REMOTE_SECRET)
        .put_object()
        .bucket("media")
        .key("video/new.txt")
        .body(b"after the failure".to_vec().into())
        .send()
        .await
        .unwrap();
    for edge in &edges {
        assert_eq!(
            fetch(edge, "/video/new.txt").await,
            (200, "after the failure".to_string())
        );
        assert_eq!(fetch(edge, "/video/intro.txt").await, (200, "replicated".to_string()));
    }
    let uncached = edges[0]
        .client(&["cdn.example.com"])
        .get(format!("{}/video/other.txt", edges[0].https_base("cdn.example.com")))
        .send()
        .await
        .unwrap();
    assert_eq!(uncached.status(), 404, "node2 answers for what it does not have");
}
