//! `BENCH_CPU_SHARE_MB=<MB>`: the functions this profile spawns run on the share of one
//! CPU that Lambda gives that much memory (MB / 1,769: "At 1,769 MB, a function has the
//! equivalent of one vCPU (one vCPU-second of credits per second)"), each in a cgroup of
//! its own whose CFS bandwidth quota is that share of every `BENCH_CPU_PERIOD_MS`
//! (default 100, the kernel's own period). How Lambda enforces the share (over what
//! period, with what burst from those credits, on how many vCPUs) AWS does not document:
//! this is one enforcement, with no burst in invocations, to see how a start or a busy
//! function fares when its CPU exceeds a period's quota; it is not a measurement of Lambda.
//!
//! One burst an AWS specialist's guide does describe: "On-demand Lambda functions use a
//! full vCPU (non-throttled) but is limited to 10 seconds during its initialization phase
//! ... For provisioned concurrency, there is no cpu burst" (Serverless Land, "Effectively
//! running Java on Serverless"; the Lambda guide itself is silent). So by default
//! (`BENCH_CPU_INIT_BURST=1`) a function's quota is one full CPU until it first asks for
//! an event (the end of Lambda's init phase; the 10 s limit is not modelled), and its
//! share from then on. Writing the quota refills the cgroup's pool to it at once, so the
//! first invocation starts with a whole period's share whatever the init used: the model
//! is "init's CPU is free, and the invocations are on the share". `BENCH_CPU_INIT_BURST=0`
//! gives a function the share from its spawn, as an environment initialized ahead of its
//! requests would have, so that a start's CPU beyond the first quota is held.
//!
//! Needs root and the cgroup v1 `cpu` controller at `/sys/fs/cgroup/cpu` (a host whose
//! controllers are all on cgroup v2 is refused with a message: moving processes between
//! v2 cgroups depends on where the bench itself runs, which this does not handle). The
//! cgroups live under one directory per bench process,
//! `/sys/fs/cgroup/cpu/product-catalog-bench-<pid>/<n>`; empty ones left by an earlier
//! run that was killed are removed at start.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::runtime_api::RuntimeApi;

/// Lambda's memory for one full vCPU.
const MB_PER_VCPU: f64 = 1769.0;

/// The share of one vCPU Lambda gives `memory_mb` (at most one: above 1,769 MB the
/// extra is more vCPUs, which a single-threaded start cannot use).
pub fn vcpu_fraction(memory_mb: u32) -> f64 {
    (f64::from(memory_mb) / MB_PER_VCPU).min(1.0)
}
/// The cgroup v1 `cpu` hierarchy.
const ROOT: &str = "/sys/fs/cgroup/cpu";
/// The name every bench process's directory starts with.
const PREFIX: &str = "product-catalog-bench-";

/// The share every spawned function gets.
pub struct CpuShare {
    pub memory_mb: u32,
    pub period: Duration,
    /// Whether a function runs on a full CPU until its first `/next`.
    pub init_burst: bool,
    quota: Duration,
    /// This bench process's directory, holding one cgroup per function.
    dir: PathBuf,
    spawned: AtomicUsize,
}

impl CpuShare {
    /// From `BENCH_CPU_SHARE_MB` and `BENCH_CPU_PERIOD_MS`; `None` when the first is unset.
    /// Panics naming the variable when either is out of range, or when no cgroup can be
    /// made here.
    pub fn from_env() -> Option<Self> {
        let memory_mb: u32 = match std::env::var("BENCH_CPU_SHARE_MB") {
            Err(_) => return None,
            Ok(v) => v
                .parse()
                .ok()
                .filter(|mb| (128..=1769).contains(mb))
                .unwrap_or_else(|| {
                    panic!("BENCH_CPU_SHARE_MB={v} is not a memory size of 128 to 1769 MB")
                }),
        };
        let period_ms: u64 = std::env::var("BENCH_CPU_PERIOD_MS").map_or(100, |v| {
            v.parse()
                .ok()
                .filter(|ms| (1..=1000).contains(ms))
                .unwrap_or_else(|| panic!("BENCH_CPU_PERIOD_MS={v} is not 1 to 1000 ms"))
        });
        let init_burst = std::env::var("BENCH_CPU_INIT_BURST").map_or(true, |v| match &*v {
            "1" => true,
            "0" => false,
            _ => {
                panic!("BENCH_CPU_INIT_BURST={v} is not 1 (a full CPU until the first /next) or 0")
            }
        });
        let period = Duration::from_millis(period_ms);
        let quota = period.mul_f64(vcpu_fraction(memory_mb));
        // The kernel refuses a quota under 1 ms.
        assert!(
            quota >= Duration::from_millis(1),
            "BENCH_CPU_SHARE_MB={memory_mb} with BENCH_CPU_PERIOD_MS={period_ms} is a quota \
             of {quota:?} per period; the kernel's least is 1 ms: a longer period, or more memory"
        );
        let root = Path::new(ROOT);
        assert!(
            root.join("cpu.cfs_quota_us").exists(),
            "BENCH_CPU_SHARE_MB needs the cgroup v1 cpu controller at {ROOT}"
        );
        remove_leftovers(root);
        let dir = root.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "BENCH_CPU_SHARE_MB: {} cannot be made (root is needed): {e}",
                dir.display()
            )
        });
        Some(Self {
            memory_mb,
            period,
            init_burst,
            quota,
            dir,
            spawned: AtomicUsize::new(0),
        })
    }

    /// The share, as a fraction of one CPU.
    pub fn fraction(&self) -> f64 {
        vcpu_fraction(self.memory_mb)
    }

    /// Moves `child` into a cgroup of its own, right after its spawn (it has run outside
    /// it for the mkdir and two writes, during the dynamic loader's first steps), with
    /// the quota from then on, or (`init_burst`) a full CPU's until it first asks
    /// `runtime` for an event, and the quota from that ask on, set before it is answered
    /// (the write refills the pool: the first invocation starts with a full quota).
    /// The returned guard owns the child: dropped, even by a panic, it kills and reaps
    /// it, then removes the cgroup.
    pub fn confine(&self, child: Child, runtime: &RuntimeApi) -> Confined {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let cgroup = self.dir.join(n.to_string());
        let mut confined = Confined {
            child,
            cgroup: None,
        };
        std::fs::create_dir(&cgroup).unwrap_or_else(|e| panic!("{}: {e}", cgroup.display()));
        confined.cgroup = Some(cgroup.clone());
        write(
            &cgroup.join("cpu.cfs_period_us"),
            &self.period.as_micros().to_string(),
        );
        let (quota_file, quota) = (
            cgroup.join("cpu.cfs_quota_us"),
            self.quota.as_micros().to_string(),
        );
        if self.init_burst {
            write(&quota_file, &self.period.as_micros().to_string());
            runtime.on_first_next(move || {
                // Not a panic: this runs on the Runtime API's thread, and a function that
                // is already gone has nothing left to confine.
                if let Err(e) = std::fs::write(&quota_file, &quota) {
                    eprintln!("warning: {}: {e}", quota_file.display());
                }
            });
        } else {
            write(&quota_file, &quota);
        }
        write(
            &cgroup.join("cgroup.procs"),
            &confined.child.id().to_string(),
        );
        confined
    }

    /// Removes this bench process's directory, once every function's cgroup is gone.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A function process and, on a share, its cgroup.
pub struct Confined {
    pub child: Child,
    cgroup: Option<PathBuf>,
}

impl Confined {
    /// A function with no share: only killed and reaped on drop.
    pub fn unconfined(child: Child) -> Self {
        Self {
            child,
            cgroup: None,
        }
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Some(cgroup) = &self.cgroup else { return };
        // A cgroup whose last process has just been reaped can still count it for a
        // moment.
        for _ in 0..100 {
            if std::fs::remove_dir(cgroup).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("warning: could not remove {}", cgroup.display());
    }
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Removes the empty cgroups (and then directories) of bench processes that were killed
/// before they could; a cgroup that still holds a process stays, and is left to whoever
/// ends it.
fn remove_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        if let Ok(cgroups) = std::fs::read_dir(entry.path()) {
            for cgroup in cgroups.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(cgroup.path());
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
}
