#!/usr/bin/env python3
"""Drive a real Jupyter Server the way a user's browser would.

Usage: python3 tests/jupyter_client.py BASE_URL TOKEN [--insecure] [--timeout SECONDS]

BASE_URL is where the viewer reaches Jupyter, e.g. http://127.0.0.1:8080 or
https://localhost:8443 (optionally with a path prefix if the server runs with
--ServerApp.base_url). --insecure turns off certificate verification for a
self-signed test certificate.

Steps, each of which must pass:
  1. GET  /api/status with "Authorization: token TOKEN" -> 200 JSON.
  2. Browser login: GET /login?next=%2F (sets the _xsrf cookie), POST /login
     with password=TOKEN&_xsrf=... (Jupyter takes the token as the password)
     -> 302 and a login cookie. Then, with cookies only (no token):
     a POST /api/kernels WITHOUT X-XSRFToken must be refused with 403 (so the
     XSRF check really is active), and the same POST WITH X-XSRFToken must
     start a python3 kernel (201). This proves cookies and XSRF survive.
  3. Open the websocket /api/kernels/{id}/channels (ws:// or wss:// to match
     BASE_URL) with "Authorization: token TOKEN", send an execute_request for
     print(6*7), and wait for the iopub stream "42\\n" and the shell
     execute_reply with status ok, both parented to that request.
  4. DELETE the kernel (also done on failure, best effort).

Browser-like Origin and Referer headers built from BASE_URL are sent with the
POSTs and the websocket handshake, so Jupyter's same-origin checks only pass
if the proxy hands Jupyter the viewer's Host header unchanged.

Prints one line "jupyter ok: ..." and exits 0, or "jupyter FAILED: ..." on
stderr and exits 1. Uses only the standard library and tornado (a dependency
of jupyter-server).
"""

import argparse
import asyncio
import datetime
import http.cookiejar
import json
import re
import ssl
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


class Failure(Exception):
    pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx responses back to the caller instead of following them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    def __init__(self, base_url, token, insecure, timeout):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise Failure(f"BASE_URL must be http://host[:port] or https://..., got {base_url!r}")
        self.scheme = parsed.scheme
        self.origin = f"{parsed.scheme}://{parsed.netloc}"
        self.prefix = parsed.path.rstrip("/")  # "" or "/some/base"
        self.token = token
        self.insecure = insecure
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.ssl_context = None
        if self.scheme == "https":
            self.ssl_context = ssl.create_default_context()
            if insecure:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        # Two clients: a script sending the token (no cookies kept; Jupyter
        # answers token requests with a login cookie, which would spoil the
        # login test), and a browser keeping cookies and sending no token.
        self.cookies = http.cookiejar.CookieJar()
        handlers = [
            urllib.request.ProxyHandler({}),  # never go through $http_proxy
            NoRedirect(),
        ]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        self.script = urllib.request.build_opener(*handlers)
        self.browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), *handlers)

    def url(self, path):
        return self.origin + self.prefix + path

    def remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"overall timeout of {self.timeout:g}s exceeded")
        return left

    def request(self, method, path, *, body=None, headers=None, browser=False, form=None):
        """Return (status, headers, body bytes). Never raises for HTTP status codes.

        browser=False: authenticate with the token header, keep no cookies.
        browser=True: send and keep the browser's cookies, no token.
        """
        hdrs = {"Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if method not in ("GET", "HEAD"):
            # What a browser sends with a same-origin fetch/form post.
            hdrs["Origin"] = self.origin
            hdrs["Referer"] = self.url("/")
        if not browser:
            hdrs["Authorization"] = f"token {self.token}"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url(path), data=data, headers=hdrs, method=method)
        try:
            with (self.browser if browser else self.script).open(req, timeout=self.remaining()) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise Failure(f"{method} {self.url(path)}: {getattr(e, 'reason', e)}") from None

    def cookie(self, name):
        for c in self.cookies:
            if c.name == name:
                return c.value
        return None


def expect(what, status, body, *codes, hint=""):
    if status not in codes:
        text = body.decode("utf-8", "replace")
        if text.lstrip().startswith("<"):  # an HTML error page: keep its words only
            text = re.sub(r"(?s)<(script|style|head)\b.*?</\1>|<[^>]*>", " ", text)
        text = " ".join(text.split())[:300]
        raise Failure(f"{what}: HTTP {status} (wanted {'/'.join(map(str, codes))}): {text}"
                      + (f" [{hint}]" if hint else ""))


HOST_HINT = ("wrong token, or Jupyter refused the Host header: without "
             "--ServerApp.allow_remote_access=True it only accepts localhost or a loopback IP")
ORIGIN_HINT = ("Jupyter answers 404 when Origin does not match the Host header it got: "
               "the proxy must pass the viewer's Host unchanged")


def json_body(what, body):
    try:
        return json.loads(body)
    except ValueError:
        raise Failure(f"{what}: not JSON: {body[:200]!r}") from None


def check_status(c):
    status, _, body = c.request("GET", "/api/status")
    expect("GET /api/status (token)", status, body, 200, hint=HOST_HINT if status == 403 else "")
    info = json_body("GET /api/status", body)
    if not isinstance(info, dict) or "started" not in info:
        raise Failure(f"GET /api/status: unexpected body {info!r}")
    status, _, body = c.request("GET", "/api", browser=True)
    expect("GET /api", status, body, 200)
    return json_body("GET /api", body).get("version", "?")


def browser_login(c):
    status, _, body = c.request("GET", "/login?next=" + urllib.parse.quote(c.prefix + "/", safe=""),
                                browser=True, headers={"Accept": "text/html"})
    expect("GET /login", status, body, 200)
    xsrf = c.cookie("_xsrf")
    if not xsrf:
        raise Failure("GET /login did not set an _xsrf cookie")
    status, headers, body = c.request(
        "POST", "/login?next=" + urllib.parse.quote(c.prefix + "/", safe=""),
        browser=True, form={"password": c.token, "_xsrf": xsrf},
        headers={"Accept": "text/html"})
    if status == 401:
        raise Failure("POST /login: 401 Invalid credentials (token rejected as password)")
    expect("POST /login", status, body, 302, hint=ORIGIN_HINT if status == 404 else "")
    location = headers.get("Location", "")
    if not any(ck.name.startswith("username-") for ck in c.cookies):
        names = sorted(ck.name for ck in c.cookies)
        raise Failure(f"POST /login: no login cookie kept (cookies: {names}, Location: {location!r})")
    return xsrf


def start_kernel_with_cookies(c, xsrf):
    # Without the XSRF header a cookie-authenticated POST must be refused...
    status, _, body = c.request("POST", "/api/kernels", body={"name": "python3"}, browser=True)
    if status in (200, 201):
        kid = json_body("POST /api/kernels", body).get("id")
        if kid:
            c.request("DELETE", f"/api/kernels/{kid}")
        raise Failure("POST /api/kernels with cookies but no X-XSRFToken was accepted: XSRF check not active")
    expect("POST /api/kernels (cookies, no X-XSRFToken)", status, body, 403,
           hint=ORIGIN_HINT if status == 404 else "")
    # ...and accepted with it.
    status, _, body = c.request("POST", "/api/kernels", body={"name": "python3"}, browser=True,
                                headers={"X-XSRFToken": xsrf})
    expect("POST /api/kernels (cookies + X-XSRFToken)", status, body, 201, 200,
           hint=ORIGIN_HINT if status == 404 else "")
    kernel = json_body("POST /api/kernels", body)
    if not kernel.get("id"):
        raise Failure(f"POST /api/kernels: no kernel id in {kernel!r}")
    return kernel["id"]


def decode_ws_message(raw):
    if isinstance(raw, str):
        return json.loads(raw)
    # Legacy binary framing (only used for messages carrying buffers):
    # uint32 nbufs, nbufs uint32 offsets, the first part being the JSON message.
    nbufs = struct.unpack("!I", raw[:4])[0]
    offsets = struct.unpack("!" + "I" * nbufs, raw[4:4 + 4 * nbufs])
    end = offsets[1] if nbufs > 1 else len(raw)
    return json.loads(raw[offsets[0]:end].decode("utf-8"))


async def execute_over_websocket(c, kernel_id):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    ws_scheme = "wss" if c.scheme == "https" else "ws"
    session = uuid.uuid4().hex
    ws_url = (f"{ws_scheme}://{c.origin.split('://', 1)[1]}{c.prefix}"
              f"/api/kernels/{urllib.parse.quote(kernel_id)}/channels?session_id={session}")
    req = HTTPRequest(
        ws_url,
        headers={"Authorization": f"token {c.token}", "Origin": c.origin},
        validate_cert=not c.insecure,
        connect_timeout=c.remaining(),
        request_timeout=c.remaining(),
    )
    try:
        conn = await asyncio.wait_for(websocket_connect(req), timeout=c.remaining())
    except asyncio.TimeoutError:
        raise Failure(f"websocket {ws_url}: handshake timed out") from None
    except Exception as e:  # HTTPClientError (e.g. 403/404), ssl/socket errors
        raise Failure(f"websocket {ws_url}: {type(e).__name__}: {e}") from None

    msg_id = uuid.uuid4().hex
    msg = {
        "header": {
            "msg_id": msg_id,
            "username": "homefront-test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": "print(6*7)",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    try:
        await conn.write_message(json.dumps(msg))
        stdout = ""
        reply = None
        seen = 0
        while reply is None or stdout != "42\n":
            try:
                raw = await asyncio.wait_for(conn.read_message(), timeout=c.remaining())
            except asyncio.TimeoutError:
                raise Failure(f"websocket: timed out waiting for output (stdout so far {stdout!r}, "
                              f"execute_reply {'seen' if reply else 'not seen'}, {seen} messages)") from None
            if raw is None:
                raise Failure(f"websocket closed by peer (code {conn.close_code}, reason {conn.close_reason!r}) "
                              f"after {seen} messages, stdout so far {stdout!r}")
            seen += 1
            m = decode_ws_message(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = m.get("msg_type") or m.get("header", {}).get("msg_type")
            chan = m.get("channel")
            content = m.get("content", {})
            if chan == "iopub" and kind == "stream" and content.get("name") == "stdout":
                stdout += content.get("text", "")
                if not "42\n".startswith(stdout):
                    raise Failure(f"kernel printed {stdout!r}, wanted '42\\n'")
            elif chan == "iopub" and kind == "error":
                raise Failure(f"kernel error: {content.get('ename')}: {content.get('evalue')}")
            elif chan == "shell" and kind == "execute_reply":
                reply = content
                if content.get("status") != "ok":
                    raise Failure(f"execute_reply status {content.get('status')!r}: "
                                  f"{content.get('ename')}: {content.get('evalue')}")
        return reply.get("execution_count"), seen
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description="Drive a Jupyter Server like a browser would.")
    ap.add_argument("base_url", metavar="BASE_URL")
    ap.add_argument("token", metavar="TOKEN")
    ap.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    ap.add_argument("--timeout", type=float, default=60.0, help="overall time limit in seconds (default 60)")
    args = ap.parse_args()

    t0 = time.monotonic()
    kernel_id = None
    c = None
    try:
        c = Client(args.base_url, args.token, args.insecure, args.timeout)
        version = check_status(c)
        xsrf = browser_login(c)
        kernel_id = start_kernel_with_cookies(c, xsrf)
        count, seen = asyncio.run(execute_over_websocket(c, kernel_id))
        status, _, body = c.request("DELETE", f"/api/kernels/{kernel_id}")
        expect(f"DELETE /api/kernels/{kernel_id}", status, body, 204)
        kernel_id = None
    except Failure as e:
        print(f"jupyter FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if kernel_id is not None and c is not None:
            try:  # best effort, do not leave a kernel running
                c.deadline = max(c.deadline, time.monotonic() + 10)
                c.request("DELETE", f"/api/kernels/{kernel_id}")
            except Exception:
                pass
    print(f"jupyter ok: server {version} at {args.base_url}: token REST, cookie login + XSRF, "
          f"kernel started, print(6*7) -> 42 over {'wss' if c.scheme == 'https' else 'ws'} "
          f"(execution_count {count}, {seen} ws messages), kernel deleted in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
