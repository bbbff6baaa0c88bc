//! Request smuggling: ambiguous framing is refused with 400 and never reaches the origin as
//! a request. (A chunked body with an invalid chunk size is found only while it streams:
//! the edge then answers 400 and cuts the origin request off, so the origin never gets a
//! whole request, and the connection is closed, so nothing can be smuggled after it.)

use crate::common::*;

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:{http}" }
origins:
  app: { http: "127.0.0.1:{app}" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: app, allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE], cache: { max_ttl: 0 } }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let seen = counting_origin().await;
    let app = seen.port;
    let hf = Homefront::start(&CONFIG.replace("{app}", &app.to_string()));
    let send = |raw: &str| raw_http(hf.ports.http, raw);

    // A well-formed POST goes through (the origin counts it).
    let ok = send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(seen.count_all(), 1);

    let attacks = [
        (
            "CL.TE",
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
        ),
        (
            "duplicate Content-Length",
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!",
        ),
        (
            "obs-fold",
            "POST /x HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        ),
        (
            "invalid chunk size",
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding not chunked last",
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "space before colon",
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\nConnection: close\r\n\r\nhello",
        ),
    ];
    for (name, raw) in attacks {
        let before = seen.count_all();
        let r = send(raw);
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 400"),
            "{name}: expected 400 (or the connection closed), got:\n{r}"
        );
        assert_eq!(seen.count_all(), before, "{name}: reached the origin");
    }
    // The edge still serves after all that.
    let ok = send("GET /z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}
