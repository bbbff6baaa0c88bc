//! The `homefront` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use homefront::config::{self, Loaded};

/// mimalloc instead of glibc malloc: a proxy allocates and frees many small buffers per
/// request (measured with benches/load/cache_hits.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CloudFront + S3 for a home server or a small team, in one binary.
///
/// homefront terminates TLS, routes requests through CloudFront-style behaviors and serves
/// objects from its built-in S3-compatible bucket store (or from an HTTP origin). Everything
/// is configured in one YAML file; without `-c` the embedded default serves a demo page on
/// https://localhost:8443/.
#[derive(Parser)]
#[command(name = "homefront", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Listener addresses that replace the config's, e.g. when a port is taken.
#[derive(clap::Args)]
struct ListenOverrides {
    /// Edge HTTP listener (`listen.http`).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Edge HTTPS listener (`listen.https`).
    #[arg(long, value_name = "ADDR")]
    https: Option<std::net::SocketAddr>,
    /// Prometheus endpoint (`metrics.listen`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Bucket store listener (`origin_server.listen`).
    #[arg(long, value_name = "ADDR")]
    origin: Option<std::net::SocketAddr>,
    /// Admin API listener (`admin.listen`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
}

impl ListenOverrides {
    fn apply(&self, loaded: &mut Loaded) {
        let c = &mut loaded.config;
        if self.http.is_some() {
            c.listen.http = self.http;
        }
        if self.https.is_some() {
            c.listen.https = self.https;
        }
        if self.metrics.is_some() {
            c.metrics_listen = self.metrics;
        }
        if let (Some(addr), Some(os)) = (self.origin, c.origin_server.as_mut()) {
            os.listen = addr;
        }
        if let (Some(addr), Some(admin)) = (self.admin, c.admin.as_mut()) {
            admin.listen = addr;
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge, the bucket store and the metrics endpoint.
    ///
    /// Without -c, the embedded default config is used: it creates ./data, a self-signed
    /// certificate for localhost, a `site` bucket with a demo page, and listens on
    /// http://0.0.0.0:8080 (redirects to HTTPS), https://0.0.0.0:8443, the bucket store on
    /// http://127.0.0.1:9000 and metrics on http://127.0.0.1:9100/metrics.
    Serve {
        /// YAML config file (default: the embedded default config).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        listen: ListenOverrides,
    },
    /// Run only the bucket store (the S3 API), e.g. on another machine than the edge.
    Origin {
        /// YAML config file; its `origin_server` and `buckets` sections are used.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a config file and print every error with file, line, column and key path.
    ///
    /// Exits 0 when the file is valid, 1 otherwise.
    CheckConfig {
        /// YAML config file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the embedded default config, a starting point for your own.
    DefaultConfig,
    /// Run a CloudFront function of the config once on an event, as `aws cloudfront
    /// test-function` does: prints the TestResult (output, logs, error, compute utilization).
    TestFunction {
        /// The function's name under `functions`.
        #[arg(value_name = "NAME")]
        name: String,
        /// The event object (JSON), as CloudFront's test events.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// YAML config file defining the function.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a presigned URL for one object of the bucket store (SigV4 query authentication).
    ///
    /// Anyone holding the URL may GET (or PUT, ...) that object until it expires, without
    /// credentials: e.g. a browser uploading straight to the bucket store.
    Presign {
        /// YAML config file whose origin_server credential signs (default: the embedded default).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// HTTP method the URL is for: GET, PUT, HEAD or DELETE.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Content-Type the upload must send (signed, so any other is refused).
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        /// Validity, 1s to 7d (30s, 5m, 1h, 7d).
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        expires: String,
        /// Base URL clients reach the bucket store at (default: http://<origin_server.listen>).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// The object, as s3://bucket/key.
        url: String,
    },
    /// Remove cached objects now, as a CloudFront invalidation does.
    ///
    /// Paths start with `/`; `*` is allowed only at the end (`/images/*`). `/a.jpg` removes
    /// the object without a query string, `/a.jpg*` its query variants too; every Vary
    /// variant goes. Talks to the running server's admin API; prints how many entries went.
    Invalidate {
        /// YAML config file of the running server (default: the embedded default).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The distribution's name (`distributions[].name`).
        #[arg(long, value_name = "NAME")]
        distribution: String,
        /// Admin API address, instead of the config's `admin.listen`.
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        /// Paths to invalidate.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Create a key pair for signed URLs and cookies, and print the YAML to trust it.
    ///
    /// Writes DIR/private_key.pem (keep it with the application that signs) and
    /// DIR/public_key.pem (for the edge's key_groups). RSA 2048 by default.
    Keygen {
        /// Directory to write the key files into (created if missing; files are never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// An ECDSA P-256 key instead of RSA 2048 (sign with --sha256).
        #[arg(long)]
        ec: bool,
    },
    /// Sign a URL (or print signed cookies) in CloudFront's format, as botocore does.
    ///
    /// Without --policy-resource, --ip and --not-before this is a canned policy; with any of
    /// them, a custom policy.
    SignUrl {
        /// Key id of the public key in one of the behavior's trusted key groups.
        #[arg(long, value_name = "ID")]
        key_pair_id: String,
        /// PEM private key (RSA or ECDSA P-256).
        #[arg(long, value_name = "FILE")]
        private_key: PathBuf,
        /// Validity: a duration from now (30s, 10m, 1h, 7d) or @EPOCH_SECONDS.
        #[arg(long, value_name = "WHEN")]
        expires: String,
        /// Custom policy resource pattern (`*` any run, `?` one character), e.g. https://cdn.example.com/videos/*
        #[arg(long, value_name = "PATTERN")]
        policy_resource: Option<String>,
        /// Custom policy: only this IPv4 address or CIDR range may use it.
        #[arg(long, value_name = "CIDR")]
        ip: Option<String>,
        /// Custom policy: not valid before this time (a duration from now or @EPOCH_SECONDS).
        #[arg(long, value_name = "WHEN")]
        not_before: Option<String>,
        /// Sign with SHA-256 (adds Hash-Algorithm=SHA256); required for ECDSA keys.
        #[arg(long)]
        sha256: bool,
        /// Print Set-Cookie headers for signed cookies instead of a URL.
        #[arg(long)]
        cookies: bool,
        /// The URL to sign, as viewers will request it (https://cdn.example.com/path?query).
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { config, listen } => {
            let seed_demo = config.is_none();
            let Some(mut loaded) = load(config.as_deref()) else {
                return ExitCode::FAILURE;
            };
            listen.apply(&mut loaded);
            report(homefront::server::serve(loaded, seed_demo))
        }
        Command::Origin { config } => {
            let loaded = match config::load_file_for(&config, config::Purpose::Origin) {
                Ok(l) => l,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("homefront: not started, the config has {} error(s)", errors.0.len());
                    return ExitCode::FAILURE;
                }
            };
            report(homefront::server::serve_origin(loaded))
        }
        Command::CheckConfig { file } => match config::load_file(&file) {
            Ok(Loaded { config, .. }) => {
                let behaviors: usize = config.distributions.iter().map(|d| d.behaviors.len()).sum();
                println!(
                    "{}: OK ({} distribution(s), {} behavior(s), {} origin(s), {} bucket(s))",
                    file.display(),
                    config.distributions.len(),
                    behaviors,
                    config.origins.len(),
                    config.buckets.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                ExitCode::FAILURE
            }
        },
        Command::DefaultConfig => {
            print!("{}", config::EMBEDDED_DEFAULT);
            ExitCode::SUCCESS
        }
        Command::TestFunction { name, event, config } => {
            let loaded = match config::load_file(&config) {
                Ok(l) => l,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let Some(function) = loaded.config.functions.get(&name) else {
                let known: Vec<&str> = loaded.config.functions.keys().map(String::as_str).collect();
                eprintln!(
                    "{}: no function named '{name}' (functions: {})",
                    config.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                return ExitCode::FAILURE;
            };
            let text = match std::fs::read_to_string(&event) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cannot read {}: {e}", event.display());
                    return ExitCode::FAILURE;
                }
            };
            let now_ms = homefront::util::Clock::from_env().now().saturating_mul(1000);
            match homefront::functions::test_result(function, &text, now_ms) {
                Ok(result) => {
                    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(m) => {
                    eprintln!("{}: {m}", event.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Presign {
            config,
            method,
            content_type,
            expires,
            endpoint,
            url,
        } => {
            let Some(loaded) = load(config.as_deref()) else {
                return ExitCode::FAILURE;
            };
            match presign(
                &loaded,
                &method,
                content_type.as_deref(),
                &expires,
                endpoint.as_deref(),
                &url,
            ) {
                Ok(u) => {
                    println!("{u}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("homefront presign: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Invalidate {
            config,
            distribution,
            admin,
            paths,
        } => {
            let Some(loaded) = load(config.as_deref()) else {
                return ExitCode::FAILURE;
            };
            let Some(conf) = loaded.config.admin.as_ref() else {
                eprintln!("homefront invalidate: the config has no admin section (admin: {{ listen: ... }})");
                return ExitCode::FAILURE;
            };
            let token = match std::fs::read_to_string(&conf.token_file) {
                Ok(t) => t.trim().to_string(),
                Err(e) => {
                    eprintln!(
                        "homefront invalidate: cannot read the admin token {}: {e}",
                        conf.token_file.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            let addr = admin.unwrap_or(conf.listen);
            match homefront::admin::invalidate(addr, &token, &distribution, &paths) {
                Ok(n) => {
                    println!(
                        "invalidated {n} cached {} of distribution {distribution} ({})",
                        if n == 1 { "entry" } else { "entries" },
                        paths.join(" ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("homefront invalidate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keygen { out, ec } => match homefront::keys::keygen(&out, ec) {
            Ok(generated) => {
                print!("{}", generated.instructions());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("homefront keygen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::SignUrl {
            key_pair_id,
            private_key,
            expires,
            policy_resource,
            ip,
            not_before,
            sha256,
            cookies,
            url,
        } => {
            let args = homefront::keys::SignArgs {
                key_pair_id,
                private_key,
                expires,
                policy_resource,
                ip,
                not_before,
                sha256,
                cookies,
                url,
            };
            match homefront::keys::sign(&args, homefront::util::Clock::System.now()) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("homefront sign-url: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Option<Loaded> {
    let result = match path {
        Some(p) => config::load_file(p),
        None => config::load_embedded_default(),
    };
    match result {
        Ok(l) => Some(l),
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("homefront: not started, the config has {} error(s)", errors.0.len());
            None
        }
    }
}

fn presign(
    loaded: &Loaded,
    method: &str,
    content_type: Option<&str>,
    expires: &str,
    endpoint: Option<&str>,
    url: &str,
) -> Result<String, String> {
    use homefront::origin::presign::{parse_s3_url, presign, PresignRequest};
    let server = loaded
        .config
        .origin_server
        .as_ref()
        .ok_or("the config has no origin_server")?;
    let (bucket, key) = parse_s3_url(url)?;
    let method = method.to_ascii_uppercase();
    let req = PresignRequest {
        method: &method,
        bucket,
        key,
        content_type,
        expires: config::parse_duration(expires)?,
        endpoint,
    };
    presign(server, &req, std::time::SystemTime::now())
}

fn report(r: Result<(), homefront::server::StartError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homefront: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    // s3s logs every refused request (a bad signature, an anonymous read of a private
    // object) at ERROR; the bucket store logs its own server errors instead.
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOMEFRONT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s::ops=off"));
    // Colors only on a terminal, so that log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
