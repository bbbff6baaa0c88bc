//! `homefront serve` and `homefront origin`: prepares `data_dir`, then runs the edge, the
//! bucket store and the metrics endpoint in one pingora server.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};

use crate::admin::Reload;
use crate::config::model::Config;
use crate::config::Loaded;
use crate::edge::proxy::Edge;
use crate::edge::state::{EdgeState, Shared};
use crate::origin::DiskStore;
use crate::{telemetry, tls};

/// Demo content seeded into the `site` bucket by the embedded default config.
const DEMO: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../conf/demo/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../conf/demo/style.css"),
    ),
    ("logo.svg", "image/svg+xml", include_bytes!("../conf/demo/logo.svg")),
];

/// A start-up failure, with a message for the operator.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(msg: impl Into<String>) -> StartError {
    StartError(msg.into())
}

/// What `prepare` hands to the listeners.
pub struct Prepared {
    pub config: Config,
    /// The edge cache (`data_dir/cache`), opened and recovered.
    pub cache: Option<&'static crate::cache::DiskCache>,
    /// The admin API's bearer token, when `admin` is configured.
    pub admin_token: Option<String>,
    /// The bucket store, when this process runs one.
    pub store: Option<Arc<DiskStore>>,
    pub certs: Arc<tls::CertStore>,
}

/// Everything `serve` must do to `data_dir` before listening: create it, generate missing
/// secrets, make or load certificates, open the bucket store and its buckets, seed the demo.
/// Everything homefront keeps is under `data_dir`: find out now, by writing there, rather
/// than fail on the first upload or cache fill.
fn check_writable(dir: &std::path::Path) -> Result<(), StartError> {
    let probe = dir.join(format!(".homefront-write-check-{}", std::process::id()));
    let written = std::fs::write(&probe, b"ok");
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        err(format!(
            "data_dir {} is not writable by this user: {e} (homefront keeps its buckets, cache, certificates and secrets there)",
            dir.display()
        ))
    })
}

pub fn prepare(loaded: Loaded, seed_demo: bool) -> Result<Prepared, StartError> {
    let Loaded {
        mut config,
        secrets_to_generate,
    } = loaded;
    crate::util::create_private_dir_all(&config.data_dir)
        .map_err(|e| err(format!("cannot create data_dir {}: {e}", config.data_dir.display())))?;
    check_writable(&config.data_dir)?;
    // Installs from before files were created private: fixed once, here.
    match crate::util::make_private(&config.data_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "made {n} entries of data_dir {} private to this user (directories 0700, files 0600)",
            config.data_dir.display()
        ),
        Err(e) => tracing::warn!("cannot make data_dir {} private: {e}", config.data_dir.display()),
    }

    for (idx, path) in secrets_to_generate {
        let secret = generate_secret(&path)?;
        if let Some(cred) = config.origin_server.as_mut().and_then(|s| s.credentials.get_mut(idx)) {
            tracing::info!(
                "generated the secret of origin credential {:?} in {}",
                cred.access_key_id,
                path.display()
            );
            cred.secret_access_key = secret;
        }
    }

    let certs = Arc::new(tls::CertStore::load(&cert_specs(&config)?).map_err(|e| err(e.to_string()))?);

    let store = match &config.origin_server {
        Some(_) => {
            let root = config.data_dir.join("buckets");
            let store = DiskStore::open(&root)
                .map_err(|e| err(format!("cannot open the bucket store in {}: {e}", root.display())))?;
            apply_buckets(&store, &config).map_err(|e| err(format!("{e} (in {})", root.display())))?;
            if seed_demo && config.buckets.contains_key("site") {
                seed(&store, "site")
                    .map_err(|e| err(format!("cannot seed the demo page into bucket \"site\": {e}")))?;
            }
            Some(Arc::new(store))
        }
        None => None,
    };
    Ok(Prepared {
        config,
        store,
        certs,
        cache: None,
        admin_token: None,
    })
}

/// Opens the edge cache and reads (or generates) the admin token: what only `serve` needs.
fn prepare_edge(p: &mut Prepared) -> Result<(), StartError> {
    let dir = p.config.data_dir.join("cache");
    let files = crate::util::raise_open_files_limit();
    tracing::debug!("open files limit: {files}");
    let cache = crate::cache::DiskCache::open(&dir, p.config.cache.disk_size, p.config.cache.memory_size)
        .map_err(|e| err(format!("cannot open the cache in {}: {e}", dir.display())))?;
    let stats = cache.stats();
    tracing::info!(
        "cache: {} entries ({} bytes) recovered from {}",
        stats.disk_entries,
        stats.disk_bytes,
        dir.display()
    );
    // One cache per process, alive until exit: pingora's storage interface wants 'static.
    p.cache = Some(Box::leak(Box::new(cache)));
    if let Some(admin) = &p.config.admin {
        let token = match std::fs::read_to_string(&admin.token_file) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(err(format!(
                    "cannot read the admin token {}: {e}",
                    admin.token_file.display()
                )))
            }
            _ => {
                if let Some(parent) = admin.token_file.parent() {
                    crate::util::create_private_dir_all(parent)
                        .map_err(|e| err(format!("cannot create {}: {e}", parent.display())))?;
                }
                let t = generate_secret(&admin.token_file)?;
                tracing::info!("generated the admin API token in {}", admin.token_file.display());
                t
            }
        };
        p.admin_token = Some(token);
    }
    Ok(())
}

/// The access log writer for the buckets that asked for one.
fn access_log(config: &Config) -> Option<Arc<crate::origin::access_log::AccessLog>> {
    let buckets: std::collections::HashSet<String> = config
        .buckets
        .iter()
        .filter(|(_, b)| b.access_log)
        .map(|(n, _)| n.clone())
        .collect();
    (!buckets.is_empty()).then(|| {
        Arc::new(crate::origin::access_log::AccessLog::new(
            config.data_dir.join("logs/buckets"),
            buckets,
        ))
    })
}

/// Seeds the demo page unless the bucket already has content.
/// Creates the configured buckets and applies their YAML settings (CORS rules, versioning).
fn apply_buckets(store: &DiskStore, config: &Config) -> Result<(), String> {
    for (name, bucket) in &config.buckets {
        store
            .ensure_bucket(name)
            .map_err(|e| format!("cannot create bucket {name:?}: {e}"))?;
        if let Some(rules) = &bucket.cors {
            store
                .set_bucket_cors(name, Some(rules.clone()))
                .map_err(|e| format!("cannot store the CORS rules of bucket {name:?}: {e}"))?;
        }
        if let Some(state) = bucket.versioning {
            store
                .set_versioning(name, state)
                .map_err(|e| format!("cannot set the versioning of bucket {name:?}: {e}"))?;
        }
    }
    Ok(())
}

fn seed(store: &DiskStore, bucket: &str) -> std::io::Result<()> {
    if !store.bucket_is_empty(bucket)? {
        return Ok(());
    }
    for (key, content_type, data) in DEMO {
        store.put_object_bytes(bucket, key, content_type, data)?;
    }
    tracing::info!("seeded the demo page into bucket {bucket:?}");
    Ok(())
}

/// A random secret written with mode 0600, crash-safely.
fn generate_secret(path: &Path) -> Result<String, StartError> {
    let mut raw = [0u8; 30];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| err(format!("no randomness for a secret: {e}")))?;
    let secret = openssl::base64::encode_block(&raw).replace(['+', '/'], "x");
    crate::util::write_file_atomic(path, format!("{secret}\n").as_bytes(), 0o600)
        .map_err(|e| err(format!("cannot write secret file {}: {e}", path.display())))?;
    Ok(secret)
}

/// Binds early so that an address in use is reported clearly, not as a panic later.
fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let l = TcpListener::bind(addr).map_err(|e| err(format!("cannot listen on {addr} ({what}): {e}")))?;
    l.set_nonblocking(true)
        .map_err(|e| err(format!("cannot listen on {addr} ({what}): {e}")))?;
    Ok(l)
}

/// Runs a tokio accept loop on a pre-bound listener inside a pingora background service.
struct ListenerTask<F> {
    listener: Mutex<Option<TcpListener>>,
    run: F,
}

#[async_trait]
impl<F, Fut> BackgroundService for ListenerTask<F>
where
    F: Fn(tokio::net::TcpListener) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(std_listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot start listener: {e}");
                return;
            }
        };
        tokio::select! {
            _ = (self.run)(listener) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Live reload: re-reads the config file, and if it is valid swaps it in for new requests
/// (requests in flight finish under the old one); if not, the old one keeps running.
pub struct Reloader {
    state: Arc<ArcSwap<EdgeState>>,
    certs: Arc<ArcSwap<tls::CertStore>>,
    cache: Option<&'static crate::cache::DiskCache>,
    store: Option<Arc<DiskStore>>,
    /// One reload at a time.
    lock: Mutex<()>,
}

impl Reload for Reloader {
    /// Reloads and logs the outcome.
    fn reload_and_log(&self) -> Result<String, String> {
        let r = self.reload();
        match &r {
            Ok(s) => tracing::info!("{s}"),
            Err(e) => tracing::error!("config reload refused, the running config stays:\n{e}"),
        }
        r
    }
}

impl Reloader {
    /// Reloads from the running config's file. `Ok` says what changed; `Err` is the reason
    /// the running config was kept (every config error with file, line and key).
    pub fn reload(&self) -> Result<String, String> {
        let _one = self
            .lock
            .lock()
            .map_err(|_| "another reload failed badly".to_string())?;
        let old = self.state.load_full();
        let source = old.config.source.clone();
        if source == crate::config::EMBEDDED_SOURCE {
            return Err(
                "running on the embedded default config: there is no file to reload (start with -c FILE)".into(),
            );
        }
        let loaded = crate::config::load_file(std::path::Path::new(&source)).map_err(|e| e.to_string())?;
        let Loaded {
            mut config,
            secrets_to_generate,
        } = loaded;
        if !secrets_to_generate.is_empty() {
            return Err("a new origin_server credential needs its secret generated: restart to add it".into());
        }
        // What a reload cannot change (bound sockets, the data directory) stays as running.
        let mut kept = Vec::new();
        let old_c = &old.config;
        if config.listen.http != old_c.listen.http || config.listen.https != old_c.listen.https {
            kept.push("listen");
        }
        if config.metrics_listen != old_c.metrics_listen {
            kept.push("metrics.listen");
        }
        if config.admin.as_ref().map(|a| a.listen) != old_c.admin.as_ref().map(|a| a.listen) {
            kept.push("admin.listen");
        }
        if config.data_dir != old_c.data_dir {
            kept.push("data_dir");
        }
        let old_store = old_c.origin_server.as_ref().map(|o| (o.listen, o.credentials.len()));
        let new_store = config.origin_server.as_ref().map(|o| (o.listen, o.credentials.len()));
        if old_store != new_store {
            kept.push("origin_server");
        }
        config.listen = old_c.listen.clone();
        config.metrics_listen = old_c.metrics_listen;
        config.admin = old_c.admin.clone();
        config.data_dir = old_c.data_dir.clone();
        if old_store != new_store {
            config.origin_server = old_c.origin_server.clone();
        }
        // Certificates: loaded again from disk (renewed files are picked up too).
        let specs = cert_specs(&config).map_err(|e| e.to_string())?;
        let certs = tls::CertStore::load(&specs).map_err(|e| e.to_string())?;
        self.certs.store(Arc::new(certs));
        if let Some(store) = &self.store {
            apply_buckets(store, &config)?;
        }
        if let Some(cache) = self.cache {
            cache.set_limits(config.cache.disk_size, config.cache.memory_size);
        }
        let behaviors: usize = config.distributions.iter().map(|d| d.behaviors.len()).sum();
        let summary = format!(
            "reloaded {source}: {} distribution(s), {behaviors} behavior(s), {} origin(s){}",
            config.distributions.len(),
            config.origins.len(),
            if kept.is_empty() {
                String::new()
            } else {
                format!("; restart to apply changes to {}", kept.join(", "))
            }
        );
        self.state.store(Arc::new(EdgeState::new(Arc::new(config), old.clock)));
        Ok(summary)
    }

    /// Loads the running config's certificates again from disk (a renewal replaced them);
    /// if they do not load (e.g. the key is not written yet), the ones in use stay.
    pub fn reload_certs_and_log(&self) {
        let state = self.state.load_full();
        let specs = match cert_specs(&state.config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("certificates changed on disk but cannot be used: {e}");
                return;
            }
        };
        match tls::CertStore::load(&specs) {
            Ok(certs) => {
                self.certs.store(Arc::new(certs));
                tracing::info!("certificates reloaded from disk");
            }
            Err(e) => tracing::error!("certificates changed on disk but do not load; the ones in use stay: {e}"),
        }
    }
}

/// Reloads on SIGHUP.
struct HangupReload(Arc<Reloader>);

#[async_trait]
impl BackgroundService for HangupReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = self.0.reload_and_log(); }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Watches files by polling: the config file when `reload.watch` is on (a change reloads as
/// SIGHUP does; a broken file is refused and the running config stays), and the certificate
/// and key files always (a change loads them again, e.g. after a renewal).
struct FileWatch(Arc<Reloader>);

/// How often the watched files are looked at.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What identifies a file's version: inode, length and modification time (`None`: absent).
fn fingerprint(paths: &[std::path::PathBuf]) -> Vec<Option<(u64, u64, std::time::SystemTime)>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.ino(), m.len(), m.modified().ok()?))
        })
        .collect()
}

/// The watched files of a config: its own file (when watched) and its certificates.
fn watched(config: &Config) -> (Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let own = if config.watch_config && config.source != crate::config::EMBEDDED_SOURCE {
        vec![std::path::PathBuf::from(&config.source)]
    } else {
        Vec::new()
    };
    let acme = config.tls.acme.as_ref().map(|a| a.spec());
    let certs = config
        .tls
        .certificates
        .iter()
        .chain(acme.iter())
        .flat_map(|c| [c.cert.clone(), c.key.clone()])
        .collect();
    (own, certs)
}

#[async_trait]
impl BackgroundService for FileWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let state = self.0.state.load_full();
        let (own, certs) = watched(&state.config);
        let (mut last_own, mut last_certs) = (fingerprint(&own), fingerprint(&certs));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            let state = self.0.state.load_full();
            let (own, certs) = watched(&state.config);
            let (now_own, now_certs) = (fingerprint(&own), fingerprint(&certs));
            if now_own != last_own {
                last_own = now_own;
                let reloader = self.0.clone();
                // A reload reads files and may create buckets: off the async workers.
                let _ = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await;
                let state = self.0.state.load_full();
                last_certs = fingerprint(&watched(&state.config).1);
                continue;
            }
            if now_certs != last_certs {
                last_certs = now_certs;
                let reloader = self.0.clone();
                let _ = tokio::task::spawn_blocking(move || reloader.reload_certs_and_log()).await;
            }
        }
    }
}

/// Active health checks of `http` origins' upstreams, for the running config's pools.
struct HealthChecks(Arc<Reloader>);

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // (pool address, due time): pools are rebuilt on reload, so they are told apart by
        // identity and checked as soon as they appear.
        let mut due: std::collections::HashMap<usize, tokio::time::Instant> = Default::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
            let state = self.0.state.load_full();
            let now = tokio::time::Instant::now();
            let mut live = std::collections::HashSet::new();
            for origin in &state.config.origins {
                let Some(pool) = state.pools.get(&origin.name) else {
                    continue;
                };
                let Some(spec) = pool.health_check.clone() else {
                    continue;
                };
                let id = Arc::as_ptr(pool) as usize;
                live.insert(id);
                if due.get(&id).is_some_and(|t| *t > now) {
                    continue;
                }
                due.insert(id, now + spec.interval);
                let timeout = origin
                    .timeouts
                    .connect
                    .min(spec.interval)
                    .max(Duration::from_millis(100));
                for (i, upstream) in pool.upstreams.iter().enumerate() {
                    let (pool, upstream, spec) = (pool.clone(), upstream.clone(), spec.clone());
                    tokio::spawn(async move {
                        let up = crate::edge::pool::check(&upstream, &spec, timeout).await;
                        let label = upstream.address.to_string();
                        telemetry::ORIGIN_HEALTHY
                            .with_label_values(&[pool.origin.as_str(), label.as_str()])
                            .set(i64::from(up));
                        if pool.set_healthy(i, up) {
                            if up {
                                tracing::info!(origin = %pool.origin, upstream = %label, "upstream healthy again");
                            } else {
                                tracing::warn!(origin = %pool.origin, upstream = %label, "upstream marked down by its health check");
                            }
                        }
                    });
                }
            }
            due.retain(|id, _| live.contains(id));
        }
    }
}

/// The certificates to serve: the configured ones, then the ACME one once it exists, and the
/// self-signed `localhost` one when there is nothing else (yet).
fn cert_specs(config: &Config) -> Result<Vec<crate::config::model::CertificateSpec>, StartError> {
    let mut specs = config.tls.certificates.clone();
    if let Some(acme) = &config.tls.acme {
        let spec = acme.spec();
        if tls::CertStore::load(std::slice::from_ref(&spec)).is_ok() {
            specs.push(spec);
        }
    }
    if specs.is_empty() {
        let dir = config.data_dir.join("tls");
        specs.push(tls::ensure_self_signed(&dir).map_err(|e| err(e.to_string()))?);
    }
    Ok(specs)
}

/// Obtains the `tls.acme` certificate when it is missing, no longer names every configured
/// domain, or is due for renewal (checked every minute), then serves it; retries failures
/// with a growing delay (30 s doubling to an hour).
struct AcmeRenewal {
    reloader: Arc<Reloader>,
    challenges: Arc<tls::acme::Challenges>,
}

#[async_trait]
impl BackgroundService for AcmeRenewal {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut wait = Duration::ZERO;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = Duration::from_secs(60);
            let state = self.reloader.state.load_full();
            let Some(cfg) = state.config.tls.acme.clone() else {
                continue;
            };
            let current = std::fs::read(cfg.spec().cert).ok();
            let due = tls::acme::needs_certificate(
                current.as_deref(),
                &cfg.domains,
                cfg.renew_before,
                std::time::SystemTime::now(),
            );
            if !due {
                continue;
            }
            tracing::info!(
                "ACME: obtaining a certificate for {} from {}",
                cfg.domains.join(", "),
                cfg.directory
            );
            let result = tokio::select! {
                r = tls::acme::obtain(&cfg, &self.challenges) => r,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(()) => {
                    failures = 0;
                    tracing::info!(
                        "ACME: certificate for {} stored in {}",
                        cfg.domains.join(", "),
                        cfg.dir.display()
                    );
                    let reloader = self.reloader.clone();
                    let _ = tokio::task::spawn_blocking(move || reloader.reload_certs_and_log()).await;
                }
                Err(e) => {
                    failures += 1;
                    wait = Duration::from_secs(30 << failures.min(7)).min(Duration::from_secs(3600));
                    tracing::error!(
                        "ACME: no certificate for {} ({e}); trying again in {wait:?}",
                        cfg.domains.join(", ")
                    );
                }
            }
        }
    }
}

/// Each edge connection's write buffer, under TLS when there is TLS. pingora's default is
/// 1,460 bytes, one segment: a miss's answer (a header of about 450 bytes and a 1 KiB
/// body, written one after the other) did not fit, so the header left in one `sendto` and
/// the body in another, and the client got two packets. 16 KiB holds a small answer whole
/// and a TLS record short of the 16 KiB maximum (a full one goes straight to the socket);
/// a connection already has a 64 KiB read buffer.
fn edge_buffers() -> L4BufferSettings {
    L4BufferSettings::default().write(16 * 1024)
}

/// `homefront serve`: never returns unless start-up fails.
pub fn serve(loaded: Loaded, seed_demo: bool) -> Result<(), StartError> {
    telemetry::init();
    let mut prepared = prepare(loaded, seed_demo)?;
    prepare_edge(&mut prepared)?;
    let Prepared {
        config,
        store,
        certs,
        cache,
        admin_token,
    } = prepared;
    let config = Arc::new(config);

    // Pre-bind what we serve ourselves; pre-check what pingora binds.
    let origin_listener = match (&config.origin_server, &store) {
        (Some(s), Some(_)) => Some(bind("bucket store", s.listen)?),
        _ => None,
    };
    let metrics_listener = config.metrics_listen.map(|a| bind("metrics", a)).transpose()?;
    let admin_listener = config.admin.as_ref().map(|a| bind("admin API", a.listen)).transpose()?;
    for (what, addr) in [("edge http", config.listen.http), ("edge https", config.listen.https)] {
        if let Some(addr) = addr {
            drop(bind(what, addr)?);
        }
    }

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        // SIGTERM (systemctl stop, docker stop): stop accepting, give requests in flight a
        // few seconds, then exit; pingora's default waits five minutes.
        grace_period_seconds: Some(5),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let clock = crate::util::Clock::from_env();
    if let crate::util::Clock::Fixed(t) = clock {
        tracing::warn!("HOMEFRONT_FIXED_TIME is set: signed URLs are checked as if it were {t} (epoch seconds)");
    }
    let state = Arc::new(ArcSwap::from_pointee(EdgeState::new(config.clone(), clock)));
    let acme = Arc::new(tls::acme::Challenges::default());
    let shared = Arc::new(Shared::new(
        state.clone(),
        cache,
        Some(Arc::new(crate::telemetry::access_log::AccessLogger::start(
            config.data_dir.join("logs/distributions"),
        ))),
        acme.clone(),
    ));
    let edge_proxy = Edge::new(shared.clone());
    let proxy = pingora::proxy::http_proxy(&server.configuration, edge_proxy);
    // Connection limits and timeouts around the proxy (`limits`).
    let mut listeners = pingora::listeners::Listeners::new();
    if let Some(addr) = config.listen.http {
        listeners.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(edge_buffers()));
        tracing::info!("edge listening on http://{addr}");
    }
    let certs = Arc::new(ArcSwap::new(certs));
    if let Some(addr) = config.listen.https {
        let settings = tls::tls_settings(certs.clone(), acme.clone()).map_err(|e| err(e.to_string()))?;
        listeners.add_listener(
            ListenerConfig::tcp(addr.to_string())
                .tls(settings)
                .l4_buffer(edge_buffers()),
        );
        // Handshakes wait for the work already under way (`tls::HandshakePacer`).
        // A PROXY protocol header is read first where the listener expects one.
        listeners.set_pre_tls_callback(Arc::new(crate::edge::conn::BeforeTls {
            shared: shared.clone(),
            proxy_protocol: config.listen.proxy_protocol.https,
            pacer: tls::HandshakePacer::new(threads),
        }));
        tracing::info!("edge listening on https://{addr} (HTTP/2 and HTTP/1.1)");
        if config.listen.proxy_protocol.https {
            tracing::info!(
                "edge https listener expects the PROXY protocol from {:?}",
                config.trusted_proxies
            );
        }
    }
    let edge = pingora::services::listening::Service::with_listeners(
        "homefront edge".to_string(),
        listeners,
        crate::edge::conn::Guard::new(proxy, shared),
    );
    server.add_service(edge);

    let reloader = Arc::new(Reloader {
        state: state.clone(),
        certs,
        cache,
        store: store.clone(),
        lock: Mutex::new(()),
    });
    server.add_service(background_service("homefront reload", HangupReload(reloader.clone())));
    server.add_service(background_service("homefront file watch", FileWatch(reloader.clone())));
    server.add_service(background_service(
        "homefront health checks",
        HealthChecks(reloader.clone()),
    ));
    server.add_service(background_service(
        "homefront acme",
        AcmeRenewal {
            reloader: reloader.clone(),
            challenges: acme,
        },
    ));

    if let (Some(listener), Some(store), Some(os)) = (origin_listener, store, &config.origin_server) {
        let creds: Vec<(String, String)> = os
            .credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), c.secret_access_key.clone()))
            .collect();
        tracing::info!("bucket store listening on http://{} (S3 API, SigV4)", os.listen);
        let log = access_log(&config);
        let task = ListenerTask {
            listener: Mutex::new(Some(listener)),
            run: move |l| {
                let store = store.clone();
                let creds = creds.clone();
                let log = log.clone();
                async move {
                    if let Err(e) = crate::origin::serve(l, store, creds, log.clone()).await {
                        tracing::error!("bucket store stopped: {e}");
                    }
                }
            },
        };
        server.add_service(background_service("homefront bucket store", task));
    }
    if let (Some(listener), Some(addr)) = (metrics_listener, config.metrics_listen) {
        tracing::info!("metrics listening on http://{addr}/metrics");
        let task = ListenerTask {
            listener: Mutex::new(Some(listener)),
            run: telemetry::serve,
        };
        server.add_service(background_service("homefront metrics", task));
    }

    if let (Some(listener), Some(admin), Some(token)) = (admin_listener, &config.admin, admin_token) {
        tracing::info!("admin API listening on http://{}", admin.listen);
        let task = ListenerTask {
            listener: Mutex::new(Some(listener)),
            run: move |l| crate::admin::serve(l, state.clone(), cache, token.clone(), reloader.clone()),
        };
        server.add_service(background_service("homefront admin", task));
    }

    server.run_forever()
}

/// `homefront origin`: only the bucket store, for running it on another machine.
pub fn serve_origin(loaded: Loaded) -> Result<(), StartError> {
    let Prepared { config, store, .. } = prepare(loaded, false)?;
    let (Some(os), Some(store)) = (config.origin_server.clone(), store) else {
        return Err(err(format!("{}: origin_server is not configured", config.source)));
    };
    let listener = bind("bucket store", os.listen)?;
    let creds = os
        .credentials
        .iter()
        .map(|c| (c.access_key_id.clone(), c.secret_access_key.clone()))
        .collect();
    let rt = tokio::runtime::Runtime::new().map_err(|e| err(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| err(format!("cannot listen on {}: {e}", os.listen)))?;
        tracing::info!("bucket store listening on http://{} (S3 API, SigV4)", os.listen);
        crate::origin::serve(listener, store, creds, access_log(&config))
            .await
            .map_err(|e| err(format!("bucket store stopped: {e}")))
    })
}
