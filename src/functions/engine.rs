//! The JavaScript engine under CloudFront Functions: QuickJS (through `rquickjs`), one
//! runtime and context per function per thread, made the first time the thread runs the
//! function and kept while the function's configuration generation lives. Each runtime has
//! the function's memory limit, a stack limit and an interrupt handler that stops the
//! function past its compute budget (CPU time of the calling thread, so a thread that is
//! preempted is not charged). A context whose call failed in any way is dropped: the next
//! call gets a fresh one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rquickjs::loader::{BuiltinLoader, BuiltinResolver};
use rquickjs::{
    Array, CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Runtime, TypedArray, Value,
};

use super::{Failure, FailureKind, Inner, Kvs, Outcome, Runtime as JsRuntime};

/// The built-ins every context starts with (`prelude.js`).
const PRELUDE: &str = include_str!("prelude.js");

/// The ES modules a function may import: each is the object `require` gives.
const MODULES: [(&str, &str); 4] = [
    (
        "crypto",
        "const m = require('crypto'); export default m; export const createHash = m.createHash, createHmac = m.createHmac;",
    ),
    (
        "querystring",
        "const m = require('querystring'); export default m; export const parse = m.parse, stringify = m.stringify, escape = m.escape, unescape = m.unescape, decode = m.decode, encode = m.encode;",
    ),
    (
        "cloudfront",
        "const m = require('cloudfront'); export default m; export const kvs = m.kvs, updateRequestOrigin = m.updateRequestOrigin, selectRequestOriginById = m.selectRequestOriginById, createRequestOriginGroup = m.createRequestOriginGroup;",
    ),
    (
        "buffer",
        "const m = require('buffer'); export default m; export const Buffer = m.Buffer;",
    ),
];

/// The JS stack a function may use (deep recursion ends in a RangeError, not a crash).
const MAX_STACK: usize = 256 * 1024;

/// The most log lines kept from one call, and the most bytes of each.
const MAX_LOG_LINES: usize = 64;
const MAX_LOG_LINE: usize = 1024;

/// Per-call state the natives and the interrupt handler share with the caller.
#[derive(Default)]
struct Scratch {
    logs: RefCell<Vec<String>>,
    origin: RefCell<Option<String>>,
    /// The thread CPU time after which the call is stopped.
    deadline: Cell<Option<Duration>>,
    interrupted: Cell<bool>,
}

/// One function's runtime and context on this thread.
struct Instance {
    // Dropped in this order: the saved handler before its context, the context before
    // its runtime (QuickJS asserts that a runtime it frees holds no object).
    call: Persistent<Function<'static>>,
    context: Context,
    runtime: Runtime,
    /// The runtime's memory limit.
    memory_limit: usize,
    function: Weak<Inner>,
    scratch: Rc<Scratch>,
}

thread_local! {
    static INSTANCES: RefCell<Vec<Instance>> = const { RefCell::new(Vec::new()) };
}

/// The CPU time this thread has used.
pub(super) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Runs `function`'s handler on `event` (its JSON) on this thread.
pub(super) fn call(function: &Arc<Inner>, event: &str, request_id: &str, now_ms: u64) -> Outcome {
    let taken = INSTANCES.with(|all| {
        let mut all = all.borrow_mut();
        // Instances of functions no configuration holds any more go.
        all.retain(|i| i.function.strong_count() > 0);
        let at = all
            .iter()
            .position(|i| std::ptr::eq(i.function.as_ptr(), Arc::as_ptr(function)));
        at.map(|at| all.swap_remove(at))
    });
    let instance = match taken {
        Some(i) => i,
        None => match instantiate(function) {
            Ok(i) => i,
            Err(f) => {
                return Outcome {
                    result: Err(f),
                    logs: Vec::new(),
                    origin: None,
                    cpu: Duration::ZERO,
                    pure: false,
                }
            }
        },
    };
    let (call, healthy) = run(&instance, function, event, request_id, now_ms);
    if healthy {
        INSTANCES.with(|all| all.borrow_mut().push(instance));
    }
    call
}

/// Calls the handler of a ready instance; `false` with the call: the instance must go.
fn run(instance: &Instance, function: &Inner, event: &str, request_id: &str, now_ms: u64) -> (Outcome, bool) {
    let scratch = &instance.scratch;
    scratch.logs.borrow_mut().clear();
    scratch.origin.borrow_mut().take();
    scratch.interrupted.set(false);
    let volatile = Cell::new(true);
    let start = thread_cpu();
    scratch.deadline.set(Some(start + function.limits.compute));
    let result = instance.context.with(|ctx| -> Result<serde_json::Value, Failure> {
        let call = instance.call.clone().restore(&ctx).map_err(|e| internal(&e))?;
        let boxed: Object = call
            .call((event, now_ms as f64, request_id))
            .catch(&ctx)
            .map_err(|e| caught(scratch, e))?;
        // An async handler: its jobs run here, to the end, within the same budget.
        while !boxed.get::<_, bool>("done").unwrap_or(true) {
            if !ctx.execute_pending_job() {
                return Err(Failure::new(
                    FailureKind::Execution,
                    "The handler's promise never settled (nothing was left to run).",
                ));
            }
            if scratch.interrupted.get() {
                return Err(throttled());
            }
        }
        if let Ok(Some(error)) = boxed.get::<_, Option<String>>("error") {
            return Err(Failure::new(FailureKind::Execution, error));
        }
        volatile.set(boxed.get::<_, bool>("volatile").unwrap_or(true));
        match boxed.get::<_, Value>("value").map(|v| plain(&v, 0)) {
            Ok(Ok(Some(value))) => Ok(value),
            Ok(Err(m)) => Err(Failure::new(FailureKind::Validation, m)),
            _ => Err(Failure::new(
                FailureKind::Validation,
                "The function returned nothing: it must return the request or a response object.",
            )),
        }
    });
    let cpu = thread_cpu().saturating_sub(start);
    scratch.deadline.set(None);
    // An allocation that failed may leave no exception to say so (QuickJS throws `null`
    // when it cannot allocate the error either): a runtime at its limit ran out of memory.
    let result = result.map_err(|f| {
        let used = instance.runtime.memory_usage().malloc_size.max(0) as usize;
        if f.kind == FailureKind::Execution && used + 64 * 1024 >= instance.memory_limit {
            Failure::new(FailureKind::Execution, "The function ran out of memory.")
        } else {
            f
        }
    });
    let healthy = result.is_ok();
    let logs = std::mem::take(&mut *scratch.logs.borrow_mut());
    let origin = scratch.origin.borrow_mut().take();
    let pure = healthy && !volatile.get() && logs.is_empty() && origin.is_none();
    let call = Outcome {
        result,
        logs,
        origin,
        cpu,
        pure,
    };
    (call, healthy)
}

fn throttled() -> Failure {
    Failure::new(
        FailureKind::Throttled,
        "The function used more than its compute budget and was stopped.",
    )
}

fn internal(e: &rquickjs::Error) -> Failure {
    Failure::new(FailureKind::Execution, e.to_string())
}

/// What an exception says, as the error of a call.
fn caught(scratch: &Scratch, e: CaughtError<'_>) -> Failure {
    if scratch.interrupted.get() {
        return throttled();
    }
    let message = match &e {
        CaughtError::Exception(ex) => {
            let text = ex.message().unwrap_or_default();
            let name: Option<String> = ex.get("name").ok();
            let text = match name {
                Some(n) if !n.is_empty() => format!("{n}: {text}"),
                _ => text,
            };
            if text.contains("out of memory") {
                return Failure::new(FailureKind::Execution, "The function ran out of memory.");
            }
            match ex.stack().as_deref().and_then(first_frame) {
                Some(at) => format!("{text} ({at})"),
                None => text,
            }
        }
        other => other.to_string(),
    };
    Failure::new(FailureKind::Execution, message)
}

/// `file:line:column` of the first stack frame, if the stack has one.
fn first_frame(stack: &str) -> Option<String> {
    let line = stack.lines().find(|l| l.trim_start().starts_with("at "))?;
    let inner = line
        .rsplit_once('(')
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap_or_else(|| line.trim_start().trim_start_matches("at ").trim());
    Some(inner.to_string())
}

/// A new runtime and context with the function loaded: the prelude, then the function's
/// code (a module for cloudfront-js-2.0, a script for 1.0), its `handler` found.
fn instantiate(function: &Arc<Inner>) -> Result<Instance, Failure> {
    let fail = |e: rquickjs::Error| Failure::new(FailureKind::Execution, e.to_string());
    let runtime = Runtime::new().map_err(fail)?;
    runtime.set_max_stack_size(MAX_STACK);
    let mut resolver = BuiltinResolver::default();
    let mut loader = BuiltinLoader::default();
    for (name, source) in MODULES {
        if name == "buffer" && function.runtime == JsRuntime::Js1 {
            continue;
        }
        resolver.add_module(name);
        loader.add_module(name, source);
    }
    runtime.set_loader(resolver, loader);
    let scratch = Rc::new(Scratch::default());
    {
        let scratch = scratch.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || match scratch.deadline.get() {
            Some(deadline) if thread_cpu() > deadline => {
                scratch.interrupted.set(true);
                true
            }
            _ => false,
        })));
    }
    let context = Context::full(&runtime).map_err(fail)?;
    // Loading the code is bounded too: a top-level infinite loop is stopped.
    scratch.deadline.set(Some(
        thread_cpu() + function.limits.compute.max(Duration::from_millis(50)),
    ));
    let call = context.with(|ctx| -> Result<Persistent<Function<'static>>, Failure> {
        let natives = natives(&ctx, &scratch, function.kvs.clone()).map_err(fail)?;
        let prelude: Function = ctx.eval(PRELUDE).catch(&ctx).map_err(|e| caught(&scratch, e))?;
        let wrap: Function = prelude
            .call((natives, function.runtime == JsRuntime::Js2))
            .catch(&ctx)
            .map_err(|e| caught(&scratch, e))?;
        let handler = load_handler(&ctx, function)
            .catch(&ctx)
            .map_err(|e| caught(&scratch, e))?;
        let Some(handler) = handler.as_function().cloned() else {
            return Err(Failure::new(
                FailureKind::Validation,
                "The function does not define a handler: it needs `function handler(event) { ... }`.",
            ));
        };
        let call: Function = wrap.call((handler,)).catch(&ctx).map_err(|e| caught(&scratch, e))?;
        Ok(Persistent::save(&ctx, call))
    });
    scratch.deadline.set(None);
    let call = call?;
    // The limit counts from what the engine and the code use at rest.
    let at_rest = runtime.memory_usage().malloc_size.max(0) as usize;
    runtime.set_memory_limit(at_rest + function.limits.memory);
    Ok(Instance {
        function: Arc::downgrade(function),
        runtime,
        memory_limit: at_rest + function.limits.memory,
        context,
        call,
        scratch,
    })
}

/// Evaluates the function's code and gives its `handler`.
fn load_handler<'js>(ctx: &Ctx<'js>, function: &Inner) -> rquickjs::Result<Value<'js>> {
    match function.runtime {
        JsRuntime::Js1 => {
            let options = {
                let mut o = rquickjs::context::EvalOptions::default();
                o.global = true;
                o.strict = true;
                o
            };
            ctx.eval_with_options::<(), _>(function.source.as_bytes(), options)?;
            ctx.globals().get("handler")
        }
        JsRuntime::Js2 => {
            // The handler is a top-level declaration of the module: exported under a name of
            // ours, after the code (so its line numbers are the file's).
            let source = format!("{}\n;export {{ handler as __homefront_handler }};\n", function.source);
            let module = rquickjs::Module::declare(ctx.clone(), function.file_name.as_str(), source)?;
            let (module, done) = module.eval()?;
            done.finish::<()>()?;
            module.get("__homefront_handler")
        }
    }
}

/// The object of native helpers the prelude takes.
fn natives<'js>(ctx: &Ctx<'js>, scratch: &Rc<Scratch>, kvs: Option<Arc<Kvs>>) -> rquickjs::Result<Object<'js>> {
    let n = Object::new(ctx.clone())?;
    n.set(
        "encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String, encoding: String| {
            let bytes =
                super::codec::encode(&text, &encoding).map_err(|m| rquickjs::Exception::throw_type(&ctx, &m))?;
            TypedArray::<u8>::new(ctx, bytes)
        })?,
    )?;
    n.set(
        "decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, bytes: TypedArray<'js, u8>, encoding: String| {
                super::codec::decode(&copy(&bytes), &encoding).map_err(|m| rquickjs::Exception::throw_type(&ctx, &m))
            },
        )?,
    )?;
    n.set(
        "digest",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             algorithm: String,
             key: Value<'js>,
             parts: Array<'js>,
             encoding: String|
             -> rquickjs::Result<Value<'js>> {
                let key = key
                    .as_object()
                    .and_then(|o| TypedArray::<u8>::from_object(o.clone()).ok())
                    .map(|k| copy(&k));
                let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(parts.len());
                for part in parts.iter::<TypedArray<'js, u8>>() {
                    chunks.push(copy(&part?));
                }
                let digest = super::codec::digest(&algorithm, key.as_deref(), &chunks)
                    .map_err(|m| rquickjs::Exception::throw_type(&ctx, &m))?;
                if encoding == "bytes" {
                    return Ok(TypedArray::<u8>::new(ctx, digest)?.into_value());
                }
                let text =
                    super::codec::decode(&digest, &encoding).map_err(|m| rquickjs::Exception::throw_type(&ctx, &m))?;
                Ok(rquickjs::String::from_str(ctx, &text)?.into_value())
            },
        )?,
    )?;
    {
        let kvs = kvs.clone();
        n.set(
            "kvsGet",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, key: String| -> rquickjs::Result<Option<String>> {
                    match &kvs {
                        Some(store) => Ok(store.get(&key).map(str::to_string)),
                        None => Err(rquickjs::Exception::throw_message(
                            &ctx,
                            "No KeyValueStore is associated with this function.",
                        )),
                    }
                },
            )?,
        )?;
    }
    n.set(
        "kvsMeta",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<Object<'js>> {
            let Some(store) = &kvs else {
                return Err(rquickjs::Exception::throw_message(
                    &ctx,
                    "No KeyValueStore is associated with this function.",
                ));
            };
            let meta = Object::new(ctx)?;
            meta.set("creationDateTime", store.loaded_at.as_str())?;
            meta.set("lastUpdatedDateTime", store.loaded_at.as_str())?;
            meta.set("keyCount", store.len() as f64)?;
            Ok(meta)
        })?,
    )?;
    {
        let scratch = scratch.clone();
        n.set(
            "log",
            Function::new(ctx.clone(), move |line: String| {
                let mut logs = scratch.logs.borrow_mut();
                if logs.len() < MAX_LOG_LINES {
                    let mut line = line;
                    if line.len() > MAX_LOG_LINE {
                        let mut cut = MAX_LOG_LINE;
                        while !line.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        line.truncate(cut);
                    }
                    logs.push(line);
                }
            })?,
        )?;
    }
    {
        let scratch = scratch.clone();
        n.set(
            "origin",
            Function::new(ctx.clone(), move |json: String| {
                *scratch.origin.borrow_mut() = Some(json);
            })?,
        )?;
    }
    Ok(n)
}

/// Loads `function` in a new context and drops it: its code loads and defines `handler`.
pub(super) fn check(function: &Arc<Inner>) -> Result<(), Failure> {
    instantiate(function).map(|_| ())
}

/// The bytes of a typed array, copied out before any JavaScript runs again.
fn copy(array: &TypedArray<'_, u8>) -> Vec<u8> {
    // SAFETY: the slice is copied at once; no JavaScript runs while it lives.
    unsafe { array.as_bytes() }.map(<[u8]>::to_vec).unwrap_or_default()
}

/// The most levels and values of a result that are read.
const MAX_DEPTH: usize = 8;
const MAX_LENGTH: usize = 64 * 1024;

/// A returned value as `JSON.stringify` would see it (`None`: what it leaves out, such as
/// `undefined` and functions), read from the engine without the text in between. Deeper
/// than [`MAX_DEPTH`] or longer than [`MAX_LENGTH`] entries is an invalid result.
fn plain(v: &Value<'_>, depth: usize) -> Result<Option<serde_json::Value>, String> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err("the result is nested too deeply".into());
    }
    let value = if let Some(s) = v.as_string() {
        J::String(s.to_string().map_err(|e| e.to_string())?)
    } else if let Some(b) = v.as_bool() {
        J::Bool(b)
    } else if let Some(n) = v.as_int() {
        J::from(n)
    } else if let Some(n) = v.as_float() {
        // An integral number is an integer, as JSON.stringify writes it (200, not 200.0).
        if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
            J::from(n as i64)
        } else {
            serde_json::Number::from_f64(n).map_or(J::Null, J::Number)
        }
    } else if v.is_null() {
        J::Null
    } else if let Some(array) = v.as_array() {
        if array.len() > MAX_LENGTH {
            return Err("the result has too many values".into());
        }
        let mut out = Vec::with_capacity(array.len());
        for item in array.iter::<Value>() {
            let item = item.map_err(|e| e.to_string())?;
            out.push(plain(&item, depth + 1)?.unwrap_or(J::Null));
        }
        J::Array(out)
    } else if v.is_function() || v.is_undefined() || v.is_symbol() {
        return Ok(None);
    } else if let Some(object) = v.as_object() {
        let mut out = serde_json::Map::new();
        for entry in object.props::<String, Value>() {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            if out.len() >= MAX_LENGTH {
                return Err("the result has too many values".into());
            }
            if let Some(value) = plain(&value, depth + 1)? {
                out.insert(key, value);
            }
        }
        J::Object(out)
    } else {
        return Err(format!("the result holds a value JSON cannot: {}", v.type_name()));
    };
    Ok(Some(value))
}
