//! The engine and its built-ins, called as the edge calls them.

use super::*;
use std::time::Duration;

fn compile(runtime: Runtime, source: &str) -> Result<Function, CompileError> {
    compile_with(runtime, source, None, Limits::default())
}

fn compile_with(runtime: Runtime, source: &str, kvs: Option<Kvs>, limits: Limits) -> Result<Function, CompileError> {
    // A budget that a loaded CI machine cannot miss, but a runaway loop still meets.
    let limits = Limits {
        compute: limits.compute.max(Duration::from_millis(200)),
        ..limits
    };
    Function::compile("t", "t.js", runtime, source.to_string(), kvs.map(Arc::new), limits)
}

const EVENT: &str = r#"{"version":"1.0","context":{"eventType":"viewer-request","requestId":"r1","distributionDomainName":"d.example","distributionId":"D1"},"viewer":{"ip":"192.0.2.1"},"request":{"method":"GET","uri":"/a/b","querystring":{"x":{"value":"1"}},"headers":{"host":{"value":"d.example"}},"cookies":{}}}"#;

fn result(f: &Function) -> serde_json::Value {
    let out = f.run(EVENT, "r1", 1_800_000_000_000);
    out.result.unwrap_or_else(|e| panic!("{e}"))
}

fn failure(f: &Function) -> Failure {
    f.run(EVENT, "r1", 1_800_000_000_000)
        .result
        .expect_err("the call should fail")
}

#[test]
fn a_handler_gets_the_event_and_its_result_comes_back_in_both_runtimes() {
    let src = "function handler(event) { var r = event.request; r.uri += '/index.html'; r.headers['x-ip'] = {value: event.viewer.ip}; return r; }";
    for runtime in [Runtime::Js1, Runtime::Js2] {
        let f = compile(runtime, src).unwrap();
        // Twice: the second call reuses the thread's context.
        for _ in 0..2 {
            let r = result(&f);
            assert_eq!(r["uri"], "/a/b/index.html");
            assert_eq!(r["headers"]["x-ip"]["value"], "192.0.2.1");
        }
    }
}

#[test]
fn async_handlers_imports_and_require_work_in_runtime_2() {
    let src = r#"
import cf from 'cloudfront';
import crypto from 'crypto';
const qs = require('querystring');
const kvs = cf.kvs('any-id');
async function handler(event) {
    const r = event.request;
    r.headers['x-v'] = {value: await kvs.get('greeting')};
    r.headers['x-j'] = {value: String((await kvs.get('obj', {format: 'json'})).n)};
    r.headers['x-e'] = {value: String(await kvs.exists('nope'))};
    try { await kvs.get('nope'); } catch (e) { r.headers['x-missing'] = {value: 'yes'}; }
    r.headers['x-h'] = {value: crypto.createHash('sha256').update('abc').digest('hex')};
    r.headers['x-m'] = {value: crypto.createHmac('sha256', 'Jefe').update('what do ya want ').update('for nothing?').digest('base64url')};
    r.headers['x-q'] = {value: qs.stringify({b: ['2', '1'], a: 'x y'})};
    r.headers['x-p'] = {value: JSON.stringify(qs.parse('a=1&a=2&b=%20c+d'))};
    r.headers['x-b'] = {value: Buffer.from('aGk_', 'base64url').toString() + Buffer.from('hé').toString('hex')};
    r.headers['x-k'] = {value: String((await kvs.meta()).keyCount)};
    return r;
}"#;
    let kvs = Kvs::parse(
        r#"{"data":[{"key":"greeting","value":"hello"},{"key":"obj","value":"{\"n\":7}"}]}"#,
        0,
    )
    .unwrap();
    let f = compile_with(Runtime::Js2, src, Some(kvs), Limits::default()).unwrap();
    let r = result(&f);
    let h = |n: &str| r["headers"][n]["value"].as_str().unwrap().to_string();
    assert_eq!(h("x-v"), "hello");
    assert_eq!(h("x-j"), "7");
    assert_eq!(h("x-e"), "false");
    assert_eq!(h("x-missing"), "yes");
    assert_eq!(
        h("x-h"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(h("x-m"), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
    assert_eq!(h("x-q"), "b=2&b=1&a=x%20y");
    assert_eq!(h("x-p"), r#"{"a":["1","2"],"b":" c d"}"#);
    assert_eq!(h("x-b"), "hi?68c3a9");
    assert_eq!(h("x-k"), "2");
}

#[test]
fn runtime_1_has_njs_byte_strings() {
    let src = "var crypto = require('crypto'); function handler(e) { var r = e.request; r.headers['x'] = {value: String.bytesFrom('aGk', 'base64url') + crypto.createHash('md5').update('').digest('base64')}; return r; }";
    let f = compile(Runtime::Js1, src).unwrap();
    assert_eq!(result(&f)["headers"]["x"]["value"], "hi1B2M2Y8AsgTpgAmY7PhCfg==");
}

#[test]
fn console_log_is_kept_per_call() {
    let f = compile(
        Runtime::Js2,
        "function handler(e) { console.log('uri', e.request.uri, {a: 1}); return e.request; }",
    )
    .unwrap();
    let out = f.run(EVENT, "r1", 1_800_000_000_000);
    assert!(out.result.is_ok());
    assert_eq!(out.logs, vec![r#"uri /a/b {"a":1}"#.to_string()]);
    assert_eq!(f.run(EVENT, "r1", 1_800_000_000_000).logs.len(), 1);
}

#[test]
fn the_origin_a_function_chooses_is_reported() {
    let f = compile(
        Runtime::Js2,
        "import cf from 'cloudfront'; function handler(e) { cf.selectRequestOriginById('b'); return e.request; }",
    )
    .unwrap();
    assert_eq!(
        f.run(EVENT, "r1", 1_800_000_000_000).origin.as_deref(),
        Some(r#"{"select":"b"}"#)
    );
}

#[test]
fn a_throw_is_an_execution_error_with_where_it_was() {
    let f = compile(Runtime::Js2, "function handler(e) {\n  throw new Error('boom');\n}").unwrap();
    let e = failure(&f);
    assert_eq!(e.kind, FailureKind::Execution);
    assert!(e.message.contains("Error: boom"), "{}", e.message);
    assert!(e.message.contains("t.js:2"), "{}", e.message);
    // A rejected promise too.
    let f = compile(Runtime::Js2, "async function handler(e) { throw new TypeError('no'); }").unwrap();
    assert!(failure(&f).message.contains("TypeError: no"));
}

#[test]
fn returning_nothing_is_a_validation_error() {
    let f = compile(Runtime::Js1, "function handler(e) { }").unwrap();
    assert_eq!(failure(&f).kind, FailureKind::Validation);
}

#[test]
fn a_runaway_function_is_stopped_at_its_budget_and_cannot_catch_it() {
    let limits = Limits {
        compute: Duration::from_millis(20),
        ..Limits::default()
    };
    let src = "function handler(e) { try { while (true) {} } catch (x) { return e.request; } }";
    let f = Function::compile("t", "t.js", Runtime::Js2, src.into(), None, limits).unwrap();
    let out = f.run(EVENT, "r1", 1_800_000_000_000);
    assert_eq!(out.result.unwrap_err().kind, FailureKind::Throttled);
    assert!(out.cpu >= Duration::from_millis(20));
    assert_eq!(f.utilization(out.cpu), 100);
    // A catastrophic regular expression is stopped too.
    let src = "function handler(e) { /(a+)+$/.test('a'.repeat(40) + 'b'); return e.request; }";
    let f = Function::compile("t", "t.js", Runtime::Js2, src.into(), None, limits).unwrap();
    assert_eq!(failure(&f).kind, FailureKind::Throttled);
}

#[test]
fn memory_and_stack_are_limited() {
    let limits = Limits {
        memory: 1024 * 1024,
        ..Limits::default()
    };
    let src = "var keep = []; function handler(e) { for (;;) keep.push('x'.repeat(1000) + keep.length); }";
    let f = compile_with(Runtime::Js2, src, None, limits).unwrap();
    let e = failure(&f);
    assert_eq!(e.kind, FailureKind::Execution);
    assert!(e.message.contains("memory"), "{}", e.message);
    // The context is made anew: the next call starts from an empty `keep`.
    let src = "function f(n) { return f(n + 1) + 1; } function handler(e) { f(0); return e.request; }";
    let f = compile(Runtime::Js2, src).unwrap();
    assert!(failure(&f).message.contains("RangeError"), "{}", failure(&f).message);
}

#[test]
fn code_that_does_not_load_is_refused_with_its_line() {
    let e = compile(Runtime::Js2, "function handler(e) {\n  return e.request\n  }}\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{}", e.message);
    let e = compile(Runtime::Js2, "function other(e) { return e.request; }").unwrap_err();
    assert!(e.message.contains("handler"), "{}", e.message);
    let e = compile(Runtime::Js1, "function other(e) { return e.request; }").unwrap_err();
    assert!(e.message.contains("handler"), "{}", e.message);
    let e = compile(
        Runtime::Js2,
        "import x from 'fs'; function handler(e) { return e.request; }",
    )
    .unwrap_err();
    assert!(e.message.contains("fs"), "{}", e.message);
    let big = format!(
        "function handler(e) {{ return e.request; }} // {}",
        "x".repeat(10 * 1024)
    );
    assert!(compile(Runtime::Js2, &big)
        .unwrap_err()
        .message
        .contains("at most 10240 bytes"));
    // A top-level loop does not hang the loader.
    let e = compile(
        Runtime::Js1,
        "while (true) {} function handler(e) { return e.request; }",
    )
    .unwrap_err();
    assert!(e.message.contains("compute"), "{}", e.message);
}

#[test]
fn no_file_or_network_access_is_there() {
    let src = "function handler(e) { var r = e.request; r.headers['x'] = {value: [typeof std, typeof os, typeof fetch, typeof XMLHttpRequest, typeof require('crypto')].join(',')}; return r; }";
    let f = compile(Runtime::Js2, src).unwrap();
    assert_eq!(
        result(&f)["headers"]["x"]["value"],
        "undefined,undefined,undefined,undefined,object"
    );
}

#[test]
fn a_call_that_reads_no_time_random_number_or_request_id_is_pure() {
    for (src, pure) in [
        ("function handler(e) { e.request.uri += 'x'; return e.request; }", true),
        (
            "function handler(e) { e.request.headers.t = {value: String(Date.now())}; return e.request; }",
            false,
        ),
        ("function handler(e) { new Date(); return e.request; }", false),
        ("function handler(e) { new Date(0); return e.request; }", true),
        ("function handler(e) { Math.random(); return e.request; }", false),
        (
            "function handler(e) { e.request.headers.id = {value: e.context.requestId}; return e.request; }",
            false,
        ),
        ("function handler(e) { console.log('x'); return e.request; }", false),
        (
            "async function handler(e) { await null; Date.now(); return e.request; }",
            false,
        ),
    ] {
        let f = compile(Runtime::Js2, src).unwrap();
        let out = f.run(EVENT, "r1", 1_800_000_000_000);
        assert!(out.result.is_ok(), "{src}");
        assert_eq!(out.pure, pure, "{src}");
    }
    // The request id and the time a function reads are the call's.
    let f = compile(
        Runtime::Js2,
        "function handler(e) { e.request.headers.id = {value: e.context.requestId + '@' + Date.now()}; return e.request; }",
    )
    .unwrap();
    let out = f.run(EVENT, "abc", 42).result.unwrap();
    assert_eq!(out["headers"]["id"]["value"], "abc@42");
}

#[test]
fn numbers_come_back_as_json_writes_them() {
    let f = compile(
        Runtime::Js2,
        "function handler(e) { return {statusCode: JSON.parse('200'), statusDescription: 'OK', n: 1.5, big: 2 ** 60, u: undefined, f: function () {}}; }",
    )
    .unwrap();
    let r = result(&f);
    assert_eq!(
        r,
        serde_json::json!({"statusCode": 200, "statusDescription": "OK", "n": 1.5, "big": 1152921504606846976.0})
    );
}

#[test]
fn the_raw_query_string_is_there_as_sent() {
    let f = compile(
        Runtime::Js2,
        "function handler(e) { e.request.headers.q = {value: String(e.request.rawQueryString())}; return e.request; }",
    )
    .unwrap();
    let event = EVENT.replace(r#""cookies":{}"#, r#""cookies":{},"__homefrontRawQuery":"b=%20&a""#);
    let out = f.run(&event, "r", 0).result.unwrap();
    assert_eq!(out["headers"]["q"]["value"], "b=%20&a");
    assert!(out.get("rawQueryString").is_none() && out.get("__homefrontRawQuery").is_none());
    let out = f.run(EVENT, "r", 0).result.unwrap();
    assert_eq!(out["headers"]["q"]["value"], "undefined");
}

#[test]
fn replacing_globals_does_not_change_what_the_call_wrapper_does() {
    let src = "JSON.parse = function () { return {}; }; Object.defineProperty = function () {};\nfunction handler(e) { e.request.headers.id = {value: e.context.requestId}; return e.request; }";
    let f = compile(Runtime::Js2, src).unwrap();
    let out = f.run(EVENT, "the-id", 0);
    assert!(!out.pure);
    assert_eq!(out.result.unwrap()["headers"]["id"]["value"], "the-id");
}
