//! homefront in front of self-hosted apps (`cache: { max_ttl: 0 }` behaviors): answers that
//! stream (server-sent events), long requests, and what apps expect of their proxy, over
//! HTTP/1.1, HTTPS/1.1 and HTTP/2.

use std::net::SocketAddr;

use crate::common::*;

fn config(app: u16, origin_extra: &str) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
origins:
  app: {{ http: "127.0.0.1:{app}"{origin_extra} }}
distributions:
  - domains: ["*"]
    behaviors:
      - path_pattern: "*"
        origin: app
        compress: true
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
        cache: {{ min_ttl: 0, default_ttl: 0, max_ttl: 0 }}
"#
    )
}

/// The three ways a viewer reaches an app: (name, client, base URL).
fn transports(hf: &Homefront) -> Vec<(&'static str, reqwest::Client, String)> {
    let client = |h1_only: bool| {
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], 0)));
        if h1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    };
    vec![
        ("HTTP/1.1", client(true), hf.http_base("app.test")),
        ("HTTPS/1.1", client(true), hf.https_base("app.test")),
        ("HTTP/2", client(false), hf.https_base("app.test")),
    ]
}

fn expected_version(name: &str) -> reqwest::Version {
    if name == "HTTP/2" {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    }
}

/// Reads `resp` until what arrived ends with `want`; panics if that takes longer than
/// [`EVENT_DEADLINE`] (the edge held it back) or the body ends first.
async fn read_until(resp: &mut reqwest::Response, got: &mut String, want: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while !got.ends_with(want) {
        let piece = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: {want:?} sent by the app never reached the viewer; got {got:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        match piece {
            Some(p) => got.push_str(&String::from_utf8_lossy(&p)),
            None => panic!("{what}: the body ended before {want:?}; got {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_reach_the_viewer_as_the_app_sends_them() {
    let app = TestOrigin::start().await;
    let hf = Homefront::start(&config(app.port, ""));
    for (name, client, base) in transports(&hf) {
        // Each event is sent only once the viewer has the one before: an edge that gathers
        // the answer (or compresses it in blocks) never lets the viewer see the first.
        let (reply, events) = Reply::new(200)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .stream();
        app.route("/events", reply);
        let mut resp = client
            .get(format!("{base}/events"))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.version(), expected_version(name), "{name}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream", "{name}");
        assert!(resp.headers().get("content-encoding").is_none(), "{name}: an event stream is not compressed");
        let mut got = String::new();
        for i in 0..3 {
            let event = format!("id: {i}\ndata: tick {i}\n\n");
            events.send(event.clone().into_bytes()).unwrap();
            read_until(&mut resp, &mut got, &event, name).await;
        }
        drop(events);
        let rest = resp.bytes().await.unwrap();
        assert!(rest.is_empty(), "{name}: the stream ends with the app's: {rest:?}");
        assert_eq!(got, "id: 0\ndata: tick 0\n\nid: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n");
    }
}
