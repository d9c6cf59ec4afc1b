//! CPU quota and memory limit on a real process through this machine's cgroups.
//! Where none is writable the tests pass and say SKIPPED on stderr, which
//! `cargo test` shows only with `--nocapture`; so `scripts/test` sets
//! `STACK_CGROUPS_REQUIRED=1` under `CI=true` (CI's machines have writable
//! cgroups), which turns the skip into a failure that no one can miss.

use std::process::Command;
use std::time::{Duration, Instant};

use stack::cgroup::{Cgroup, Hierarchy, Limits};

fn hierarchy_or_skip(test: &str) -> Option<Hierarchy> {
    match Hierarchy::detect() {
        Ok(hierarchy) => Some(hierarchy),
        Err(error) => {
            skip(&format!(
                "{test}: {error} (run as root on a machine with cgroups)"
            ));
            None
        }
    }
}

/// Says that a test is skipped, or fails it when `STACK_CGROUPS_REQUIRED=1`.
fn skip(why: &str) {
    assert!(
        std::env::var_os("STACK_CGROUPS_REQUIRED").is_none_or(|v| v != "1"),
        "STACK_CGROUPS_REQUIRED=1, but {why}"
    );
    eprintln!("SKIPPED {why}");
}

/// CPU time (user + system) of a process in seconds, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // Linux reports in USER_HZ, 100 on every mainstream architecture.
    ticks / 100.0
}

#[test]
fn cpu_quota_holds_a_busy_process_to_its_share() {
    let Some(hierarchy) = hierarchy_or_skip("cpu_quota_holds_a_busy_process_to_its_share") else {
        return;
    };
    let name = format!("stack-test-{}-quota", std::process::id());
    let limits = Limits {
        cpu: Some(0.2),
        cpu_period: None,
        memory_bytes: Some(64 << 20),
    };
    let group = Cgroup::create(&hierarchy, &name, limits).unwrap();
    let mut busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    group.add_process(busy.id()).unwrap();
    for directory in group.directories() {
        let members = std::fs::read_to_string(directory.join("cgroup.procs")).unwrap();
        assert!(
            members.lines().any(|line| line == busy.id().to_string()),
            "pid not in {}",
            directory.display()
        );
    }

    // Run until the loop has used 0.3 s of CPU, however long that takes on a busy machine
    // (bounded), then compare CPU with wall time: the quota caps the ratio whatever the speed.
    let start = cpu_seconds(busy.id());
    let started = Instant::now();
    while cpu_seconds(busy.id()) - start < 0.3 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_seconds(busy.id()) - start;
    let wall = started.elapsed().as_secs_f64();
    busy.kill().unwrap();
    busy.wait().unwrap();
    let directories = group.directories().to_vec();
    drop(group);

    assert!(
        used >= 0.3,
        "the busy loop used only {used:.2} s of CPU in {wall:.1} s: the test measured nothing"
    );
    // 0.2 CPU allows 0.2 s per second of wall time, plus one 100 ms period of slack and the
    // 10 ms granularity of /proc's counters.
    assert!(
        used <= 0.2 * wall + 0.12,
        "the busy loop used {used:.2} s of CPU in {wall:.2} s under a 0.2 CPU quota"
    );
    for directory in directories {
        assert!(
            !directory.exists(),
            "{} was not removed",
            directory.display()
        );
    }
}

#[test]
fn memory_limit_is_written_for_the_group() {
    let Some(hierarchy) = hierarchy_or_skip("memory_limit_is_written_for_the_group") else {
        return;
    };
    let name = format!("stack-test-{}-memory", std::process::id());
    let limits = Limits {
        cpu: None,
        cpu_period: None,
        memory_bytes: Some(128 << 20),
    };
    let group = Cgroup::create(&hierarchy, &name, limits).unwrap();
    let file = match &hierarchy {
        Hierarchy::V1 {
            memory: Some(memory),
            ..
        } => memory.join(&name).join("memory.limit_in_bytes"),
        Hierarchy::V1 { memory: None, .. } => {
            skip("memory_limit_is_written_for_the_group: no writable v1 memory controller");
            return;
        }
        Hierarchy::V2 { root } => root.join(&name).join("memory.max"),
    };
    let written: u64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, 128 << 20);
    drop(group);
    assert!(!file.parent().unwrap().exists());
}
