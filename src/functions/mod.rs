//! CloudFront Functions: JavaScript handlers run at the edge on viewer requests and viewer
//! responses, in CloudFront's runtimes (`cloudfront-js-1.0`, `cloudfront-js-2.0`) with its
//! built-in modules (`crypto`, `querystring`, `cloudfront` with KeyValueStore reads) and
//! its limits (code size, memory, a compute budget per call).
//!
//! - `engine`: QuickJS, one context per function per thread; the call and its limits.
//! - `event`: the event object a handler gets and the request or response it returns, and
//!   their mapping to and from HTTP (pure).
//! - `codec`, `kvs`: the built-ins' encodings and digests; the KeyValueStore.
//!
//! A [`Function`] is compiled when the configuration is loaded (a syntax error is a config
//! error with the file's line), and run by the edge with [`Function::run`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod codec;
mod engine;
pub mod event;
pub mod kvs;

pub use kvs::Kvs;

/// CloudFront's runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `cloudfront-js-1.0`: a script; njs's byte strings; no `Buffer`.
    Js1,
    /// `cloudfront-js-2.0`: an ES module (`import cf from 'cloudfront'`), async handlers,
    /// `Buffer`.
    Js2,
}

impl Runtime {
    pub fn parse(name: &str) -> Option<Runtime> {
        match name {
            "cloudfront-js-1.0" => Some(Runtime::Js1),
            "cloudfront-js-2.0" => Some(Runtime::Js2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Js1 => "cloudfront-js-1.0",
            Runtime::Js2 => "cloudfront-js-2.0",
        }
    }
}

/// What a function may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of code (CloudFront: 10 KB).
    pub max_code: usize,
    /// The most memory the function may allocate beyond what its loaded code holds.
    pub memory: usize,
    /// CPU time per call; past it the call is stopped (`FunctionThrottledError`). A
    /// function's compute utilization is the share of this it used.
    pub compute: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_code: 10 * 1024,
            memory: 2 * 1024 * 1024,
            compute: Duration::from_millis(1),
        }
    }
}

/// Why a call gave no usable result, as CloudFront names it in its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The function threw, or its code could not be loaded.
    Execution,
    /// The function used more than its compute budget.
    Throttled,
    /// The function returned something that is not a valid request or response.
    Validation,
}

impl FailureKind {
    /// CloudFront's `x-edge-detailed-result-type` for it.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Execution => "FunctionExecutionError",
            FailureKind::Throttled => "FunctionThrottledError",
            FailureKind::Validation => "FunctionValidationError",
        }
    }
}

/// A failed call: what kind, and the message (the exception, or what is invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

/// A compiled function: its code, runtime, store and limits. Cheap to clone; the engine
/// keeps its per-thread contexts while some clone lives.
#[derive(Debug, Clone)]
pub struct Function {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub name: String,
    /// The name its code is loaded under (stack traces, errors): the file's.
    pub file_name: String,
    pub runtime: Runtime,
    pub source: String,
    pub kvs: Option<Arc<Kvs>>,
    pub limits: Limits,
    /// Distinguishes functions of the same name across reloads.
    pub id: u64,
}

/// What a call gave: the handler's result (its JSON), the log lines, the origin the
/// function chose (`cloudfront.selectRequestOriginById`/`updateRequestOrigin`, as JSON)
/// and the CPU time used.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<serde_json::Value, Failure>,
    pub logs: Vec<String>,
    pub origin: Option<String>,
    pub cpu: Duration,
    /// The result depends on the event alone (no time, random number or request id read,
    /// nothing logged, no origin chosen): the same event gives the same result.
    pub pure: bool,
}

/// A function whose code does not load: the message and, when the engine says, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: Option<u32>,
    pub message: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Function {
    /// Compiles `source` (loaded in a context of this thread, its `handler` found), or says
    /// why it cannot run: too large, a syntax error (with its line), no `handler`.
    pub fn compile(
        name: &str,
        file_name: &str,
        runtime: Runtime,
        source: String,
        kvs: Option<Arc<Kvs>>,
        limits: Limits,
    ) -> Result<Function, CompileError> {
        if source.len() > limits.max_code {
            return Err(CompileError {
                line: None,
                message: format!(
                    "the code is {} bytes; a function is at most {} bytes",
                    source.len(),
                    limits.max_code
                ),
            });
        }
        let function = Function {
            inner: Arc::new(Inner {
                name: name.to_string(),
                file_name: file_name.to_string(),
                runtime,
                source,
                kvs,
                limits,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            }),
        };
        engine::check(&function.inner).map_err(|f| CompileError {
            line: line_of(&f.message, file_name),
            message: f.message,
        })?;
        Ok(function)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn runtime(&self) -> Runtime {
        self.inner.runtime
    }

    /// Calls the handler with `event` (the event object's JSON, its `context.requestId`
    /// given as `request_id`) on this thread; `now_ms`: the time `Date` gives all through
    /// the call (ms since the epoch).
    pub fn run(&self, event: &str, request_id: &str, now_ms: u64) -> Outcome {
        engine::call(&self.inner, event, request_id, now_ms)
    }

    /// Identifies this compiled function (a reload compiles a new one) while it lives.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The compute utilization of a call that took `cpu`: its share of the budget, 0–100.
    pub fn utilization(&self, cpu: Duration) -> u32 {
        let budget = self.inner.limits.compute.as_nanos().max(1);
        ((cpu.as_nanos() * 100).div_ceil(budget)).min(100) as u32
    }
}

/// What `homefront test-function` prints, as `aws cloudfront test-function` does: the
/// `TestResult` of one call of `function` with `event` (an event object's JSON), at `now_ms`.
/// `Err`: the event is not an event object.
pub fn test_result(function: &Function, event: &str, now_ms: u64) -> Result<serde_json::Value, String> {
    let parsed: event::Event = serde_json::from_str(event).map_err(|e| format!("not an event object: {e}"))?;
    let kind = parsed.event_type().ok_or_else(|| {
        format!(
            "context.eventType '{}': viewer-request or viewer-response",
            parsed.context.event_type
        )
    })?;
    if kind == event::EventType::ViewerResponse && parsed.response.is_none() {
        return Err("a viewer-response event needs a response object".into());
    }
    let out = function.run(&parsed.to_json(), &parsed.context.request_id, now_ms);
    let (output, error) = match &out.result {
        Err(f) => (String::new(), f.to_string()),
        Ok(value) => {
            let checked = match kind {
                event::EventType::ViewerRequest => event::returned_by_request(value.clone()).map(|r| match r {
                    event::Returned::Request(r) => serde_json::json!({ "request": r }),
                    event::Returned::Response(r) => serde_json::json!({ "response": r }),
                }),
                event::EventType::ViewerResponse => {
                    event::returned_by_response(value.clone()).map(|r| serde_json::json!({ "response": r }))
                }
            };
            match checked {
                Ok(v) => (v.to_string(), String::new()),
                Err(m) => (String::new(), Failure::new(FailureKind::Validation, m).to_string()),
            }
        }
    };
    Ok(serde_json::json!({
        "TestResult": {
            "FunctionSummary": {
                "Name": function.name(),
                "Status": "UNASSOCIATED",
                "FunctionConfig": { "Comment": "", "Runtime": function.runtime().name() },
            },
            "ComputeUtilization": function.utilization(out.cpu).to_string(),
            "FunctionExecutionLogs": out.logs,
            "FunctionErrorMessage": error,
            "FunctionOutput": output,
        }
    }))
}

/// The line of `file_name:LINE` in an engine message.
fn line_of(message: &str, file_name: &str) -> Option<u32> {
    let at = message.find(&format!("{file_name}:"))? + file_name.len() + 1;
    let digits: String = message[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
