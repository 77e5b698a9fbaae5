//! `BENCH_CPU_SHARE_MB=<MB>`: the functions this profile spawns run on the share of one
//! CPU that Lambda gives that much memory (MB / 1,769: "at 1,769 MB, a function has the
//! equivalent of one vCPU"), each in a cgroup of its own whose CFS bandwidth quota is
//! that share of every `BENCH_CPU_PERIOD_MS` (default 100, the kernel's own period).
//! How Lambda enforces the share, over what period and with what burst, AWS does not
//! document: this is a model of one enforcement, to see how a start that needs more CPU
//! than one period's quota fares, not a measurement of Lambda. Needs root and the cgroup
//! `cpu` controller (v1, or v2 with `cpu` available at its root).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// Lambda's memory for one full vCPU.
const MB_PER_VCPU: f64 = 1769.0;

/// Where and how the cgroups are made.
#[derive(Clone, Copy)]
enum Hierarchy {
    /// cgroup v1: `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
    V1,
    /// cgroup v2: `cpu.max`, "quota period".
    V2,
}

/// The share every spawned function gets.
pub struct CpuShare {
    pub memory_mb: u32,
    pub period: Duration,
    quota: Duration,
    root: PathBuf,
    hierarchy: Hierarchy,
}

impl CpuShare {
    /// From `BENCH_CPU_SHARE_MB` and `BENCH_CPU_PERIOD_MS`; `None` when the first is unset.
    /// Panics naming the variable when either is not a number, or when no cgroup can be
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
        let period = Duration::from_millis(period_ms);
        let (root, hierarchy) = hierarchy().unwrap_or_else(|| {
            panic!(
                "BENCH_CPU_SHARE_MB needs the cgroup cpu controller, writable: \
                 /sys/fs/cgroup/cpu (v1) or /sys/fs/cgroup with cpu in cgroup.controllers (v2)"
            )
        });
        Some(Self {
            memory_mb,
            period,
            quota: period.mul_f64(f64::from(memory_mb) / MB_PER_VCPU),
            root,
            hierarchy,
        })
    }

    /// The share, as a fraction of one CPU.
    pub fn fraction(&self) -> f64 {
        f64::from(self.memory_mb) / MB_PER_VCPU
    }

    /// Moves `child` into a cgroup of its own with the quota, right after its spawn (it
    /// has run for microseconds by then: the loader's first steps). The cgroup is removed
    /// when the returned guard is dropped, once the process has been waited for.
    pub fn confine(&self, child: &Child) -> Confined {
        let dir = self
            .root
            .join(format!("product-catalog-bench-{}", child.id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let (period_us, quota_us) = (self.period.as_micros(), self.quota.as_micros());
        match self.hierarchy {
            Hierarchy::V1 => {
                write(&dir.join("cpu.cfs_period_us"), &period_us.to_string());
                write(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string());
            }
            Hierarchy::V2 => write(&dir.join("cpu.max"), &format!("{quota_us} {period_us}")),
        }
        write(&dir.join("cgroup.procs"), &child.id().to_string());
        Confined(dir)
    }
}

/// A function's cgroup, removed on drop (the process must have exited by then).
pub struct Confined(PathBuf);

impl Drop for Confined {
    fn drop(&mut self) {
        // A cgroup whose last process has just been reaped can still count it for a
        // moment.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("warning: could not remove {}", self.0.display());
    }
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The cgroup hierarchy with a writable cpu controller, if any.
fn hierarchy() -> Option<(PathBuf, Hierarchy)> {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        return Some((v1.to_owned(), Hierarchy::V1));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return None;
    }
    // Children get the cpu controller only when the root hands it down.
    std::fs::write(v2.join("cgroup.subtree_control"), "+cpu").ok()?;
    Some((v2.to_owned(), Hierarchy::V2))
}
