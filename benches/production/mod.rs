//! The production-path profile (`BENCH_ONLY=production` runs it alone): product-api in
//! Lambda mode as it runs in AWS, with `rediss://` and an AUTH token read from Secrets
//! Manager (moto), TLS to DynamoDB (a TLS terminator with a test CA in front of the
//! emulator), and a [`proxy::DelayProxy`] in front of each dependency so every round
//! trip costs what it costs in one AWS region. Beside each figure: the same figure on
//! the default profile (plain local Redis, no secret, plain HTTP to the emulator, no
//! delay), and the floor of the path: the round trips it cannot avoid, times the
//! injected delays.
//!
//! Delays per round trip, in milliseconds, from the bench's environment:
//! `BENCH_RTT_REDIS_MS` (default 0.5), `BENCH_RTT_DYNAMODB_MS` (2),
//! `BENCH_RTT_SECRETS_MS` (3). Sources for the defaults are in docs/BENCHMARKS.md.

mod cpu_share;
mod proxy;
pub use proxy::{async_raw_get, get_command};

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, KeysInterface};
use product_catalog::adapters::DynamoStore;
use product_catalog::adapters::aws::sdk_config;

use super::helpers::{Moto, RedisServer, free_port, make_certificates, service_env};
use super::runtime_api::RuntimeApi;
use super::{Latency, Report, latency, median_of, ms, rest_event, spawn_function, warm};
use cpu_share::{Confined, CpuShare};
use proxy::{
    DelayProxy, Exchanges, TlsTerminator, WireLog, async_redis_round_trips, raw_redis_round_trips,
};

/// Cold starts per figure (each spawns a process).
const SPAWNS: usize = 15;
/// Rounds of warm invocations; the figure is the median of the rounds' percentiles.
const ROUNDS: usize = 3;
const WARM_HITS: usize = 1_000;
const WARM_MISSES: usize = 150;
/// The key the Runtime API event (`tests/fixtures/apigw_rest_stage.json`) reads.
const KEY: &str = "product:P-10001";

/// Injected round-trip delays.
#[derive(Clone, Copy)]
struct Delays {
    redis: Duration,
    dynamodb: Duration,
    secrets: Duration,
}

impl Delays {
    fn from_env() -> Self {
        let read = |name: &str, default_ms: f64| {
            let value = std::env::var(name).map_or(default_ms, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number of milliseconds"))
            });
            Duration::from_secs_f64(value / 1000.0)
        };
        Self {
            redis: read("BENCH_RTT_REDIS_MS", 0.5),
            dynamodb: read("BENCH_RTT_DYNAMODB_MS", 2.0),
            secrets: read("BENCH_RTT_SECRETS_MS", 3.0),
        }
    }
}

/// The round trips each path cannot avoid, counted on the wire (TCP handshake, TLS 1.3
/// handshake, AUTH, the calls themselves), and their cost at the injected delays.
struct Floors {
    /// The secret read (TCP, TLS, GetSecretValue) beside Redis's TCP and TLS, which do
    /// not need the token; then AUTH, which needs both.
    init: Duration,
    /// The init chain, then `SET NX GET`.
    cold_hit: Duration,
    /// The longer of the init chain and the DynamoDB connection (TCP, TLS: opened
    /// meanwhile), then `SET NX GET` where it was not already counted, GetItem, `EVAL`.
    cold_miss: Duration,
    warm_hit: Duration,
    /// `SET NX GET`, GetItem, `EVAL`.
    warm_miss: Duration,
}

impl Floors {
    /// The chains when the AUTH token is read from Secrets Manager.
    fn of(d: Delays) -> Self {
        Self::with_token_after(d, 3 * d.secrets)
    }

    /// The chains with IAM authentication: the token is signed locally, so AUTH waits
    /// only for Redis's TCP and TLS.
    fn of_iam(d: Delays) -> Self {
        Self::with_token_after(d, Duration::ZERO)
    }

    /// The chains when the token is in hand `token` after the spawn.
    fn with_token_after(d: Delays, token: Duration) -> Self {
        let init = token.max(2 * d.redis) + d.redis;
        let cold_hit = init + d.redis;
        let cold_miss = cold_hit.max(2 * d.dynamodb + d.redis) + d.dynamodb + d.redis;
        Self {
            init,
            cold_hit,
            cold_miss,
            warm_hit: d.redis,
            warm_miss: 2 * d.redis + d.dynamodb,
        }
    }
}

/// What one profile measured.
struct Figures {
    init: Duration,
    cold_hit: Duration,
    cold_miss: Duration,
    cold_hit_cpu: Duration,
    /// On a profile that reads the secret.
    cold_hit_parts: Option<ColdHitParts>,
    warm_hit: Latency,
    warm_miss: Latency,
    /// Warm answers from DynamoDB after a Redis timeout (only on a CPU share).
    warm_hit_others: Others,
    warm_miss_others: Others,
}

/// How product-api is started on one profile, and a direct client to its Redis (to
/// empty the key before a miss, past any proxy).
struct Profile {
    env: Vec<(String, String)>,
    redis: fred::clients::Client,
    /// Where the secret is read (its terminator's exchanges) and its injected delay.
    secret: Option<(Exchanges, Duration)>,
}

pub async fn run(report: &mut Report, redis: &RedisServer, table: &DynamoStore) {
    let delays = Delays::from_env();
    let floors = Floors::of(delays);
    let binary = env!("CARGO_BIN_EXE_product-api");

    let default = Profile {
        env: service_env(&redis.url(), table),
        redis: redis.client().await,
        secret: None,
    };
    let mut network = Network::start(delays).await;
    let production = network.profile(table).await;
    let iam = Profile {
        env: Network::iam_profile(&production),
        redis: production.redis.clone(),
        secret: None,
    };

    let noop = &super::example("noop-lambda");
    // BENCH_TRACE=<RUST_LOG filter>: one traced cold hit instead of the figures.
    // BENCH_TRACE_PROFILE=default: trace the default profile's start instead.
    if let Ok(filter) = std::env::var("BENCH_TRACE") {
        let traced = match std::env::var("BENCH_TRACE_PROFILE").as_deref() {
            Ok("default") => &default,
            Ok("iam") => &iam,
            _ => &production,
        };
        // Long enough for a closing connection's last answer to pass every proxy.
        let settle =
            2 * delays.redis.max(delays.dynamodb).max(delays.secrets) + Duration::from_millis(20);
        trace_cold_hit(binary, &traced.env, &filter, settle).await;
        return;
    }
    if let Some(share) = cpu_share() {
        report.row(
            "production path: every function spawned on a CPU share (BENCH_CPU_SHARE_MB)",
            format!(
                "{} MB: {:.1} % of one CPU",
                share.memory_mb,
                share.fraction() * 100.0
            ),
            format!(
                "a CFS quota of that share of every {}{}",
                ms(share.period),
                if share.init_burst {
                    ", a full CPU's until the first /next (BENCH_CPU_INIT_BURST=1)"
                } else {
                    ", from the spawn (BENCH_CPU_INIT_BURST=0)"
                }
            ),
            "a model of Lambda's share, not Lambda; the last row's no-I/O warm floor is not on it"
                .to_owned(),
        );
    }
    let noop_starts = cold_starts(noop, &default.env, SPAWNS, || async {}).await;
    let noop_cold = init_and_first_response(&noop_starts).1;
    let ours = measure(binary, &production).await;
    let with_iam = measure_cold(binary, &iam).await;
    let local = measure(binary, &default).await;
    let noop_warm = warm(noop, &default.env).await.latency;

    let calibration = network.calibrate(redis).await;
    let emulators = network.emulator_times(table).await;
    let parts = ours
        .cold_hit_parts
        .expect("the production profile reads the secret");
    report.row(
        "production path: the emulators' own time per call",
        format!(
            "moto GetSecretValue p50 {} as the cold hits' reads met it",
            ms(parts.moto)
        ),
        format!(
            "back to back from the bench (fresh client, plain HTTP): moto {}, dynalite GetItem {}",
            ms(emulators.secret),
            ms(emulators.item)
        ),
        "on the chains below, beside the injected delays".to_owned(),
    );
    report.row(
        &format!(
            "production path: injected round trips (Redis {}, DynamoDB {}, Secrets Manager {})",
            ms(delays.redis),
            ms(delays.dynamodb),
            ms(delays.secrets)
        ),
        format!("raw GET through the proxy p50 {}", ms(calibration.through)),
        format!("direct p50 {}", ms(calibration.blocking)),
        format!(
            "proxy overshoot {}",
            ms(calibration
                .through
                .saturating_sub(calibration.blocking + delays.redis))
        ),
    );
    let with_default = |figure: Duration, default: Duration, floor: Duration| {
        format!(
            "{:.2}x of the floor; default profile {}",
            figure.as_secs_f64() / floor.as_secs_f64(),
            ms(default)
        )
    };
    report.row(
        "production path: init duration (spawn to first /next)",
        ms(ours.init),
        format!("chain {}", ms(floors.init)),
        with_default(ours.init, local.init, floors.init),
    );
    let allowed = floors.cold_hit.mul_f64(1.25) + noop_cold;
    // The same allowance with moto's own answering time on the chain, where AWS's would
    // be part of the delay: its time as the cold hits met it.
    let with_moto = (floors.cold_hit + parts.moto).mul_f64(1.25) + noop_cold;
    report.row(
        "production path: cold start to first response, hit",
        ms(ours.cold_hit),
        format!("chain {} + no-I/O {}", ms(floors.cold_hit), ms(noop_cold)),
        format!(
            "target <= 1.25x chain + no-I/O = {} {} ({} {} with moto's time on the chain); default profile {}",
            ms(allowed),
            verdict(ours.cold_hit <= allowed),
            ms(with_moto),
            verdict(ours.cold_hit <= with_moto),
            ms(local.cold_hit)
        ),
    );
    report.row(
        "production path: cold hit, where the time goes (medians of its spawns)",
        format!(
            "spawn to the secret's connection {} (to its request {}); the read {} (moto {} of it); the token to the response {}",
            ms(parts.before_the_read),
            ms(parts.before_the_request),
            ms(parts.secret_read),
            ms(parts.moto),
            ms(parts.after_the_token)
        ),
        format!(
            "no-I/O start {}; 3 x {} + moto; AUTH + SET NX GET {}",
            ms(noop_cold),
            ms(delays.secrets),
            ms(2 * delays.redis)
        ),
        format!(
            "above each: {}, {}, {}",
            ms(parts.before_the_read.saturating_sub(noop_cold)),
            ms(parts
                .secret_read
                .saturating_sub(3 * delays.secrets + parts.moto)),
            ms(parts.after_the_token.saturating_sub(2 * delays.redis))
        ),
    );
    report.row(
        "production path: cold start to first response, miss",
        ms(ours.cold_miss),
        format!("chain {}", ms(floors.cold_miss)),
        with_default(ours.cold_miss, local.cold_miss, floors.cold_miss),
    );
    let iam_floors = Floors::of_iam(delays);
    let iam_allowed = iam_floors.cold_hit.mul_f64(1.25) + noop_cold;
    report.row(
        "production path, IAM authentication (REDIS_IAM_USER, no secret read): init duration",
        ms(with_iam.init),
        format!("chain {}", ms(iam_floors.init)),
        format!(
            "{:.2}x of the floor; with the secret {}",
            with_iam.init.as_secs_f64() / iam_floors.init.as_secs_f64(),
            ms(ours.init)
        ),
    );
    report.row(
        "production path, IAM authentication: cold start to first response, hit",
        ms(with_iam.cold_hit),
        format!(
            "chain {} + no-I/O {}",
            ms(iam_floors.cold_hit),
            ms(noop_cold)
        ),
        format!(
            "target <= 1.25x chain + no-I/O = {} {}; with the secret {}",
            ms(iam_allowed),
            verdict(with_iam.cold_hit <= iam_allowed),
            ms(ours.cold_hit)
        ),
    );
    report.row(
        "production path, IAM authentication: cold start to first response, miss",
        ms(with_iam.cold_miss),
        format!("chain {}", ms(iam_floors.cold_miss)),
        format!(
            "{:.2}x of the floor; with the secret {}",
            with_iam.cold_miss.as_secs_f64() / iam_floors.cold_miss.as_secs_f64(),
            ms(ours.cold_miss)
        ),
    );
    let (memory_mb, memory_from) = cpu_share().map_or_else(
        || (lambda_memory_mb(), "Terraform's default lambda_memory_mb"),
        |share| (share.memory_mb, "BENCH_CPU_SHARE_MB"),
    );
    // AWS: "At 1,769 MB, a function has the equivalent of one vCPU (one vCPU-second of
    // credits per second)"; less memory, a proportional share. How that is enforced
    // within a start AWS does not say, so the row divides, it does not predict.
    let share = cpu_share::vcpu_fraction(memory_mb);
    report.row(
        "production path: CPU per cold hit (all threads, spawn to the next /next)",
        format!(
            "{} with the secret; IAM {}; default profile {}",
            ms(ours.cold_hit_cpu),
            ms(with_iam.cold_hit_cpu),
            ms(local.cold_hit_cpu)
        ),
        format!("no-I/O {}", ms(cpu_per_start(&noop_starts))),
        format!(
            "divided by {:.1} % of a vCPU ({memory_mb} MB, {memory_from}): {} with the secret, {} IAM (not a prediction)",
            share * 100.0,
            ms(ours.cold_hit_cpu.div_f64(share)),
            ms(with_iam.cold_hit_cpu.div_f64(share))
        ),
    );
    for (what, figures, floor, round_trips, others) in [
        (
            "production path: warm hit",
            (ours.warm_hit, local.warm_hit),
            floors.warm_hit,
            "1 Redis round trip",
            (&ours.warm_hit_others, &local.warm_hit_others),
        ),
        (
            "production path: warm miss",
            (ours.warm_miss, local.warm_miss),
            floors.warm_miss,
            "2 Redis + 1 DynamoDB",
            (&ours.warm_miss_others, &local.warm_miss_others),
        ),
    ] {
        let (ours, local) = figures;
        let others = match others {
            (ours, local) if ours.0 == 0 && local.0 == 0 => String::new(),
            (ours, local) => format!("; {ours} (default profile {local})"),
        };
        report.row(
            what,
            super::p50_p99(ours),
            format!("{round_trips} {}", ms(floor)),
            format!(
                "{:.2}x of the floor (p50); default profile {}{others}",
                ours.p50.as_secs_f64() / floor.as_secs_f64(),
                super::p50_p99(local)
            ),
        );
    }
    let gap = local.warm_hit.p50.saturating_sub(noop_warm.p50);
    report.row(
        "default profile: warm hit above the no-I/O function (hits between misses)",
        format!("+{} (p50 {})", ms(gap), ms(local.warm_hit.p50)),
        format!(
            "no-I/O p50 {}; raw GET in a tight loop (tokio, 1 thread) {}",
            ms(noop_warm.p50),
            ms(calibration.direct)
        ),
        format!(
            "{:.2} tight-loop round trips; the target's verdict is on the Lambda row, against a raw GET per invocation",
            gap.as_secs_f64() / calibration.direct.as_secs_f64()
        ),
    );
    if let Some(share) = cpu_share() {
        share.remove();
    }
}

/// The product-api function's memory by default: `lambda_memory_mb`'s default in
/// `terraform/variables.tf` (a deployment's tfvars may set another).
fn lambda_memory_mb() -> u32 {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/variables.tf");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let variable = body
        .blocks()
        .find(|b| {
            b.identifier() == "variable"
                && matches!(b.labels(), [label] if label.as_str() == "lambda_memory_mb")
        })
        .unwrap_or_else(|| panic!("{path}: no variable \"lambda_memory_mb\""));
    let default = variable
        .body()
        .attributes()
        .find(|a| a.key() == "default")
        .unwrap_or_else(|| panic!("{path}: lambda_memory_mb has no default"));
    match default.expr() {
        hcl::Expression::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{path}: lambda_memory_mb's default is not a whole number"))
}

/// Ends the traced start's process group: SIGTERM first, so that a wrapper writes what it
/// collected (valgrind's tools write their output when the program ends, `perf record`
/// finishes its file), then SIGKILL for whatever is left after a few seconds.
fn stop_group(child: &mut std::process::Child) {
    let group = format!("-{}", child.id());
    // Quiet: the group is usually gone by the SIGKILL.
    let signal = |name: &str| {
        let _ = std::process::Command::new("kill")
            .args([name, "--", &group])
            .stderr(std::process::Stdio::null())
            .status();
    };
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal("-KILL");
    // Should `kill` itself not run, the wait below must still end.
    let _ = child.kill();
    let _ = child.wait();
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// `BENCH_TRACE=<RUST_LOG filter>`: one cold hit on this profile with its log lines
/// stamped, as they arrive, with the time since the spawn, between what the delay proxies
/// saw on the wire ([`WireLog`]: connections, bytes sent, answered by the server,
/// delivered after the delay): where a cold start's time goes. A log line's stamp is when
/// the bench read it, at times a millisecond late; the wire's are when the proxy saw it.
/// `settle`: how long the untraced start's closing connections take to pass the proxies.
async fn trace_cold_hit(binary: &str, env: &[(String, String)], filter: &str, settle: Duration) {
    use std::io::BufRead as _;
    use std::os::unix::process::CommandExt as _;
    // One start untraced first, so that the traced one finds the product cached.
    cold_starts(binary, env, 1, || async {}).await;
    let runtime = RuntimeApi::start().await;
    // The servers' answers to that start's closing connections are past the proxies.
    tokio::time::sleep(settle).await;
    WireLog::start();
    let started = Instant::now();
    // BENCH_TRACE_WRAP: a command to run the function under (strace, perf record).
    let wrap = std::env::var("BENCH_TRACE_WRAP").unwrap_or_default();
    let mut words: Vec<&str> = wrap.split_whitespace().collect();
    words.push(binary);
    // In a process group of its own: a wrapper killed alone (strace detaches) would
    // leave the function running, holding stderr open, and this trace waiting for it.
    let mut child = std::process::Command::new(words[0])
        .process_group(0)
        .args(&words[1..])
        .env_clear()
        .envs(env.iter().cloned())
        .envs(super::lambda_env(&runtime))
        .env("RUST_LOG", filter)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .map(|line| (started.elapsed(), line))
            .collect::<Vec<_>>()
    });
    let response = runtime.invoke(rest_event()).await.unwrap();
    let answered = started.elapsed();
    assert_eq!(response["statusCode"], 200, "{response}");
    stop_group(&mut child);
    let mut events: Vec<(Duration, String)> = lines.join().unwrap();
    events.extend(
        WireLog::take()
            .into_iter()
            .filter_map(|(at, event)| Some((at.checked_duration_since(started)?, event))),
    );
    if let Some(next) = runtime.first_next() {
        events.push((next - started, "first /next".to_owned()));
    }
    events.push((answered, "first response".to_owned()));
    events.sort_by_key(|(at, _)| *at);
    for (at, event) in events {
        println!(
            "+{:>8.3} ms {}",
            at.as_secs_f64() * 1e3,
            event.chars().take(220).collect::<String>()
        );
    }
}

/// The CPU share every function of this profile runs on (`BENCH_CPU_SHARE_MB`), if any.
fn cpu_share() -> Option<&'static CpuShare> {
    static SHARE: OnceLock<Option<CpuShare>> = OnceLock::new();
    SHARE.get_or_init(CpuShare::from_env).as_ref()
}

/// A function of this profile, spawned, on its CPU share when one is asked for; the
/// guard kills and reaps it when dropped, a panic's unwinding included.
fn spawn(binary: &str, runtime: &RuntimeApi, env: &[(String, String)]) -> Confined {
    let child = spawn_function(binary, runtime, env);
    match cpu_share() {
        Some(share) => share.confine(child, runtime),
        None => Confined::unconfined(child),
    }
}

/// One cold start: when the process was spawned, when it first asked for an event
/// (`/next`), and when its first response came.
struct ColdStart {
    spawned: Instant,
    first_next: Instant,
    answered: Instant,
    /// CPU time the process had used when it asked for its second event (the first
    /// invocation over, metrics written, parked where Lambda would freeze it).
    cpu: Duration,
}

/// Cold starts, spawn to first response, over `spawns` processes; `before` runs before
/// each spawn.
async fn cold_starts<F: Future<Output = ()>>(
    binary: &str,
    env: &[(String, String)],
    spawns: usize,
    before: impl Fn() -> F,
) -> Vec<ColdStart> {
    let mut starts = Vec::new();
    for _ in 0..spawns {
        before().await;
        let runtime = RuntimeApi::start().await;
        let spawned = Instant::now();
        let function = spawn(binary, &runtime, env);
        let response = runtime.invoke(rest_event()).await.unwrap();
        let answered = Instant::now();
        assert_eq!(response["statusCode"], 200, "{response}");
        runtime.asked_for_events(2).await;
        starts.push(ColdStart {
            spawned,
            first_next: runtime.first_next().unwrap(),
            answered,
            cpu: super::cpu_time(&function.child),
        });
        drop(function);
    }
    starts
}

/// The medians of the init duration (spawn to the first `/next`) and of the whole.
fn init_and_first_response(starts: &[ColdStart]) -> (Duration, Duration) {
    (
        latency(starts.iter().map(|s| s.first_next - s.spawned).collect()).p50,
        latency(starts.iter().map(|s| s.answered - s.spawned).collect()).p50,
    )
}

/// Warm answers that came from DynamoDB because a Redis command timed out (`BYPASS`)
/// where the cache was expected to answer: only on a CPU share, where a held process's
/// command can outlive `REDIS_TIMEOUT_MS`. Any other unexpected `X-Cache`, and any
/// `BYPASS` without a share, stops the bench.
#[derive(Default)]
struct Others(usize);

impl Others {
    fn note(&mut self, response: &serde_json::Value, expected: &str) {
        let got = &response["multiValueHeaders"]["x-cache"][0];
        if got == expected {
            return;
        }
        assert!(
            cpu_share().is_some() && got == "BYPASS",
            "expected X-Cache {expected}, got {response}"
        );
        self.0 += 1;
    }
}

impl std::fmt::Display for Others {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} BYPASS", self.0)
    }
}

/// The median CPU time of the starts, spawn to the second `/next`, all threads.
fn cpu_per_start(starts: &[ColdStart]) -> Duration {
    latency(starts.iter().map(|s| s.cpu).collect()).p50
}

/// Where a cold hit's time goes, medians over the spawns, from the secret's exchange as
/// its TLS terminator saw it: the function's connection (its start-up before the read),
/// its request (the SDK ready to send), moto's request and answer (moto's own time), and
/// the answer's delivery one injected round trip later (the token in hand).
struct ColdHitParts {
    /// Spawn to the secret's connection: process start, the configuration read, the
    /// name looked up (the connection opens at once, beside the SDK's start-up).
    before_the_read: Duration,
    /// Spawn to the request: the SDK's configuration, client and signing, beside TCP and
    /// TLS (it goes out once both are done).
    before_the_request: Duration,
    /// The connection to the token in hand: TCP, TLS, the call, moto's own time.
    secret_read: Duration,
    /// moto's own time: the request handed to it to its first bytes back.
    moto: Duration,
    /// The token in hand to the first response: AUTH, fred's set-up, `/next`, the hit.
    after_the_token: Duration,
}

impl ColdHitParts {
    fn of(starts: &[ColdStart], secret: &Exchanges, rtt: Duration) -> Self {
        let (mut before, mut request, mut read, mut moto, mut after) =
            (vec![], vec![], vec![], vec![], vec![]);
        for start in starts {
            let exchange = secret
                .answered_between(start.spawned, start.answered)
                .expect("every cold start on this profile reads the secret");
            let (requested, answered) = (exchange.requested.unwrap(), exchange.answered.unwrap());
            let token = answered + rtt;
            before.push(exchange.accepted - start.spawned);
            request.push(requested - start.spawned);
            read.push(token - exchange.accepted);
            moto.push(answered - requested);
            after.push(start.answered.saturating_duration_since(token));
        }
        Self {
            before_the_read: latency(before).p50,
            before_the_request: latency(request).p50,
            secret_read: latency(read).p50,
            moto: latency(moto).p50,
            after_the_token: latency(after).p50,
        }
    }
}

/// A profile's cold starts: init (of the misses), first response of a miss, of a hit.
struct ColdFigures {
    init: Duration,
    cold_miss: Duration,
    cold_hit: Duration,
    /// CPU per cold hit, all threads.
    cold_hit_cpu: Duration,
    /// On a profile that reads the secret.
    cold_hit_parts: Option<ColdHitParts>,
}

async fn measure_cold(binary: &str, profile: &Profile) -> ColdFigures {
    let redis = &profile.redis;
    let forget = || async {
        let _: i64 = redis.del(KEY).await.unwrap();
    };
    let (init, cold_miss) =
        init_and_first_response(&cold_starts(binary, &profile.env, SPAWNS, forget).await);
    // The last miss filled the key: every start below finds it.
    let cold_hits = cold_starts(binary, &profile.env, SPAWNS, || async {}).await;
    let (_, cold_hit) = init_and_first_response(&cold_hits);
    let cold_hit_parts = profile
        .secret
        .as_ref()
        .map(|(exchanges, rtt)| ColdHitParts::of(&cold_hits, exchanges, *rtt));
    ColdFigures {
        init,
        cold_miss,
        cold_hit,
        cold_hit_cpu: cpu_per_start(&cold_hits),
        cold_hit_parts,
    }
}

async fn measure(binary: &str, profile: &Profile) -> Figures {
    let redis = &profile.redis;
    let forget = || async {
        let _: i64 = redis.del(KEY).await.unwrap();
    };
    let ColdFigures {
        init,
        cold_miss,
        cold_hit,
        cold_hit_cpu,
        cold_hit_parts,
    } = measure_cold(binary, profile).await;

    let runtime = RuntimeApi::start().await;
    let function = spawn(binary, &runtime, &profile.env);
    runtime.invoke(rest_event()).await.unwrap();
    let (mut hits, mut misses) = (Vec::new(), Vec::new());
    let (mut hit_others, mut miss_others) = (Others::default(), Others::default());
    for _ in 0..ROUNDS {
        let mut samples = Vec::with_capacity(WARM_HITS);
        for _ in 0..WARM_HITS {
            let started = Instant::now();
            let response = runtime.invoke(rest_event()).await.unwrap();
            samples.push(started.elapsed());
            hit_others.note(&response, "HIT");
        }
        hits.push(latency(samples));
        let mut samples = Vec::with_capacity(WARM_MISSES);
        for _ in 0..WARM_MISSES {
            forget().await;
            let started = Instant::now();
            let response = runtime.invoke(rest_event()).await.unwrap();
            samples.push(started.elapsed());
            miss_others.note(&response, "MISS");
        }
        misses.push(latency(samples));
    }
    drop(function);
    Figures {
        init,
        cold_hit,
        cold_miss,
        cold_hit_cpu,
        cold_hit_parts,
        warm_hit: median_of(&hits),
        warm_miss: median_of(&misses),
        warm_hit_others: hit_others,
        warm_miss_others: miss_others,
    }
}

/// The production-like dependencies: a TLS Redis with a password, moto holding the
/// token, the emulator behind TLS, each behind its delay proxy.
struct Network {
    delays: Delays,
    _redis: RedisServer,
    /// The Redis server's plain-text port.
    plain_port: u16,
    _moto: Moto,
    moto_endpoint: String,
    /// The secret holding [`TOKEN`], once [`Network::profile`] made it.
    secret_arn: String,
    secrets: DelayProxy,
    /// What moto's terminator saw of each connection.
    secret_exchanges: Exchanges,
    dynamodb: DelayProxy,
    redis_proxy: DelayProxy,
    /// The roots the deployed functions trust plus the test CA, as `SSL_CERT_FILE`
    /// (`TRUSTED_ROOTS=system` reading a file of 6 roots: the parsing of
    /// `TRUSTED_ROOTS=amazon`'s 5 compiled-in ones, plus the test CA that signs these
    /// servers' certificates).
    trust: std::path::PathBuf,
}

/// Debian's bundle of the system's root certificates (Lambda's images have their own).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The token ElastiCache would hold, as the secret stores it.
const TOKEN: &str = "bench-auth-token-0123456789";
/// The IAM-enabled user of the IAM profile.
const IAM_USER: &str = "product-api";

impl Network {
    async fn start(delays: Delays) -> Self {
        // TLS on the server's port, behind the proxy; plain text on another, for the
        // bench's own commands.
        let plain_port = free_port();
        let redis = RedisServer::start_with(|port, dir| {
            make_certificates(dir);
            let path = |name: &str| dir.join(name).display().to_string();
            [
                "--port",
                &plain_port.to_string(),
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &path("server.pem"),
                "--tls-key-file",
                &path("server.key"),
                "--tls-ca-cert-file",
                &path("ca.pem"),
                "--tls-auth-clients",
                "no",
                "--requirepass",
                TOKEN,
                // The IAM profile's user, with any password: ElastiCache would check
                // the signed token; the chain's round trips are the same.
                "--user",
                IAM_USER,
                "on",
                "nopass",
                "~*",
                "&*",
                "+@all",
            ]
            .map(str::to_owned)
            .to_vec()
        });
        let certs = redis.dir().to_owned();
        // The test CA beside the roots the deployed functions trust, by default; or
        // beside the system's (BENCH_TRUST_STORE=system, Terraform's
        // trusted_roots = "system"), or alone (test-ca): what loading roots costs.
        let roots = match std::env::var("BENCH_TRUST_STORE").as_deref() {
            Ok("test-ca") => String::new(),
            Ok("system") => std::fs::read_to_string(SYSTEM_ROOTS).expect(SYSTEM_ROOTS),
            Ok("amazon") | Err(_) => product_catalog::tls::AMAZON_TRUST_SERVICES_PEM.to_owned(),
            Ok(other) => panic!("BENCH_TRUST_STORE={other}: expected amazon, system or test-ca"),
        };
        let trust = certs.join("trust.pem");
        std::fs::write(
            &trust,
            roots + &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        )
        .unwrap();

        let moto = Moto::start();
        let moto_tls = TlsTerminator::start(address_of(&moto.endpoint), &certs).await;
        let emulator = address_of(&super::helpers::dynamodb_endpoint());
        let dynamodb_tls = TlsTerminator::start(emulator, &certs).await;
        Self {
            delays,
            secrets: DelayProxy::start("Secrets Manager", moto_tls.addr, delays.secrets),
            secret_exchanges: moto_tls.exchanges,
            dynamodb: DelayProxy::start("DynamoDB", dynamodb_tls.addr, delays.dynamodb),
            redis_proxy: DelayProxy::start("Redis", local(redis.port), delays.redis),
            moto_endpoint: moto.endpoint.clone(),
            secret_arn: String::new(),
            _moto: moto,
            _redis: redis,
            plain_port,
            trust,
        }
    }

    /// product-api's environment on this network, and the secret created in moto.
    async fn profile(&mut self, table: &DynamoStore) -> Profile {
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk_config().await)
                .endpoint_url(&self.moto_endpoint)
                .build(),
        );
        let arn = secrets
            .create_secret()
            .name(format!(
                "bench-cache-auth-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .secret_string(TOKEN)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        self.secret_arn.clone_from(&arn);
        let mut env: Vec<(String, String)> = service_env(
            &format!("rediss://localhost:{}", self.redis_proxy.port),
            table,
        )
        .into_iter()
        .filter(|(name, _)| !name.starts_with("AWS_ENDPOINT_URL"))
        .collect();
        env.extend([
            ("REDIS_AUTH_SECRET_ARN".to_owned(), arn),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
                format!("https://localhost:{}", self.secrets.port),
            ),
            (
                "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
                format!("https://localhost:{}", self.dynamodb.port),
            ),
            ("SSL_CERT_FILE".to_owned(), self.trust.display().to_string()),
        ]);
        let direct = fred::types::config::Config::from_url(&format!(
            "redis://:{TOKEN}@127.0.0.1:{}",
            self.plain_port
        ))
        .unwrap();
        let redis = fred::types::Builder::from_config(direct).build().unwrap();
        redis.init().await.unwrap();
        Profile {
            env,
            redis,
            secret: Some((self.secret_exchanges.clone(), self.delays.secrets)),
        }
    }

    /// [`Network::profile`]'s environment with IAM authentication instead of the secret:
    /// the user [`IAM_USER`], which this Redis lets in with any password (ElastiCache
    /// checks the signed token).
    fn iam_profile(production: &Profile) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = production
            .env
            .iter()
            .filter(|(name, _)| {
                name != "REDIS_AUTH_SECRET_ARN" && name != "AWS_ENDPOINT_URL_SECRETS_MANAGER"
            })
            .cloned()
            .collect();
        env.extend([
            ("REDIS_IAM_USER".to_owned(), IAM_USER.to_owned()),
            ("REDIS_IAM_CACHE".to_owned(), "bench-cache".to_owned()),
        ]);
        env
    }

    /// One GetSecretValue from moto and one GetItem from dynalite, each on a new client
    /// (a new connection, as at a cold start), directly over plain HTTP.
    async fn emulator_times(&self, table: &DynamoStore) -> EmulatorTimes {
        let config = sdk_config().await;
        let (mut secrets, mut items) = (Vec::new(), Vec::new());
        for _ in 0..SPAWNS {
            let client = aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(&config)
                    .endpoint_url(&self.moto_endpoint)
                    .build(),
            );
            let started = Instant::now();
            client
                .get_secret_value()
                .secret_id(&self.secret_arn)
                .send()
                .await
                .unwrap();
            secrets.push(started.elapsed());
            let client = aws_sdk_dynamodb::Client::new(&config);
            let started = Instant::now();
            client
                .get_item()
                .table_name(table.table().as_str())
                .key(
                    "productId",
                    aws_sdk_dynamodb::types::AttributeValue::S("P-10001".to_owned()),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            items.push(started.elapsed());
        }
        EmulatorTimes {
            secret: latency(secrets).p50,
            item: latency(items).p50,
        }
    }

    /// What a round trip through a delay proxy really costs: raw GETs on the plain
    /// server, directly and through a proxy with the Redis delay.
    async fn calibrate(&self, plain: &RedisServer) -> Calibration {
        let proxy = DelayProxy::start("calibration", local(plain.port), self.delays.redis);
        let (direct_port, proxy_port) = (plain.port, proxy.port);
        tokio::task::spawn_blocking(move || {
            let (mut blocking, mut direct, mut through) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                blocking.push(latency(raw_redis_round_trips(direct_port, KEY, 2_000)));
                direct.push(latency(async_redis_round_trips(direct_port, KEY, 2_000)));
                through.push(latency(raw_redis_round_trips(proxy_port, KEY, 500)));
            }
            Calibration {
                blocking: median_of(&blocking).p50,
                direct: median_of(&direct).p50,
                through: median_of(&through).p50,
            }
        })
        .await
        .unwrap()
    }
}

/// The emulators' own answering time, p50: on the cold chains, where AWS's service
/// time would be.
struct EmulatorTimes {
    secret: Duration,
    item: Duration,
}

/// Raw `GET` round trips, p50.
struct Calibration {
    /// On a blocking socket: the wire and Redis alone.
    blocking: Duration,
    /// On a single-threaded tokio runtime: the floor for an async client.
    direct: Duration,
    /// On a blocking socket through a delay proxy at the Redis delay.
    through: Duration,
}

/// The address in an `http://<ip>:<port>` endpoint.
fn address_of(endpoint: &str) -> SocketAddr {
    endpoint
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| panic!("{endpoint} is not http://<ip>:<port>"))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
