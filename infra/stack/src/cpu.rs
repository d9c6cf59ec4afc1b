//! CPU time from /proc: per process group (a server with every process it forked, such as
//! PostgreSQL's backends or nginx's workers), per process, and for the whole machine, so
//! that a run can say what each part of the stack spent.
//!
//! Every server the stack starts leads its own process group (see `process.rs`), and a
//! group's time is the sum over its live processes of their own time plus the time of the
//! children they have reaped (a finished PostgreSQL backend counts in the postmaster's).
//! A live process belongs to the group of its nearest ancestor that is in one: PostgreSQL
//! puts each backend in a session of its own (`setsid`), so by process group alone a
//! database serving pooled connections would seem to use no CPU at all.

use std::collections::HashMap;

/// Ticks per second of the times in /proc (`USER_HZ`).
pub fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// The fields of `/proc/PID/stat` this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    pub parent: u32,
    pub process_group: u32,
    /// utime + stime: every thread of the process.
    pub own_ticks: u64,
    /// cutime + cstime: children it has waited for.
    pub children_ticks: u64,
    /// State `Z`: exited, awaiting its parent's wait.
    pub zombie: bool,
}

/// Parses one `/proc/PID/stat` line (the command name may hold spaces and parentheses).
pub fn parse_stat(line: &str) -> Option<StatTimes> {
    let after_name = line.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14).
    let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(StatTimes {
        parent: u32::try_from(number(1)?).ok()?,
        process_group: u32::try_from(number(2)?).ok()?,
        own_ticks: number(11)? + number(12)?,
        children_ticks: number(13)? + number(14)?,
        zombie: *fields.first()? == "Z",
    })
}

/// CPU seconds used so far by each of `groups` (process group ids), in the same order:
/// every live process whose group, or whose nearest ancestor's group, is one of them.
pub fn group_seconds(groups: &[u32]) -> Vec<f64> {
    let per_second = ticks_per_second();
    let ticks = attribute(groups, &read_processes());
    groups
        .iter()
        .map(|group| ticks[group] as f64 / per_second)
        .collect()
}

/// Every process (zombies too): pid and its `/proc/PID/stat` fields.
pub fn read_processes() -> HashMap<u32, StatTimes> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parse_stat(&line)?))
        })
        .collect()
}

/// Ticks per tracked group: each process counts for the first tracked group met on the
/// way up from it through its parents (itself included), or for none.
fn attribute(groups: &[u32], processes: &HashMap<u32, StatTimes>) -> HashMap<u32, u64> {
    let mut ticks: HashMap<u32, u64> = groups.iter().map(|group| (*group, 0)).collect();
    for times in processes.values() {
        let mut at = *times;
        // Bounded: a parent link that loops (pids reused between two reads) ends the walk.
        for _ in 0..64 {
            if let Some(total) = ticks.get_mut(&at.process_group) {
                *total += times.own_ticks + times.children_ticks;
                break;
            }
            match processes.get(&at.parent) {
                Some(parent) if at.parent > 1 => at = *parent,
                _ => break,
            }
        }
    }
    ticks
}

/// CPU seconds used so far by the live threads of `pid`, from each one's
/// `/proc/PID/task/TID/schedstat` (nanoseconds, where `/proc/PID/stat` counts 10 ms
/// ticks: a twentieth of a core over 3 s is 15 ticks, ±7 % in the last one). Only for a
/// process that forks nothing and keeps its threads (an origin instance: its runtime's
/// threads live as long as it does): a thread that ends takes its time with it. `None`
/// if the process is gone or the kernel keeps no schedstat.
pub fn threads_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    // A thread that ends between the listing and its reading is skipped.
    let nanos: Vec<u64> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| parse_schedstat(&text))
        .collect();
    (!nanos.is_empty()).then(|| nanos.iter().sum::<u64>() as f64 / 1e9)
}

/// Time on the CPU in nanoseconds: the first field of a schedstat line
/// (`on-cpu waiting timeslices`).
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// CPU seconds this process has used (every thread, not its children).
pub fn own_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|line| parse_stat(&line))
        .map_or(0.0, |times| times.own_ticks as f64 / ticks_per_second())
}

/// CPU seconds the whole machine has been busy (every core; idle and I/O wait left out).
pub fn machine_busy_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy(text.lines().next()?).map(|ticks| ticks as f64 / ticks_per_second())
}

/// Busy ticks from the first line of /proc/stat:
/// `cpu user nice system idle iowait irq softirq steal [guest guest_nice]`.
pub fn parse_machine_busy(line: &str) -> Option<u64> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let at = |index: usize| values.get(index).copied().unwrap_or(0);
    // user + nice + system + irq + softirq + steal (guest time is inside user already).
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// The machine's load averages over 1, 5 and 15 minutes (`/proc/loadavg`), which
/// say how quiet it was around a measurement.
pub fn load_averages() -> Option<[f64; 3]> {
    parse_load_averages(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The first three fields of `/proc/loadavg`: `0.61 1.20 1.98 2/345 6789`.
pub fn parse_load_averages(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|field| field.parse().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_group_and_times_even_with_odd_names() {
        let line = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0 1 1 1";
        assert_eq!(
            parse_stat(line),
            Some(StatTimes {
                parent: 1,
                process_group: 4242,
                own_ticks: 300,
                children_ticks: 10,
                zombie: false,
            })
        );
        let zombie = line.replacen(" S ", " Z ", 1);
        assert_eq!(parse_stat(&zombie).map(|stat| stat.zombie), Some(true));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn a_process_in_a_session_of_its_own_counts_for_its_ancestors_group() {
        let process = |parent, process_group, own_ticks| StatTimes {
            parent,
            process_group,
            own_ticks,
            children_ticks: 1,
            zombie: false,
        };
        let processes = HashMap::from([
            (100, process(1, 100, 10)),    // postmaster, leads group 100
            (101, process(100, 101, 20)),  // a backend: setsid, group 101
            (102, process(101, 102, 40)),  // its child, deeper still
            (200, process(1, 200, 80)),    // nginx master, group 200
            (201, process(200, 200, 160)), // its worker
            (300, process(1, 300, 320)),   // an untracked process
        ]);
        let ticks = attribute(&[100, 200, 999], &processes);
        assert_eq!(ticks[&100], 11 + 21 + 41);
        assert_eq!(ticks[&200], 81 + 161);
        assert_eq!(ticks[&999], 0);
    }

    #[test]
    fn the_machine_is_busy_except_when_idle_or_waiting() {
        assert_eq!(
            parse_machine_busy("cpu  100 5 40 1000 30 2 3 1 0 0"),
            Some(151)
        );
        assert_eq!(parse_machine_busy("cpu0 1 2 3 4"), None);
    }

    #[test]
    fn schedstat_gives_nanoseconds_on_the_cpu() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        // This process has run, so its threads have time on the CPU.
        let own = threads_seconds(std::process::id()).expect("schedstat of this process");
        assert!(own > 0.0, "{own}");
    }

    #[test]
    fn load_averages_are_the_first_three_fields() {
        assert_eq!(
            parse_load_averages("0.61 1.20 1.98 2/345 6789\n"),
            Some([0.61, 1.2, 1.98])
        );
        assert_eq!(parse_load_averages("0.61 1.20"), None);
        assert_eq!(parse_load_averages("a b c"), None);
        assert!(load_averages().is_some());
    }

    #[test]
    fn this_process_and_its_group_are_accounted() {
        // Burn a little CPU so that the figures are above zero whatever the tick length.
        let start = std::time::Instant::now();
        let mut spin = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            spin = spin.wrapping_add(std::hint::black_box(1));
        }
        assert!(spin > 0);
        assert!(own_seconds() > 0.0);
        let group = nix::unistd::getpgrp().as_raw() as u32;
        let seconds = group_seconds(&[group, u32::MAX]);
        assert!(seconds[0] >= own_seconds() - 0.02, "{seconds:?}");
        assert_eq!(seconds[1], 0.0);
        assert!(machine_busy_seconds().unwrap() > 0.0);
    }
}
