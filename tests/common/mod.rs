//! Shared harness for integration tests: runs the real `homefront` binary on ephemeral
//! loopback ports with a config written to a temp dir, and offers real clients.
#![allow(dead_code)]

mod origin;
#[allow(unused_imports)]
pub use origin::{Body, Reply, Request, TestOrigin};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "test-secret-0123456789abcdef";

/// How long a test waits for an event (a log line, a metric, a closed socket) before it
/// gives up: a safety net only, long enough that on a loaded machine only a failure meets it.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(30);

/// What the server logs (pingora, at INFO) when the grace period after SIGTERM is over and
/// the process goes on to exit.
pub const GRACE_ENDS: &str = "grace period ends";

/// One catch-all distribution in front of the `site` bucket of the built-in store, for the
/// tests about the store itself.
pub const STORE_CONFIG: &str = r#"
listen: { http: "127.0.0.1:{http}", https: "127.0.0.1:{https}" }
admin: { listen: "127.0.0.1:{admin}" }
origins:
  site: { bucket: site }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#;

/// An unused loopback port (bound, then released for the server to take).
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), where no client
/// socket's source port can land on it before the server binds it, and never handed out
/// twice in one test binary. (Port 0's choice comes from that range: a test's own client
/// connections could take the port first, and homefront then exited on "address in use".)
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (10_000u16, ephemeral_from.max(10_001));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0u64.. {
        // A random start per process (test binaries may run side by side), then onwards.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        h.write_u32(std::process::id());
        let port = lo + (h.finish() % u64::from(hi - lo)) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
        assert!(attempt < 10_000, "no free port below {hi}");
    }
    unreachable!()
}

pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub metrics: u16,
    pub origin: u16,
    pub admin: u16,
}

impl Ports {
    pub fn new() -> Self {
        Ports {
            http: free_port(),
            https: free_port(),
            metrics: free_port(),
            origin: free_port(),
            admin: free_port(),
        }
    }

    /// Replaces `{http}`, `{https}`, `{metrics}`, `{origin}`, `{admin}`, `{dir}` in a config
    /// template.
    pub fn fill(&self, template: &str, dir: &Path) -> String {
        template
            .replace("{http}", &self.http.to_string())
            .replace("{https}", &self.https.to_string())
            .replace("{metrics}", &self.metrics.to_string())
            .replace("{origin}", &self.origin.to_string())
            .replace("{admin}", &self.admin.to_string())
            .replace("{dir}", &dir.display().to_string())
    }
}

/// A running `homefront` process, killed on drop.
pub struct Homefront {
    pub child: Child,
    pub ports: Ports,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Homefront {
    /// Writes `template` (see [`Ports::fill`]) as `homefront.yaml` plus the test secret, and
    /// starts `homefront serve -c` on it; waits until every configured port accepts.
    pub fn start(template: &str) -> Homefront {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
        Self::start_in(dir, template, &[])
    }

    pub fn start_in(dir: tempfile::TempDir, template: &str, extra_files: &[(&str, &[u8])]) -> Homefront {
        Self::start_in_env(dir, template, extra_files, &[])
    }

    /// Like [`Homefront::start_in`], with extra environment variables for the process.
    pub fn start_in_env(
        dir: tempfile::TempDir,
        template: &str,
        extra_files: &[(&str, &[u8])],
        env: &[(&str, &str)],
    ) -> Homefront {
        Self::start_on(dir, Ports::new(), template, extra_files, env)
    }

    /// Like [`Homefront::start_in_env`], on ports chosen beforehand (when a page, a peer or
    /// the config itself must know them first).
    pub fn start_on(
        dir: tempfile::TempDir,
        ports: Ports,
        template: &str,
        extra_files: &[(&str, &[u8])],
        env: &[(&str, &str)],
    ) -> Homefront {
        Self::start_wrapped(dir, ports, template, extra_files, env, &[])
    }

    /// Like [`Homefront::start_on`], with `homefront serve -c FILE` run by `wrapper` (a
    /// command that execs its arguments, e.g. `unshare` setting up mounts first).
    pub fn start_wrapped(
        dir: tempfile::TempDir,
        ports: Ports,
        template: &str,
        extra_files: &[(&str, &[u8])],
        env: &[(&str, &str)],
        wrapper: &[String],
    ) -> Homefront {
        for (name, data) in extra_files {
            if let Some(parent) = dir.path().join(name).parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(dir.path().join(name), data).unwrap();
        }

        let cfg = dir.path().join("homefront.yaml");
        std::fs::write(&cfg, ports.fill(template, dir.path())).unwrap();
        let log = dir.path().join("homefront.log");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_homefront"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_homefront")),
        };
        let child = command
            .arg("serve")
            .arg("-c")
            .arg(&cfg)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("homefront.err")).unwrap(),
            ))
            .spawn()
            .expect("start homefront");
        let mut hf = Homefront { child, ports, dir, log };
        let text = std::fs::read_to_string(&cfg).unwrap();
        for port in [
            hf.ports.http,
            hf.ports.https,
            hf.ports.metrics,
            hf.ports.origin,
            hf.ports.admin,
        ] {
            if text.contains(&format!(":{port}")) {
                hf.wait_port(port);
            }
        }
        hf
    }

    /// Starts `homefront` with arbitrary arguments in `dir` (no config written).
    pub fn spawn_args(dir: tempfile::TempDir, args: &[String], ports: Ports) -> Homefront {
        let log = dir.path().join("homefront.log");
        let child = Command::new(env!("CARGO_BIN_EXE_homefront"))
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("homefront.err")).unwrap(),
            ))
            .spawn()
            .expect("start homefront");
        Homefront { child, ports, dir, log }
    }

    pub fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "homefront exited with {status} before listening on {port}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "homefront did not listen on {port}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` (SIGKILL): no chance to clean up.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The same command again on the same directory and ports (after [`Homefront::crash`]).
    pub fn restart(&mut self, args: &[String]) {
        let log = std::fs::OpenOptions::new().append(true).open(&self.log).unwrap();
        let err = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("homefront.err"))
            .unwrap();
        self.child = Command::new(env!("CARGO_BIN_EXE_homefront"))
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("restart homefront");
    }

    /// Kills the process and hands back its directory, for a restart on the same data.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// SIGTERM, as `systemctl stop` and `docker stop` send: a graceful shutdown.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn stderr(&self) -> String {
        let out = std::fs::read_to_string(self.dir.path().join("homefront.err")).unwrap_or_default();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("{out}{log}")
    }

    pub fn https_base(&self, host: &str) -> String {
        format!("https://{host}:{}", self.ports.https)
    }

    pub fn http_base(&self, host: &str) -> String {
        format!("http://{host}:{}", self.ports.http)
    }

    /// A client that resolves the given host names to loopback (so SNI and Host carry them)
    /// and trusts the test certificates.
    pub fn client(&self, hosts: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20));
        for h in hosts {
            // Port 0: the URL's port is used, so one client reaches both listeners.
            b = b.resolve(h, SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        b.build().unwrap()
    }

    /// An S3 client for the bucket store, as users configure the official SDK.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(self.ports.origin)
    }

    /// Scrapes `/metrics` until `ready` holds (metrics are recorded after a response is
    /// sent, so a scrape right after a request may miss it) or [`EVENT_DEADLINE`] passes;
    /// returns the last.
    pub async fn metrics_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EVENT_DEADLINE;
        loop {
            let m = self.metrics();
            if ready(&m) || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads the process's output (see [`Homefront::stderr`]) until `ready` holds or
    /// [`EVENT_DEADLINE`] passes; returns the last read.
    pub async fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EVENT_DEADLINE;
        loop {
            let log = self.stderr();
            if ready(&log) || Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn metrics(&self) -> String {
        raw_http(
            self.ports.metrics,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
    }
}

impl Drop for Homefront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn s3_client(port: u16) -> aws_sdk_s3::Client {
    s3_client_as(port, ACCESS_KEY, SECRET_KEY)
}

/// An S3 client for the bucket store at `port` with the given credential.
pub fn s3_client_as(port: u16, access_key_id: &str, secret: &str) -> aws_sdk_s3::Client {
    s3_client_with(port, access_key_id, secret, "us-east-1")
}

/// An S3 client for the bucket store at `port` that signs for `region`.
pub fn s3_client_in(port: u16, region: &str) -> aws_sdk_s3::Client {
    s3_client_with(port, ACCESS_KEY, SECRET_KEY, region)
}

fn s3_client_with(port: u16, access_key_id: &str, secret: &str, region: &str) -> aws_sdk_s3::Client {
    let creds = aws_credential_types::Credentials::new(access_key_id, secret, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Sends raw bytes to a loopback port and returns the whole response as text.
pub fn raw_http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes a self-signed certificate and key (PEM) for `names` into `dir` as `<stem>.pem` and
/// `<stem>.key`, with the first name as the subject CN.
pub fn make_cert(dir: &Path, stem: &str, names: &[&str]) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", names[0]).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(rand_u32()).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let san = san.build(&b.x509v3_context(None, None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_le_bytes(b) >> 1
}

/// TLS handshake with `sni` to a loopback port: (subject CN of the served certificate, ALPN).
pub fn handshake(port: u16, sni: &str, alpn: &[u8]) -> (String, Option<Vec<u8>>, String) {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(alpn).unwrap();
    let conn = b.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let s = conn.connect(sni, tcp).unwrap();
    let cert = s.ssl().peer_certificate().unwrap();
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|e| e.data().to_string().unwrap())
        .unwrap_or_default();
    let version = s.ssl().version_str().to_string();
    (cn, s.ssl().selected_alpn_protocol().map(|p| p.to_vec()), version)
}

/// An HTTP app origin that answers every request with a JSON echo of what it received
/// (method, uri, headers), running until the test ends. Returns its port.
pub async fn start_echo_origin() -> u16 {
    TestOrigin::answering(Reply::echo()).await.leak()
}

/// An origin that answers 200 to everything; [`TestOrigin::count_all`] counts the whole
/// requests (header and complete body) that reached it.
pub async fn counting_origin() -> TestOrigin {
    TestOrigin::answering(Reply::ok("ok")).await
}

/// Waits for the access log writer (a background thread) to have written `n` lines (or for
/// [`EVENT_DEADLINE`]); returns the lines there are.
pub async fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    loop {
        let mut lines = Vec::new();
        if let Ok(dir) = std::fs::read_dir(path) {
            for f in dir.flatten() {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                lines.extend(text.lines().map(str::to_string));
            }
        }
        if lines.iter().filter(|l| !l.starts_with('#')).count() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 answer read off a raw connection: status, headers (lowercase names, in
/// order), and body with its framing removed (Content-Length or chunked; none for HEAD, 204
/// and 304).
#[derive(Debug)]
pub struct H1 {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl H1 {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one answer from `r` (`head`: it answers a HEAD).
pub fn read_h1(r: &mut impl std::io::BufRead, head: bool) -> H1 {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut body = Vec::new();
    if head || status == 204 || status == 304 {
        // No body, whatever the fields say.
    } else if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim_end(), 16).unwrap_or_else(|_| panic!("chunk size {size:?}"));
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            assert_eq!(&chunk[n..], b"\r\n", "chunk end");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let len: usize = find("content-length").map(|v| v.parse().unwrap()).unwrap_or(0);
        body = vec![0; len];
        r.read_exact(&mut body).unwrap();
    }
    H1 {
        status,
        headers,
        body,
        chunked,
    }
}

/// Sends `requests` on one HTTP/1.1 connection in a single write (pipelined) and reads their
/// answers.
pub fn pipelined<S: AsRef<str>>(port: u16, requests: &[S]) -> Vec<H1> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let all: String = requests.iter().map(|r| r.as_ref()).collect();
    s.write_all(all.as_bytes()).unwrap();
    let mut r = std::io::BufReader::new(s);
    requests
        .iter()
        .map(|q| read_h1(&mut r, q.as_ref().starts_with("HEAD ")))
        .collect()
}
