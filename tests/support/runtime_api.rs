//! A local implementation of the Lambda Runtime API (the HTTP protocol AWS runs between
//! a function process and the Lambda service), shared by the integration tests and the
//! benchmarks: `invoke` queues an event, the function's `next` call takes it, and its
//! `response` (or `error`) call completes the invocation.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// The call a function makes for its next event.
const NEXT: &str = "/2018-06-01/runtime/invocation/next";

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>>;

/// Something to do when the function first asks for an event.
type Hook = Box<dyn FnOnce() + Send>;

/// The function's first ask for an event: when it came, and what is to be done then.
#[derive(Default)]
struct FirstNext {
    at: Option<Instant>,
    hook: Option<Hook>,
}

/// A Runtime API for one function process at a time.
pub struct RuntimeApi {
    pub addr: std::net::SocketAddr,
    queue: mpsc::UnboundedSender<(String, Value)>,
    waiters: Waiters,
    first_next: Arc<Mutex<FirstNext>>,
    /// How many times the function has asked for an event, and a wake-up for each ask.
    nexts: Arc<(AtomicUsize, tokio::sync::Notify)>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (queue, events) = mpsc::unbounded_channel::<(String, Value)>();
        let events = Arc::new(tokio::sync::Mutex::new(events));
        let waiters: Waiters = Arc::default();
        let shared = Arc::clone(&waiters);
        let first_next: Arc<Mutex<FirstNext>> = Arc::default();
        let noted = Arc::clone(&first_next);
        let nexts: Arc<(AtomicUsize, tokio::sync::Notify)> = Arc::default();
        let counted = Arc::clone(&nexts);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (events, waiters) = (Arc::clone(&events), Arc::clone(&shared));
                let (noted, counted) = (Arc::clone(&noted), Arc::clone(&counted));
                let service = hyper::service::service_fn(move |request| {
                    let (events, waiters) = (Arc::clone(&events), Arc::clone(&waiters));
                    if request.uri().path() == NEXT {
                        let mut first = noted.lock().unwrap();
                        let hook = if first.at.is_none() {
                            first.at = Some(Instant::now());
                            first.hook.take()
                        } else {
                            None
                        };
                        drop(first);
                        // Before the event goes out: the end of the init phase. Run
                        // unlocked, so that a hook that panics poisons nothing.
                        if let Some(hook) = hook {
                            hook();
                        }
                        counted.0.fetch_add(1, Ordering::SeqCst);
                        counted.1.notify_waiters();
                    }
                    async move { Ok::<_, Infallible>(route(request, events, waiters).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            queue,
            waiters,
            first_next,
            nexts,
        }
    }

    /// Waits until the function has asked for its `count`-th event: it has finished
    /// every invocation before that one (what it does after posting a response, such as
    /// writing its metrics, included) and is parked, where Lambda would freeze it.
    #[allow(dead_code)] // the benchmarks' cut; the tests do not use it
    pub async fn asked_for_events(&self, count: usize) {
        let (asked, ask) = &*self.nexts;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = ask.notified();
                if asked.load(Ordering::SeqCst) >= count {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the function did not ask for its next event");
    }

    /// When the function first asked for an event: the end of its init phase, as Lambda
    /// reports it (`Init Duration`).
    pub fn first_next(&self) -> Option<Instant> {
        self.first_next.lock().unwrap().at
    }

    /// Runs `hook` when the function first asks for an event, before that ask is
    /// answered (at once if it has already asked). One hook per Runtime API.
    pub fn on_first_next(&self, hook: impl FnOnce() + Send + 'static) {
        let mut first = self.first_next.lock().unwrap();
        if first.at.is_some() {
            drop(first);
            hook();
            return;
        }
        let replaced = first.hook.replace(Box::new(hook)).is_some();
        drop(first);
        assert!(!replaced, "a first-/next hook was already set");
    }

    /// Sends one event and waits for the function's answer.
    pub async fn invoke(&self, event: Value) -> Result<Value, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (done, answer) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id.clone(), done);
        self.queue.send((id, event)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("invocation timed out")
            .unwrap()
    }
}

async fn route(
    request: Request<hyper::body::Incoming>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    waiters: Waiters,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == NEXT {
        // None: this Runtime API is gone (its function was killed while it waited).
        let Some((id, event)) = events.lock().await.recv().await else {
            return Response::builder()
                .status(410)
                .body(Full::new(Bytes::new()))
                .unwrap();
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 30_000;
        // Lambda sends the event's content type; awslambdaric's native client crashes
        // (a NULL strlen) when it is missing.
        return Response::builder()
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:product-api",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-673f2b10-0123456789abcdef01234567;Sampled=0",
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let parts: Vec<&str> = path
        .trim_start_matches("/2018-06-01/runtime/")
        .split('/')
        .collect();
    match parts.as_slice() {
        ["invocation", id, outcome @ ("response" | "error")] => {
            let answer = if *outcome == "response" {
                Ok(serde_json::from_slice(&body).unwrap())
            } else {
                Err(String::from_utf8_lossy(&body).into_owned())
            };
            if let Some(waiter) = waiters.lock().unwrap().remove(*id) {
                let _ = waiter.send(answer);
            }
        }
        ["init", "error"] => panic!(
            "function failed to initialise: {}",
            String::from_utf8_lossy(&body)
        ),
        _ => panic!("unexpected Runtime API call {path}"),
    }
    Response::builder()
        .status(202)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
