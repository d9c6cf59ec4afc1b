use super::*;
use crate::recorder::{CacheCounts, Second};

#[test]
fn recovery_counts_from_the_fault_to_the_last_bad_second() {
    let second = |errors| Second {
        completed: 100,
        errors,
        ..Second::default()
    };
    let timeline: Vec<Second> = [0, 0, 0, 5, 9, 2, 0, 0, 0]
        .into_iter()
        .map(second)
        .collect();
    assert_eq!(recovery_seconds(&timeline, 3), Some(3));
    let clean: Vec<Second> = [0, 0, 0, 0].into_iter().map(second).collect();
    assert_eq!(recovery_seconds(&clean, 1), Some(0));
    let never: Vec<Second> = [0, 0, 3, 3].into_iter().map(second).collect();
    assert_eq!(recovery_seconds(&never, 1), None);
}

#[test]
fn recovery_is_judged_for_reads_and_writes_apart() {
    // Writes fail from the fault (second 3) to second 6; reads only at second 3.
    let timeline: Vec<Second> = (0..9)
        .map(|index| Second {
            completed: 100,
            errors: match index {
                3 => 12,
                4..=6 => 10,
                _ => 0,
            },
            writes: 10,
            write_errors: if (3..=6).contains(&index) { 10 } else { 0 },
            ..Second::default()
        })
        .collect();
    let reads = recovery_seconds_by(&timeline, 3, |s| s.read_errors() > 0);
    let writes = recovery_seconds_by(&timeline, 3, |s| s.write_errors > 0);
    assert_eq!((reads, writes), (Some(1), Some(4)));
    assert_eq!(recovery_seconds(&timeline, 3), Some(4));
}

#[test]
fn throughput_counts_what_came_while_the_load_was_offered() {
    // 400/s for 2 s on a pool that delivered 336/s: 128 answers came in the third
    // second, after the schedule's end, from its queue.
    let second = |completed, errors| Second {
        completed,
        errors,
        ..Second::default()
    };
    let timeline = [second(317, 0), second(355, 5), second(128, 0)];
    let whole = whole_seconds(2.0, &timeline);
    assert_eq!(super::run::delivered_rate(795, 2.0, whole), 333.5);
    // Under a second there is no whole second: every success over the run's length.
    assert_eq!(super::run::delivered_rate(40, 0.5, &[]), 80.0);
}

#[test]
fn only_whole_seconds_count() {
    let timeline = vec![Second::default(); 4];
    assert_eq!(whole_seconds(3.0, &timeline).len(), 3);
    assert_eq!(whole_seconds(2.999_999_9, &timeline).len(), 3);
    assert_eq!(whole_seconds(2.5, &timeline).len(), 2);
    assert_eq!(whole_seconds(9.0, &timeline).len(), 4);
}

#[test]
fn noise_is_the_standard_error_of_the_seconds() {
    assert_eq!(standard_error([5.0].into_iter()), None);
    let noise = standard_error([4.0, 6.0].into_iter()).unwrap();
    assert!((noise - 1.0).abs() < 1e-9, "{noise}");
    // Seconds without requests (0) do not count.
    assert_eq!(standard_error([4.0, 0.0].into_iter()), None);
}

fn cpu(instances: Vec<f64>, nginx: f64, other: f64) -> CpuUse {
    CpuUse {
        seconds: 3.0,
        instances: instances.iter().sum(),
        per_instance: instances,
        nginx,
        edge: 0.0,
        postgres: 0.2,
        redis: 0.05,
        generator: 0.3,
        other,
        machine_cores: 2,
        instance_quota: Some(0.05),
    }
}

#[test]
fn the_bottleneck_is_named_from_cpu_figures() {
    let pool = cpu(vec![0.049, 0.048], 0.2, 0.0);
    assert!(
        pool.bottleneck()
            .starts_with("the origin pool at its CPU quota"),
        "{}",
        pool.bottleneck()
    );
    // One instance at its quota saturates the pool even if the other idles (imbalance).
    let skewed = cpu(vec![0.049, 0.01], 0.2, 0.0);
    assert!(skewed.bottleneck().starts_with("the origin pool"));
    let machine = cpu(vec![0.02, 0.02], 0.7, 0.5);
    let text = machine.bottleneck();
    assert!(
        text.starts_with("the machine's CPU (1.79 of 2 cores busy"),
        "{text}"
    );
    assert!(
        text.contains("nginx 0.70, other processes 0.50, load generator 0.30"),
        "{text}"
    );
    let idle = cpu(vec![0.02, 0.02], 0.1, 0.0);
    assert!(idle.bottleneck().starts_with("no part at a CPU limit"));
    assert_eq!(machine.pool_quota(), Some(0.1));
}

#[test]
fn error_noise_never_reads_zero_as_exact() {
    let mut summary = RunSummary {
        offered_rate: 400.0,
        requests: 800,
        errors: 0,
        error_rate: 0.0,
        dropped: 0,
        dropped_rate: 0.0,
        mean_ms: 1.0,
        p50_ms: 1.0,
        p90_ms: 1.0,
        p99_ms: 1.0,
        p999_ms: 1.0,
        max_ms: 1.0,
        throughput: 400.0,
        duration_s: 2.0,
        p50_noise_ms: None,
        p99_noise_ms: None,
        start: None,
        cpu: None,
        cache: CacheCounts::default(),
        origin_requests: Some(400),
        origin_cache: None,
    };
    assert!((summary.error_rate_noise() - 3.0 / 800.0).abs() < 1e-12);
    summary.errors = 8;
    summary.error_rate = 0.01;
    assert!((summary.error_rate_noise() - (0.01f64 * 0.99 / 800.0).sqrt()).abs() < 1e-12);
    assert_eq!(summary.origin_rate(), Some(200.0));
    assert!(summary.started_healthy());
}

#[test]
fn the_neighbours_probe_compares_only_fit_rounds() {
    let round = |beside, cpu_us, quota_use| NeighbourRound {
        beside,
        started_healthy: true,
        requests: 500,
        errors: 0,
        p99_ms: 4.0,
        cpu_us,
        quota_use: Some(quota_use),
        cpu: cpu(vec![0.02], 0.01, 0.0),
    };
    let mut probe = NeighbourProbe {
        rate: 50.0,
        neighbour_rate: 140.0,
        seconds: 5.0,
        neighbours: 9,
        rounds: vec![round(false, 500.0, 0.5), round(true, 400.0, 0.4)],
    };
    let comparison = probe.compare().unwrap();
    assert!((comparison.ratio - 1.25).abs() < 1e-9 && comparison.apart());
    // A round with errors, without requests or near its quota may not be compared.
    probe.rounds[1].errors = 2;
    assert_eq!(probe.rounds[1].unfit().as_deref(), Some("2 errors"));
    assert_eq!(probe.compare(), None);
    probe.rounds[1].errors = 0;
    probe.rounds[1].requests = 0;
    assert!(probe.rounds[1].unfit().is_some() && probe.compare().is_none());
    probe.rounds[1].requests = 500;
    probe.rounds[0].quota_use = Some(QUOTA_CEILING + 0.01);
    assert!(probe.compare().is_none());
    // No CPU at all alone gives no ratio, not an infinite one.
    probe.rounds[0].quota_use = Some(0.0);
    probe.rounds[0].cpu_us = 0.0;
    assert_eq!(probe.compare(), None);
}
