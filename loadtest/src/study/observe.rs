//! What the stack did during a run, seen from outside it: the CPU each part used (process
//! groups in /proc, and each origin instance's threads to the nanosecond; see
//! `stack::cpu`), and the requests the origin instances answered and their Redis lookups
//! (their own counters at `/metrics`).

use std::time::{Duration, Instant};

use stack::Stack;
use stack::probe::HttpClient;

use super::model::{CacheLookups, CpuUse};

/// The process groups of the stack's parts at one moment.
#[derive(Debug, Clone, Default)]
struct Groups {
    instances: Vec<u32>,
    nginx: Vec<u32>,
    edge: Vec<u32>,
    postgres: Vec<u32>,
    redis: Vec<u32>,
}

impl Groups {
    fn of(stack: &mut Stack) -> Self {
        let mut groups = Self::default();
        let mut instances: Vec<(usize, u32)> = Vec::new();
        for (name, pid) in stack.state().processes {
            match name.as_str() {
                "nginx" => groups.nginx.push(pid),
                "edge" => groups.edge.push(pid),
                // The database, whichever it is (the database tier runs a Cassandra stack).
                "postgres" | "cassandra" => groups.postgres.push(pid),
                "redis" => groups.redis.push(pid),
                other => {
                    if let Some(index) = other
                        .strip_prefix("origin-")
                        .and_then(|index| index.parse().ok())
                    {
                        instances.push((index, pid));
                    }
                }
            }
        }
        instances.sort_unstable();
        groups.instances = instances.into_iter().map(|(_, pid)| pid).collect();
        groups
    }

    fn all(&self) -> Vec<u32> {
        [
            &self.instances,
            &self.nginx,
            &self.edge,
            &self.postgres,
            &self.redis,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }
}

/// CPU seconds of every part at one moment.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    groups: Groups,
    seconds: Vec<f64>,
    /// Each instance's CPU seconds from its threads' own counts (to the nanosecond, see
    /// `stack::cpu::threads_seconds`), in `groups.instances`' order, where readable.
    instance_threads: Vec<Option<f64>>,
    generator: f64,
    machine: Option<f64>,
}

/// Reads the CPU seconds used so far by each part of `stack` and by this process.
pub fn cpu_snapshot(stack: &mut Stack) -> CpuSnapshot {
    let groups = Groups::of(stack);
    let seconds = stack::cpu::group_seconds(&groups.all());
    let instance_threads = groups
        .instances
        .iter()
        .map(|pid| stack::cpu::threads_seconds(*pid))
        .collect();
    CpuSnapshot {
        at: Instant::now(),
        groups,
        seconds,
        instance_threads,
        generator: stack::cpu::own_seconds(),
        machine: stack::cpu::machine_busy_seconds(),
    }
}

impl CpuSnapshot {
    fn of(&self, pid: u32) -> Option<f64> {
        let position = self.groups.all().iter().position(|group| *group == pid)?;
        self.seconds.get(position).copied()
    }

    fn threads_of(&self, pid: u32) -> Option<f64> {
        let position = self
            .groups
            .instances
            .iter()
            .position(|group| *group == pid)?;
        self.instance_threads.get(position).copied().flatten()
    }

    /// CPU used by each part from `self` to `later`, in cores. A part that was restarted
    /// in between (a new process group) counts from zero.
    pub fn until(&self, later: &CpuSnapshot, instance_quota: Option<f64>) -> CpuUse {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let used = |pids: &[u32]| -> f64 {
            pids.iter()
                .map(|pid| {
                    let end = later.of(*pid).unwrap_or(0.0);
                    let start = self.of(*pid).unwrap_or(0.0);
                    (end - start).max(0.0)
                })
                // Not `sum`: a float sum of nothing is -0.0, which prints as "-0.00"
                // for a part this stack does not run.
                .fold(0.0, |total, seconds| total + seconds)
                / wall
        };
        // An instance's own threads, to the nanosecond, where both readings have them and
        // agree with its ticks within two (a thread that ended took its time with it);
        // else its process group in ticks (a restarted instance counts from zero).
        let two_ticks = 2.0 / stack::cpu::ticks_per_second() / wall;
        let per_instance: Vec<f64> = later
            .groups
            .instances
            .iter()
            .map(|pid| {
                let ticks = used(std::slice::from_ref(pid));
                match (self.threads_of(*pid), later.threads_of(*pid)) {
                    (Some(start), Some(end)) if (end - start) / wall + two_ticks >= ticks => {
                        (end - start).max(0.0) / wall
                    }
                    _ => ticks,
                }
            })
            .collect();
        let instances = per_instance.iter().sum();
        let generator = ((later.generator - self.generator) / wall).max(0.0);
        let mut use_ = CpuUse {
            seconds: wall,
            instances,
            per_instance,
            nginx: used(&later.groups.nginx),
            edge: used(&later.groups.edge),
            postgres: used(&later.groups.postgres),
            redis: used(&later.groups.redis),
            generator,
            other: 0.0,
            machine_cores: std::thread::available_parallelism().map_or(1, usize::from),
            instance_quota,
        };
        if let (Some(start), Some(end)) = (self.machine, later.machine) {
            let busy = (end - start) / wall;
            let ours = use_.busy();
            use_.other = (busy - ours).max(0.0);
        }
        use_
    }
}

/// What the stack did while a run's work ran, read just before and just after it (see
/// `Session::watch`): each part's CPU and each instance's own counters.
pub struct Watched {
    pub cpu: CpuUse,
    /// Each instance's counters, in `Stack::instance_urls`' order (`None` for one that
    /// did not answer).
    before: Vec<Option<OriginCounts>>,
    after: Vec<Option<OriginCounts>>,
    /// Whether every instance ran as the same process at both readings: a restarted one
    /// (a fault and its repair) began its counters again, so a difference says nothing.
    same_processes: bool,
}

impl Watched {
    pub fn new(
        cpu_before: &CpuSnapshot,
        cpu_after: &CpuSnapshot,
        instance_quota: Option<f64>,
        before: Vec<Option<OriginCounts>>,
        after: Vec<Option<OriginCounts>>,
    ) -> Self {
        Self {
            cpu: cpu_before.until(cpu_after, instance_quota),
            before,
            after,
            same_processes: cpu_before.groups.instances == cpu_after.groups.instances,
        }
    }

    /// The origins' requests and Redis lookups in between, all instances together (of
    /// those that answered both readings); `None` when an instance was restarted.
    pub fn total(&self) -> Option<OriginCounts> {
        self.same_processes
            .then(|| counts_between(&self.before, &self.after))
    }

    /// Each instance's requests in between, in `Stack::instance_urls`' order: `None`
    /// for one that did not answer a reading, and for every one when an instance was
    /// restarted (its position may then name another process).
    pub fn requests_each(&self) -> Vec<Option<u64>> {
        self.before
            .iter()
            .zip(&self.after)
            .map(|(before, after)| {
                let (before, after) = (before.as_ref()?, after.as_ref()?);
                self.same_processes
                    .then(|| after.requests.saturating_sub(before.requests))
            })
            .collect()
    }
}

/// One instance's own counters at `/metrics`: its `/api` requests and its Redis lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OriginCounts {
    pub requests: u64,
    pub cache: CacheLookups,
}

impl OriginCounts {
    /// Reads one instance's Prometheus text.
    pub fn parse(metrics: &str) -> Self {
        let mut counts = Self::default();
        for line in metrics.lines() {
            let Some(value) = line
                .rsplit_once(' ')
                .and_then(|(_, value)| value.trim().parse::<u64>().ok())
            else {
                continue;
            };
            if line.starts_with("origin_http_requests_total{") && line.contains("route=\"/api") {
                counts.requests += value;
            } else if line.starts_with("origin_cache_lookups_total{") {
                if line.contains("outcome=\"hit\"") {
                    counts.cache.hits += value;
                } else if line.contains("outcome=\"miss\"") {
                    counts.cache.misses += value;
                } else if line.contains("outcome=\"bypass\"") {
                    counts.cache.bypasses += value;
                }
            }
        }
        counts
    }
}

/// Each instance's counters, `None` for one that did not answer.
pub async fn origin_counts(
    client: &HttpClient,
    instance_urls: &[String],
) -> Vec<Option<OriginCounts>> {
    let mut counts = Vec::with_capacity(instance_urls.len());
    for url in instance_urls {
        let count = match client.get(&format!("{url}/metrics")).await {
            Ok(response) if response.status == 200 => Some(OriginCounts::parse(
                &String::from_utf8_lossy(&response.body),
            )),
            _ => None,
        };
        counts.push(count);
    }
    counts
}

/// The total of `later - earlier` over instances present in both.
pub fn counts_between(
    earlier: &[Option<OriginCounts>],
    later: &[Option<OriginCounts>],
) -> OriginCounts {
    let mut total = OriginCounts::default();
    for (before, after) in earlier.iter().zip(later) {
        let (Some(before), Some(after)) = (before, after) else {
            continue;
        };
        total.requests += after.requests.saturating_sub(before.requests);
        total.cache.hits += after.cache.hits.saturating_sub(before.cache.hits);
        total.cache.misses += after.cache.misses.saturating_sub(before.cache.misses);
        total.cache.bypasses += after.cache.bypasses.saturating_sub(before.cache.bypasses);
    }
    total
}

/// A client for the stack's own endpoints (metrics, readiness).
pub fn stack_client() -> HttpClient {
    HttpClient::new(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_counts_its_threads_time_where_both_readings_have_it() {
        let at = Instant::now();
        let snapshot = |seconds: [f64; 2], threads: Option<f64>, at: Instant| CpuSnapshot {
            at,
            groups: Groups {
                instances: vec![11, 12],
                ..Groups::default()
            },
            seconds: seconds.to_vec(),
            instance_threads: vec![threads, None],
            generator: 0.0,
            machine: None,
        };
        let later = at + Duration::from_secs(1);
        // Instance 11: ticks say 0.26 s, its threads 0.25 s (within two ticks of 10 ms);
        // instance 12 has ticks only.
        let use_ = snapshot([1.0, 2.0], Some(1.0), at)
            .until(&snapshot([1.26, 2.3], Some(1.25), later), None);
        assert!((use_.per_instance[0] - 0.25).abs() < 1e-9, "{use_:?}");
        assert!((use_.per_instance[1] - 0.3).abs() < 1e-9, "{use_:?}");
        assert!((use_.instances - 0.55).abs() < 1e-9, "{use_:?}");
        // A reading without threads' time (a restarted instance) falls back to ticks.
        let use_ =
            snapshot([1.0, 2.0], None, at).until(&snapshot([1.26, 2.3], Some(1.25), later), None);
        assert!((use_.per_instance[0] - 0.26).abs() < 1e-9, "{use_:?}");
        // So does one whose threads lost more than two ticks (a thread that ended).
        let use_ = snapshot([1.0, 2.0], Some(1.0), at)
            .until(&snapshot([1.5, 2.3], Some(1.1), later), None);
        assert!((use_.per_instance[0] - 0.5).abs() < 1e-9, "{use_:?}");
    }

    #[test]
    fn counters_of_a_restarted_instance_give_no_difference() {
        let at = Instant::now();
        let snapshot = |instances: Vec<u32>, at: Instant| CpuSnapshot {
            at,
            seconds: vec![1.0; instances.len()],
            instance_threads: vec![None; instances.len()],
            groups: Groups {
                instances,
                ..Groups::default()
            },
            generator: 0.0,
            machine: None,
        };
        let requests = |requests| {
            Some(OriginCounts {
                requests,
                cache: CacheLookups::default(),
            })
        };
        let later = at + Duration::from_secs(1);
        let before = vec![requests(100), requests(50), None];
        let after = vec![requests(130), requests(20), requests(9)];
        // The same processes: each instance's difference, and the total of those that
        // answered both readings.
        let same = Watched::new(
            &snapshot(vec![11, 12, 13], at),
            &snapshot(vec![11, 12, 13], later),
            None,
            before.clone(),
            after.clone(),
        );
        assert_eq!(same.requests_each(), [Some(30), Some(0), None]);
        assert_eq!(same.total().map(|total| total.requests), Some(30));
        // Instance 2 restarted in between (a new pid, its counter from zero): no figure
        // rather than a low one.
        let restarted = Watched::new(
            &snapshot(vec![11, 12, 13], at),
            &snapshot(vec![11, 14, 13], later),
            None,
            before,
            after,
        );
        assert_eq!(restarted.requests_each(), [None, None, None]);
        assert_eq!(restarted.total(), None);
    }

    #[test]
    fn a_part_the_stack_does_not_run_uses_zero_cores_not_minus_zero() {
        let at = Instant::now();
        let snapshot = |seconds: f64, at: Instant| CpuSnapshot {
            at,
            groups: Groups {
                nginx: vec![7],
                ..Groups::default()
            },
            seconds: vec![seconds],
            instance_threads: Vec::new(),
            generator: 0.0,
            machine: None,
        };
        let use_ = snapshot(1.0, at).until(&snapshot(1.5, at + Duration::from_secs(1)), None);
        assert!((use_.nginx - 0.5).abs() < 1e-9, "{}", use_.nginx);
        assert!(
            use_.edge == 0.0 && use_.edge.is_sign_positive(),
            "{}",
            use_.edge
        );
        assert_eq!(format!("{:.2}", use_.edge), "0.00");
    }

    #[test]
    fn api_requests_add_up_only_api_routes() {
        let metrics = "# HELP origin_http_requests_total Requests\n\
            origin_http_requests_total{route=\"/api/songs/{song_id}\",method=\"GET\",status=\"200\"} 120\n\
            origin_http_requests_total{route=\"/api/songs/{song_id}/comments\",method=\"POST\",status=\"201\"} 7\n\
            origin_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 50\n\
            origin_http_request_duration_seconds_count{route=\"/api/songs/{song_id}\",method=\"GET\",status=\"200\"} 120\n";
        assert_eq!(OriginCounts::parse(metrics).requests, 127);
        assert_eq!(OriginCounts::parse(""), OriginCounts::default());
    }

    #[test]
    fn counts_between_skips_instances_that_did_not_answer() {
        let counts = |requests, hits, misses| {
            Some(OriginCounts {
                requests,
                cache: CacheLookups {
                    hits,
                    misses,
                    bypasses: 0,
                },
            })
        };
        let before = [counts(10, 4, 1), counts(5, 0, 0), None];
        let after = [counts(25, 14, 3), None, counts(7, 2, 0)];
        let total = counts_between(&before, &after);
        assert_eq!(total.requests, 15);
        assert_eq!((total.cache.hits, total.cache.misses), (10, 2));
    }

    #[test]
    fn an_instance_s_metrics_give_its_api_requests_and_redis_lookups() {
        let text = "# HELP origin_http_requests_total Requests.\n\
            origin_http_requests_total{route=\"/api/songs/{song_id}\",method=\"GET\",status=\"200\"} 12\n\
            origin_http_requests_total{route=\"/api/songs/{song_id}/comments\",method=\"POST\",status=\"201\"} 3\n\
            origin_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 40\n\
            origin_cache_lookups_total{kind=\"song\",outcome=\"hit\"} 9\n\
            origin_cache_lookups_total{kind=\"page\",outcome=\"hit\"} 1\n\
            origin_cache_lookups_total{kind=\"song\",outcome=\"miss\"} 2\n\
            origin_cache_lookups_total{kind=\"feed\",outcome=\"bypass\"} 5\n";
        let counts = OriginCounts::parse(text);
        assert_eq!(counts.requests, 15);
        assert_eq!(
            counts.cache,
            CacheLookups {
                hits: 10,
                misses: 2,
                bypasses: 5
            }
        );
        assert_eq!(counts.cache.hit_ratio(), Some(10.0 / 17.0));
    }
}
