#!/usr/bin/env python3
"""The soak run's load, sampler and checks; started by benches/soak.sh (see its header).

Phases: seed the bucket store (boto3) and sign URLs (`homefront sign-url`); warm the cache;
then for --duration seconds run wrk (cache hits) beside Python threads (misses to the HTTP
origin, signed URLs valid and tampered, boto3 uploads each read back through the edge, and
HTTP/2 hits with curl), sampling homefront's RSS and open fds every --sample seconds; the
shell script kills and restarts the HTTP origin in the middle and writes the times to
WORK/events. Afterwards every acknowledged upload is read back through the S3 API and the
edge and compared by SHA-256, and the bounds are checked. Prints the tables; exits 1 with
every reason when a check fails.
"""

import argparse
import collections
import hashlib
import http.client
import io
import json
import os
import random
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

# botocore sends `Expect: 100-continue` with empty bodies too; a server may answer those at
# once without a 100 (hyper, Go's net/http), and then botocore misparses the next response on
# that pooled connection and stalls until its read timeout (boto/botocore#3755). Not the
# store's doing: skip the expectation for empty bodies, as botocore's own switch allows.
os.environ.setdefault("BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE", "true")

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig
from botocore.config import Config  # noqa: E402

MiB = 1024 * 1024

p = argparse.ArgumentParser()
p.add_argument("--bin", required=True)
p.add_argument("--work", required=True)
p.add_argument("--pid", type=int, required=True, help="homefront's pid")
p.add_argument("--https", type=int, required=True)
p.add_argument("--store", type=int, required=True)
p.add_argument("--metrics", type=int, required=True)
p.add_argument("--access-key", required=True)
p.add_argument("--secret-key", required=True)
p.add_argument("--key-pair-id", required=True)
p.add_argument("--private-key", required=True)
p.add_argument("--lua", required=True)
p.add_argument("--duration", type=float, required=True)
p.add_argument("--warmup", type=float, required=True)
p.add_argument("--sample", type=float, required=True)
p.add_argument("--grace", type=float, required=True, help="seconds after the origin's restart in which misses may still fail")
p.add_argument("--fd-bound", type=int, required=True)
p.add_argument("--rss-bound-mib", type=float, required=True)
p.add_argument("--upload-budget-mib", type=float, required=True)
p.add_argument("--hit-connections", type=int, required=True)
a = p.parse_args()

BUCKET = "site"
HOST = f"127.0.0.1:{a.https}"
BASE = f"https://{HOST}"
work = a.work
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", flush=True)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- homefront's process ---------------------------------------------------------------


def proc_start_time(pid):
    """Start time (clock ticks since boot) of pid, or None when it is gone: tells a crash
    and a restart under a reused pid apart from the same process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return None


def proc_sample(pid):
    rss = threads = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def edge_requests_total():
    """Sum of homefront_requests_total from /metrics (every edge request, any kind)."""
    c = http.client.HTTPConnection("127.0.0.1", a.metrics, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("homefront_requests_total{"))


start_ticks = proc_start_time(a.pid)
if start_ticks is None:
    sys.exit(f"FAIL: homefront (pid {a.pid}) is not running")

# --- clients ----------------------------------------------------------------------------

tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE  # homefront's generated self-signed certificate

s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{a.store}",
    aws_access_key_id=a.access_key,
    aws_secret_access_key=a.secret_key,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"},
                  max_pool_connections=8, connect_timeout=10, read_timeout=60),
)


class Edge:
    """One keep-alive HTTPS connection to the edge. A request on a reused connection that
    the server had closed (keep-alive race) is retried once on a new connection and counted
    as 'reused-closed'; any other exception is the result (status 'EXC:<type>')."""

    def __init__(self):
        self.conn = None
        self.used = 0
        self.reused_closed = 0

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", a.https, context=tls, timeout=60)
                self.used = 0
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                self.used += 1
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                reused = self.used > 0
                self.close()
                if attempt == 0 and reused:
                    self.reused_closed += 1
                    continue
                return f"EXC:{type(e).__name__}", {}, b""
            except Exception as e:  # noqa: BLE001 - the soak reports whatever happened
                self.close()
                return f"EXC:{type(e).__name__}", {}, b""

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --- results ------------------------------------------------------------------------------

lock = threading.Lock()
counts = collections.Counter()  # (kind, status) -> n
window = collections.Counter()  # kind -> n since the last sample
window_bad = collections.Counter()  # kind -> unexpected results since the last sample
misses = []  # (t0, t1, status, origin pid) of every request to the HTTP origin
unexpected = []  # (t, kind, what) of results that break the rules (outage judged at the end)
reused_closed = collections.Counter()


def record(kind, status, ok, what=""):
    with lock:
        counts[(kind, str(status))] += 1
        window[kind] += 1
        if not ok:
            window_bad[kind] += 1
            unexpected.append((time.time(), kind, f"{status} {what}".strip()))


def sha(b):
    return hashlib.sha256(b).hexdigest()


# --- seeding ------------------------------------------------------------------------------

log("seeding the bucket store")
objects = {}  # path -> (len, sha256)
# Static objects for the hits: every length different (hits.lua checks lengths by set).
sizes = [0, 1, 100, 1000, 4096, 10_000, 32 * 1024, 100_000, 256 * 1024, 1 * MiB - 7, 2 * MiB + 3]
rnd = random.Random(1)
static = []
for i in range(40):
    n = sizes[i % len(sizes)] + i  # distinct lengths
    if i % 4 == 0:  # compressible text (compress: true by default)
        body = (f"/* soak {i} */ " + "function f(x) { return x * 2; } " * (n // 32 + 1)).encode()[:n]
        key, ctype = f"static/t{i}.js", "application/javascript"
    else:
        body = rnd.randbytes(n)
        key, ctype = f"static/b{i}.bin", "application/octet-stream"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=ctype)
    objects["/" + key] = (len(body), sha(body))
    static.append((key, ctype, len(body)))
private = []
for i in range(10):
    body = rnd.randbytes(1000 + i * 777)
    key = f"private/p{i}.bin"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    objects["/" + key] = (len(body), sha(body))
    private.append(key)


def sign(url, *extra):
    out = subprocess.run([a.bin, "sign-url", "--key-pair-id", a.key_pair_id, "--private-key", a.private_key, *extra, url],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out[len(BASE):]  # the path and query the viewer sends


signed_ok = [sign(f"{BASE}/{k}", "--expires", "3h") for k in private]
wild = sign(f"{BASE}/{private[0]}", "--expires", "3h", "--policy-resource", f"{BASE}/private/*").split("?", 1)[1]
signed_ok += [f"/{k}?{wild}" for k in private]  # one custom policy for every private object
canned = signed_ok[0]
path0, query0 = canned.split("?", 1)
q = dict(urllib.parse.parse_qsl(query0))
sig = q["Signature"]
flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
signed_bad = [
    path0 + "?" + query0.replace(sig, flipped),  # tampered signature
    f"/{private[1]}?{query0}",  # signed for p0, used for p1
    path0 + "?" + query0.replace(q["Key-Pair-Id"], "KUNKNOWNKEY0001"),  # untrusted key id
    path0,  # no signature at all
    sign(f"{BASE}/{private[0]}", "--expires", f"@{int(time.time()) - 60}"),  # expired
    path0 + "?" + query0.replace(f"Expires={q['Expires']}", f"Expires={int(q['Expires']) + 3600}"),  # extended expiry
]

# Warm the cache: every hit request once (plain and, for text, compressed).
edge = Edge()
hit_lines = []
for key, ctype, n in static:
    variants = ["-"] + (["gzip", "br,gzip"] if ctype.startswith("application/javascript") else [])
    for ae in variants:
        hdrs = {} if ae == "-" else {"Accept-Encoding": ae}
        st, h, body = edge.request("GET", "/" + key, headers=hdrs)
        if st != 200 or (ae == "-" and sha(body) != objects["/" + key][1]):
            sys.exit(f"FAIL: warming /{key} ({ae}): {st}, {len(body)} bytes")
        hit_lines.append(f"/{key} {ae} {n}")
for u in signed_ok:
    st, h, body = edge.request("GET", u)
    if st != 200 or sha(body) != objects[u.split("?")[0]][1]:
        sys.exit(f"FAIL: signed URL {u[:60]}... before the load: {st}")
for u in signed_bad:
    st, h, body = edge.request("GET", u)
    if st != 403:
        sys.exit(f"FAIL: bad signed URL {u[:80]}... before the load: {st}, want 403")
edge.close()
with open(f"{work}/hits.txt", "w") as f:
    f.write("\n".join(hit_lines) + "\n")
log(f"seeded {len(static)} static and {len(private)} private objects; {len(hit_lines)} hit requests, "
    f"{len(signed_ok)} valid and {len(signed_bad)} bad signed URLs")

time.sleep(2)
idle_before = proc_sample(a.pid)

# --- the load -------------------------------------------------------------------------

stop = threading.Event()
t_start = time.time()
with open(f"{work}/load_started", "w") as f:
    f.write(f"{t_start}\n")


def miss_worker(wid):
    e = Edge()
    n = 0
    while not stop.is_set():
        n += 1
        path = f"/api/w{wid}/{n}?q={n}"
        t0 = time.time()
        if n % 10 == 0:
            body = os.urandom(random.randint(0, 64 * 1024))
            st, h, data = e.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
            good = st == 200 and data.decode(errors="replace") == sha(body)
            kind = "miss-post"
        else:
            st, h, data = e.request("GET", path)
            good = st == 200 and data == f"app {path}\n".encode()
            kind = "miss-get"
        t1 = time.time()
        if st == 200 and h.get("x-cache", "").split(" ")[0] != "Miss":
            good = False
        with lock:
            misses.append((t0, t1, str(st), h.get("x-origin-pid"), good))
            counts[(kind, str(st))] += 1
            window[kind] += 1
        reused_closed[f"miss-w{wid}"] = e.reused_closed
    e.close()


def signed_worker():
    e = Edge()
    n = 0
    while not stop.is_set():
        n += 1
        if n % 10 == 0:
            u = signed_bad[(n // 10) % len(signed_bad)]
            st, h, data = e.request("GET", u)
            record("signed-bad", st, st == 403, u[:60])
        else:
            u = signed_ok[n % len(signed_ok)]
            st, h, data = e.request("GET", u)
            good = st == 200 and sha(data) == objects[u.split("?")[0]][1]
            record("signed-ok", st, good, "" if good or st != 200 else f"wrong body {len(data)} bytes")
        reused_closed["signed"] = e.reused_closed
    e.close()


uploaded_bytes = 0
upload_seconds = []  # (seconds, size, key) of every acknowledged upload
acked = []
acked_file = open(f"{work}/acked.jsonl", "a")
transfer = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2, use_threads=True)


def upload_worker(wid):
    global uploaded_bytes
    e = Edge()
    n = 0
    r = random.Random(100 + wid)
    while not stop.is_set():
        n += 1
        # Past the budget (disk space: each upload is stored, and cached by the edge read)
        # only small ones go on.
        within = uploaded_bytes < a.upload_budget_mib * MiB
        multipart = n % 12 == 0 and within
        sizes = [0, 1, 777, 4096, 65_536, 300_000, 1 * MiB, 3 * MiB] if within else [0, 1, 777, 4096, 65_536]
        size = r.randint(8 * MiB, 20 * MiB) if multipart else r.choice(sizes)
        name = f"up/w{wid}/{n:06d}-{size}.bin"
        if n % 15 == 0:
            name = f"up/w{wid}/odd name ü+%20 {n:06d}.bin"  # spaces, non-ASCII, + and % through SigV4 and the edge
        data = r.randbytes(size)
        digest = sha(data)
        t0 = time.time()
        try:
            if multipart:
                s3.upload_fileobj(io.BytesIO(data), BUCKET, name, Config=transfer)
            else:
                s3.put_object(Bucket=BUCKET, Key=name, Body=data)
        except Exception as ex:  # noqa: BLE001
            record("upload", f"EXC:{type(ex).__name__}", False, f"{name}: {ex}"[:200])
            continue
        # boto3 returned without an exception: the store acknowledged it with a 200.
        with lock:
            upload_seconds.append((time.time() - t0, size, name))
            uploaded_bytes += size
            acked.append((name, size, digest))
            acked_file.write(json.dumps({"key": name, "size": size, "sha256": digest}) + "\n")
            acked_file.flush()
        record("upload-mpu" if multipart else "upload", 200, True)
        # Read it back through the edge at once: a miss to the bucket origin, then cached.
        st, h, body = e.request("GET", "/" + urllib.parse.quote(name))
        good = st == 200 and sha(body) == digest
        record("edge-read", st, good, f"{name}" + ("" if st != 200 else f" {len(body)} bytes"))
        reused_closed[f"edge-read-w{wid}"] = e.reused_closed
    e.close()


def h2_worker():
    urls = [f"{BASE}/{k}" for k, _, _ in static[:20]]
    args = [x for u in urls for x in (u, "-o", "/dev/null")]
    while not stop.wait(3):
        out = subprocess.run(["curl", "-sk", "--http2", "-Z", "--parallel-max", "8", "-w", "%{http_code} %{http_version}\\n", *args],
                             capture_output=True, timeout=60).stdout.decode(errors="replace").split("\n")
        got = [line.split(" ", 2) for line in out if line.strip()]
        for code, ver, *_ in got:
            record("hit-h2", code, code == "200" and ver == "2", f"HTTP/{ver}")
        for _ in range(len(urls) - len(got)):
            record("hit-h2", "no-answer", False)


samples = []  # (t, rss, fds, threads, edge req/s, {kind: n}, {kind: bad})


def sampler():
    last_t, last_req = time.time(), edge_requests_total()
    while True:
        done = stop.wait(a.sample)
        t = time.time()
        try:
            rss, fds, thr = proc_sample(a.pid)
        except FileNotFoundError:
            fail(f"homefront (pid {a.pid}) is gone at t={t - t_start:.0f}s")
            stop.set()
            return
        try:
            req = edge_requests_total()
        except OSError as ex:
            fail(f"/metrics did not answer at t={t - t_start:.0f}s: {ex}")
            req = last_req
        with lock:
            w, wb = dict(window), dict(window_bad)
            window.clear()
            window_bad.clear()
        samples.append((t - t_start, rss, fds, thr, (req - last_req) / (t - last_t), w, wb))
        last_t, last_req = t, req
        if done:
            return


wrk = subprocess.Popen(["wrk", "-t1", f"-c{a.hit_connections}", f"-d{int(a.duration)}s", "--timeout", "10s",
                        "-s", a.lua, BASE + "/", "--", f"{work}/hits.txt"], stdout=subprocess.PIPE, text=True)
workers = [threading.Thread(target=miss_worker, args=(i,)) for i in range(2)]
workers += [threading.Thread(target=signed_worker), threading.Thread(target=h2_worker)]
workers += [threading.Thread(target=upload_worker, args=(i,)) for i in range(2)]
sample_thread = threading.Thread(target=sampler)
for t in workers + [sample_thread]:
    t.start()
log(f"load running for {a.duration:.0f}s (wrk -c{a.hit_connections} for hits, 6 Python workers), sampling every {a.sample:.0f}s")
stop.wait(a.duration)
stop.set()
for t in workers:
    t.join()
wrk_out = wrk.communicate()[0]
sample_thread.join()
acked_file.close()
t_end = time.time()
log(f"load stopped after {t_end - t_start:.0f}s")

time.sleep(3)  # let closed connections go
try:
    idle_after = proc_sample(a.pid)
except FileNotFoundError:
    idle_after = None

# --- wrk's counts ---------------------------------------------------------------------------

wrk_stats = collections.defaultdict(dict)
for line in wrk_out.splitlines():
    if line.startswith("WRK\t"):
        _, what, name, n = line.split("\t")
        wrk_stats[what][name] = float(n)
if not wrk_stats:
    fail(f"wrk printed no results:\n{wrk_out}")
for code, n in wrk_stats["status"].items():
    counts[("hit", code)] += int(n)
    if code != "200":
        fail(f"cache hits: {int(n)} answered {code}")
for kind, n in wrk_stats["errors"].items():
    if n:
        fail(f"cache hits: {int(n)} {kind} errors (wrk)")
if wrk_stats["badlen"].get("-", 0):
    fail(f"cache hits: {int(wrk_stats['badlen']['-'])} bodies of a length no object has")

# --- the origin's outage ----------------------------------------------------------------------

events = {}
try:
    with open(f"{work}/events") as f:
        for line in f:
            what, t = line.split()
            events[what] = float(t)
except FileNotFoundError:
    pass
if "kill" not in events or "restart" not in events:
    fail(f"the HTTP origin was not killed and restarted during the load (events: {events})")
kill_t = events.get("kill", t_end)
restart_t = events.get("restart", t_end)
outage = (kill_t - 0.5, restart_t + a.grace)
miss_outage = collections.Counter()
miss_bad_outside = collections.Counter()
pids_before, pids_after = collections.Counter(), collections.Counter()
for t0, t1, st, opid, good in misses:
    in_outage = t1 >= outage[0] and t0 <= outage[1]
    if in_outage:
        miss_outage[st] += 1
        if not good and st not in ("502", "504"):
            miss_bad_outside[f"{st} (during the outage; only 502/504 allowed)"] += 1
    else:
        if not good:
            miss_bad_outside[st] += 1
        if good:
            (pids_before if t1 < kill_t else pids_after)[opid] += 1
for what, n in miss_bad_outside.items():
    fail(f"misses to the HTTP origin: {n} answered {what} outside the outage window or with a wrong body/X-Cache")
if "restart" in events:
    if not pids_after:
        fail(f"misses never recovered after the origin's restart (+{a.grace:.0f}s grace)")
    elif set(pids_after) & set(pids_before):
        fail(f"after the restart the old origin pid still answered: {pids_before} / {pids_after}")

# --- unexpected results of the other kinds ------------------------------------------------------

by_kind = collections.Counter()
for t, kind, what in unexpected:
    by_kind[kind] += 1
for kind, n in by_kind.items():
    examples = [f"t={t - t_start:.1f}s {w}" for t, k, w in unexpected if k == kind][:5]
    fail(f"{kind}: {n} unexpected results, e.g. {examples}")

# --- every acknowledged upload, read back -----------------------------------------------------

log(f"reading back {len(acked)} acknowledged uploads (S3 API and edge)")
bad_s3, bad_edge = [], []
e = Edge()
for name, size, digest in acked:
    try:
        body = s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
        if len(body) != size or sha(body) != digest:
            bad_s3.append(f"{name}: {len(body)} bytes, sha256 {sha(body)[:12]} != {digest[:12]}")
    except Exception as ex:  # noqa: BLE001
        bad_s3.append(f"{name}: {type(ex).__name__} {ex}"[:200])
    st, h, body = e.request("GET", "/" + urllib.parse.quote(name))
    if st != 200 or sha(body) != digest:
        bad_edge.append(f"{name}: {st}, {len(body)} bytes")
e.close()
listed = set()
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="up/"):
    listed.update(o["Key"] for o in page.get("Contents", []))
missing_listing = [n for n, _, _ in acked if n not in listed]
if bad_s3:
    fail(f"{len(bad_s3)} acknowledged uploads missing or different through the S3 API: {bad_s3[:5]}")
if bad_edge:
    fail(f"{len(bad_edge)} acknowledged uploads missing or different through the edge: {bad_edge[:5]}")
if missing_listing:
    fail(f"{len(missing_listing)} acknowledged uploads not in ListObjectsV2: {missing_listing[:5]}")
if not acked:
    fail("no upload was acknowledged")

# --- homefront itself ---------------------------------------------------------------------------

now_ticks = proc_start_time(a.pid)
if now_ticks != start_ticks:
    fail(f"homefront (pid {a.pid}) died or was replaced during the run (start time {start_ticks} -> {now_ticks})")
else:
    e = Edge()
    st, _, body = e.request("GET", "/" + static[5][0])
    if st != 200 or sha(body) != objects["/" + static[5][0]][1]:
        fail(f"homefront no longer serves a cached object after the run: {st}")
    st, _, body = e.request("GET", "/api/final")
    if st != 200 or body != b"app /api/final\n":
        fail(f"homefront no longer reaches the HTTP origin after the run: {st}")
    e.close()

# --- the tables and the bounds ----------------------------------------------------------------

kinds = ["miss-get", "miss-post", "signed-ok", "signed-bad", "hit-h2", "upload", "upload-mpu", "edge-read"]
print()
print(f"Samples (t from the load's start; origin killed at t={kill_t - t_start:.1f}s, restarted at t={restart_t - t_start:.1f}s;"
      f" edge/s from homefront_requests_total, other columns are this script's requests per interval, ! = unexpected)")
hdr = f"{'t(s)':>6} {'RSS MiB':>8} {'fds':>5} {'thr':>4} {'edge/s':>7} " + " ".join(f"{k:>10}" for k in kinds)
print(hdr)
print(f"{'idle':>6} {idle_before[0]:8.1f} {idle_before[1]:5d} {idle_before[2]:4d} {'':>7}")
for t, rss, fds, thr, rps, w, wb in samples:
    note = ""
    if kill_t - t_start <= t and t - a.sample < kill_t - t_start:
        note = "  <- origin killed"
    if restart_t - t_start <= t and t - a.sample < restart_t - t_start:
        note += "  <- origin restarted"
    cells = " ".join(f"{str(w.get(k, 0)) + ('!' if wb.get(k) else ''):>10}" for k in kinds)
    print(f"{t:6.0f} {rss:8.1f} {fds:5d} {thr:4d} {rps:7.0f} {cells}{note}")
if idle_after:
    print(f"{'idle':>6} {idle_after[0]:8.1f} {idle_after[1]:5d} {idle_after[2]:4d} {'':>7}   (3 s after the load)")

print()
print("Requests by kind and status (client side)")
for (kind, st), n in sorted(counts.items()):
    print(f"  {kind:<11} {st:<24} {n:>9}")
print(f"  misses during the outage window [{outage[0] - t_start:.1f}s, {outage[1] - t_start:.1f}s]: {dict(miss_outage)}")
print(f"  origin pids that answered before the kill: {dict(pids_before)}, after the restart: {dict(pids_after)}")
if wrk_stats:
    print(f"  hits (wrk): X-Cache {dict((k, int(v)) for k, v in wrk_stats['xcache'].items())}, "
          f"latency ms p50 {wrk_stats['latency_ms'].get('p50')} p99 {wrk_stats['latency_ms'].get('p99')} max {wrk_stats['latency_ms'].get('max')}")
print(f"  keep-alive connections closed by the server and retried once: {dict(reused_closed)}")
if upload_seconds:
    secs = sorted(x[0] for x in upload_seconds)
    slow = sorted(upload_seconds, reverse=True)[:3]
    print(f"  upload seconds: p50 {secs[len(secs) // 2]:.3f}, p99 {secs[int(len(secs) * 0.99)]:.3f}, max {secs[-1]:.3f}"
          f" (slowest: {', '.join(f'{t:.2f}s {n // 1024} KiB' for t, n, _ in slow)})")
print(f"  uploads acknowledged: {len(acked)} ({uploaded_bytes / MiB:.1f} MiB, {sum(1 for _, s, _ in acked if s >= 8 * MiB)} multipart);"
      f" verified through the S3 API: {len(acked) - len(bad_s3)}, through the edge: {len(acked) - len(bad_edge)}")

during = [s for s in samples if s[0] >= a.warmup]
if not during:
    fail(f"no sample after the warmup ({a.warmup:.0f}s): the run is too short")
else:
    warm = during[0]
    last = samples[-1]
    peak_rss = max(s[1] for s in samples)
    print()
    print(f"Bounds: fds at the end <= post-warmup + {a.fd_bound}, idle fds after <= idle before + {a.fd_bound}, "
          f"RSS at the end <= post-warmup + {a.rss_bound_mib:.0f} MiB")
    print(f"  post-warmup (t={warm[0]:.0f}s): RSS {warm[1]:.1f} MiB, {warm[2]} fds; end of load (t={last[0]:.0f}s): "
          f"RSS {last[1]:.1f} MiB ({last[1] - warm[1]:+.1f}), {last[2]} fds ({last[2] - warm[2]:+d}); peak RSS {peak_rss:.1f} MiB")
    if idle_after:
        print(f"  idle before: RSS {idle_before[0]:.1f} MiB, {idle_before[1]} fds; idle after: RSS {idle_after[0]:.1f} MiB, "
              f"{idle_after[1]} fds ({idle_after[1] - idle_before[1]:+d})")
    if last[2] - warm[2] > a.fd_bound:
        fail(f"open fds grew from {warm[2]} (post-warmup) to {last[2]} at the end of the load (bound +{a.fd_bound})")
    if idle_after and idle_after[1] - idle_before[1] > a.fd_bound:
        fail(f"idle open fds grew from {idle_before[1]} before the load to {idle_after[1]} after it (bound +{a.fd_bound})")
    if idle_after and idle_after[1] - warm[2] > a.fd_bound:
        fail(f"open fds grew from {warm[2]} (post-warmup) to {idle_after[1]} after the load (bound +{a.fd_bound})")
    for label, rss in (("at the end of the load", last[1]), ("after the load", idle_after[0] if idle_after else None)):
        if rss is not None and rss - warm[1] > a.rss_bound_mib:
            fail(f"RSS grew from {warm[1]:.1f} MiB (post-warmup) to {rss:.1f} MiB {label} (bound +{a.rss_bound_mib:.0f} MiB)")

print()
if failures:
    print(f"SOAK FAILED: {len(failures)} problem(s):")
    for f_ in failures:
        print(f"  - {f_}")
    sys.exit(1)
print("SOAK PASSED")
