# Shared by the load scripts; sourced after `cd` to the repository root.

# Installs Debian package $2 when command $1 is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# An unused loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (up to 10 s) until something listens on loopback port $1.
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; }

# Builds the release binary (into $CARGO_TARGET_DIR when set); sets $bin.
build_homefront() {
  cargo build --release --bin homefront >/dev/null 2>&1 || cargo build --release --bin homefront
  bin=$(realpath "${CARGO_TARGET_DIR:-$PWD/target}")/release/homefront
}

# homefront's edge cache and nginx proxy_cache (on disk, one worker) side by side over HTTPS
# with the same certificate (homefront's generated one), in front of one nginx origin serving
# $work/www with Cache-Control: max-age=3600. Both servers on CPU 0. Needs $work, $bin, $nginx
# and a `pids` array; sets $origin, $hf and $ng. $NGINX_HTTP_EXTRA goes into nginx's http
# block, $NGINX_EDGE_EXTRA into its caching server.
start_edges() {
  origin=$(port); hf=$(port); ng=$(port)
  mkdir -p "$work/www" "$work/nginx-cache" "$work/logs"
  cat > "$work/homefront.yaml" <<YAML
listen: { https: "127.0.0.1:$hf" }
cache: { disk_size: 1GiB, memory_size: 256MiB }
origins:
  www: { http: "127.0.0.1:$origin" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: www }
YAML
  (cd "$work" && HOMEFRONT_LOG=warn exec taskset -c 0 "$bin" serve -c homefront.yaml > homefront.log 2>&1) &
  pids+=($!)
  wait_port "$hf"
  cat > "$work/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  proxy_cache_path $work/nginx-cache keys_zone=edge:64m max_size=1g inactive=1h use_temp_path=off;
  ${NGINX_HTTP_EXTRA:-}
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    add_header Cache-Control "max-age=3600";
  }
  server {
    listen 127.0.0.1:$ng ssl;
    ssl_certificate $work/data/tls/localhost.pem;
    ssl_certificate_key $work/data/tls/localhost.key;
    ${NGINX_EDGE_EXTRA:-}
    location / {
      proxy_pass http://127.0.0.1:$origin;
      proxy_cache edge;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGINX
  taskset -c 0 "$nginx" -c "$work/nginx.conf" -e "$work/logs/error.log" &
  pids+=($!)
  wait_port "$ng"
}
