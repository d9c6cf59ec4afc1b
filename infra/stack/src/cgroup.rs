//! CPU quota and memory limit per origin instance, through cgroup v1 or v2, so one process behaves like a small node.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The limits of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Share of one core, e.g. 0.2; `None` leaves CPU unlimited.
    pub cpu: Option<f64>,
    /// CFS period the share is enforced over; `None` picks [`cfs_period`] of the share.
    pub cpu_period: Option<Duration>,
    /// Memory ceiling in bytes; `None` leaves memory unlimited.
    pub memory_bytes: Option<u64>,
}

impl Limits {
    /// The CFS period these limits use (meaningful only with a CPU share).
    pub fn period(&self) -> Duration {
        self.cpu_period
            .unwrap_or_else(|| cfs_period(self.cpu.unwrap_or(1.0)))
    }
}

/// The kernel's smallest CFS quota.
const MIN_QUOTA: Duration = Duration::from_millis(1);
/// The shortest period chosen: shorter ones cost scheduler work for little gain.
const MIN_PERIOD: Duration = Duration::from_millis(10);
/// The kernel's default period, and the longest chosen.
const MAX_PERIOD: Duration = Duration::from_millis(100);

/// The CFS period for a share of one core: the shortest (from 10 ms) whose quota is still
/// the kernel's minimum of 1 ms, at most the default 100 ms.
///
/// A throttled process waits for the rest of its period, up to `period × (1 - share)`: at
/// the default 100 ms a 0.05-core instance could stall 95 ms, which alone would break a
/// 100 ms p99 objective; at 20 ms the stall is at most 19 ms.
pub fn cfs_period(share: f64) -> Duration {
    if !(share.is_finite() && share > 0.0) {
        return MAX_PERIOD;
    }
    let shortest = MIN_QUOTA.as_secs_f64() / share;
    // Whole milliseconds, rounded up so that the quota stays at or above the minimum.
    let millis = (shortest * 1000.0).ceil();
    Duration::from_millis(millis as u64).clamp(MIN_PERIOD, MAX_PERIOD)
}

/// Why a cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "neither cgroup v1 (/sys/fs/cgroup/cpu, /sys/fs/cgroup/memory) nor cgroup v2 (/sys/fs/cgroup) is writable here"
    )]
    Unavailable,
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid size `{0}`: expected a number with an optional K, M or G suffix, e.g. 256M")]
    Size(String),
}

/// Which cgroup layout this machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Separate controller trees, e.g. /sys/fs/cgroup/cpu and /sys/fs/cgroup/memory.
    V1 {
        cpu: PathBuf,
        memory: Option<PathBuf>,
    },
    /// One unified tree with `cpu.max` and `memory.max`.
    V2 { root: PathBuf },
}

impl Hierarchy {
    /// Finds a writable hierarchy: v1's CPU controller first (the hybrid layout of many
    /// machines mounts v2 without controllers at /sys/fs/cgroup/unified), then pure v2.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_under(Path::new("/sys/fs/cgroup"))
    }

    fn detect_under(base: &Path) -> Result<Self, CgroupError> {
        let cpu = base.join("cpu");
        if cpu.join("cpu.cfs_quota_us").exists() && writable_dir(&cpu) {
            let memory = base.join("memory");
            let memory = (memory.join("memory.limit_in_bytes").exists() && writable_dir(&memory))
                .then_some(memory);
            return Ok(Self::V1 { cpu, memory });
        }
        let controllers =
            std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|name| name == "cpu") && writable_dir(base) {
            return Ok(Self::V2 {
                root: base.to_owned(),
            });
        }
        Err(CgroupError::Unavailable)
    }
}

/// A cgroup (one per controller tree on v1) holding one instance; removed on drop.
#[derive(Debug)]
pub struct Cgroup {
    directories: Vec<PathBuf>,
}

impl Cgroup {
    /// Creates the group `name` with `limits`. Nothing is limited until a process joins.
    pub fn create(hierarchy: &Hierarchy, name: &str, limits: Limits) -> Result<Self, CgroupError> {
        let mut group = Self {
            directories: Vec::new(),
        };
        match hierarchy {
            Hierarchy::V1 { cpu, memory } => {
                let cpu_dir = group.make_dir(cpu.join(name))?;
                if let Some(share) = limits.cpu {
                    let period = limits.period();
                    write(
                        &cpu_dir.join("cpu.cfs_period_us"),
                        &period.as_micros().to_string(),
                    )?;
                    write(
                        &cpu_dir.join("cpu.cfs_quota_us"),
                        &quota_us(share, period).to_string(),
                    )?;
                }
                if let (Some(memory), Some(bytes)) = (memory, limits.memory_bytes) {
                    let memory_dir = group.make_dir(memory.join(name))?;
                    write(
                        &memory_dir.join("memory.limit_in_bytes"),
                        &bytes.to_string(),
                    )?;
                }
            }
            Hierarchy::V2 { root } => {
                // A child's controllers must be enabled in its parent first; harmless if already on.
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory");
                let dir = group.make_dir(root.join(name))?;
                if let Some(share) = limits.cpu {
                    let period = limits.period();
                    write(
                        &dir.join("cpu.max"),
                        &format!("{} {}", quota_us(share, period), period.as_micros()),
                    )?;
                }
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                }
            }
        }
        Ok(group)
    }

    /// Moves the process (all its threads) into the group.
    pub fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        for directory in &self.directories {
            write(&directory.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn directories(&self) -> &[PathBuf] {
        &self.directories
    }

    fn make_dir(&mut self, path: PathBuf) -> Result<PathBuf, CgroupError> {
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Write { path, source }),
        }
        self.directories.push(path.clone());
        Ok(path)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for directory in &self.directories {
            remove_group(directory);
        }
    }
}

/// Removes a cgroup directory. The kernel refuses while a process is still inside, and a
/// killed process leaves a moment later, so this retries briefly.
pub fn remove_group(directory: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(directory) {
            Ok(()) => return,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    tracing::warn!(path = %directory.display(), "could not remove cgroup (a process is still inside)");
}

/// Quota in microseconds per `period` for a share of one core (at least 1 ms, the kernel minimum).
pub fn quota_us(share: f64, period: Duration) -> u64 {
    let quota = (share * period.as_micros() as f64).round();
    let floor = MIN_QUOTA.as_micros() as f64;
    if quota.is_finite() && quota >= floor {
        quota as u64
    } else {
        floor as u64
    }
}

/// Parses sizes such as `256M`, `1G`, `512k` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, CgroupError> {
    let trimmed = text.trim();
    let (digits, multiplier) = match trimmed.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('M') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('G') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|value| value.checked_mul(multiplier))
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| CgroupError::Size(text.to_owned()))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        source,
    })
}

fn writable_dir(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0M").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn quota_is_a_share_of_the_period_with_a_floor() {
        let default = Duration::from_millis(100);
        assert_eq!(quota_us(0.2, default), 20_000);
        assert_eq!(quota_us(1.5, default), 150_000);
        assert_eq!(quota_us(0.001, default), 1_000);
        assert_eq!(quota_us(f64::NAN, default), 1_000);
        assert_eq!(quota_us(0.05, Duration::from_millis(20)), 1_000);
    }

    #[test]
    fn the_period_is_as_short_as_the_minimum_quota_allows() {
        let ms = Duration::from_millis;
        // 0.05 core: 1 ms of quota needs a 20 ms period (a stall of at most 19 ms).
        assert_eq!(cfs_period(0.05), ms(20));
        assert_eq!(cfs_period(0.03), ms(34));
        // Large shares stop at 10 ms, tiny ones at the kernel's default 100 ms.
        assert_eq!(cfs_period(0.2), ms(10));
        assert_eq!(cfs_period(2.0), ms(10));
        assert_eq!(cfs_period(0.001), ms(100));
        assert_eq!(cfs_period(0.0), ms(100));
        assert_eq!(cfs_period(f64::NAN), ms(100));
        for share in [0.011, 0.02, 0.05, 0.07, 0.5] {
            assert!(quota_us(share, cfs_period(share)) >= 1_000, "{share}");
        }
        let overridden = Limits {
            cpu: Some(0.05),
            cpu_period: Some(ms(100)),
            memory_bytes: None,
        };
        assert_eq!(overridden.period(), ms(100));
    }

    #[test]
    fn detection_fails_clearly_on_an_empty_tree() {
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Hierarchy::detect_under(empty.path()),
            Err(CgroupError::Unavailable)
        ));
    }

    #[test]
    fn detection_finds_a_v2_tree_with_the_cpu_controller() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        assert_eq!(
            Hierarchy::detect_under(root.path()).unwrap(),
            Hierarchy::V2 {
                root: root.path().to_owned()
            }
        );
    }

    #[test]
    fn v2_group_gets_cpu_max_and_memory_max() {
        let root = tempfile::tempdir().unwrap();
        let hierarchy = Hierarchy::V2 {
            root: root.path().to_owned(),
        };
        let limits = Limits {
            cpu: Some(0.25),
            cpu_period: None,
            memory_bytes: Some(256 << 20),
        };
        let group = Cgroup::create(&hierarchy, "origin-1", limits).unwrap();
        let dir = root.path().join("origin-1");
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "2500 10000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            (256u64 << 20).to_string()
        );
        std::fs::remove_file(dir.join("cpu.max")).unwrap();
        std::fs::remove_file(dir.join("memory.max")).unwrap();
        drop(group);
        assert!(!dir.exists(), "drop removes the group");
    }
}
