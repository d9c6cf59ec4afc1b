//! The report's capacity figures against a hand-made study: the neighbours' correction,
//! marginal capacities, the original's rate against each pool's bracket, the edge against
//! the pool, and what the edge cache changed at the origins.

use super::*;

#[test]
fn capacity_above_the_linear_line_is_explained_not_left_as_a_result() {
    assert!(!markdown(&study()).contains("Efficiency above 100 %"));
    let mut study = study();
    // 3 instances at 3000/s against one at 800/s: 125 % of the linear line, which
    // one instance's bracket (it missed at 1200/s) allows.
    study.scaling[2].capacity_rps = 3000.0;
    study.scaling[2].steps[1] = summary(3000.0, 60.0, 0);
    let md = markdown(&study);
    assert!(
        md.contains(
            "Efficiency above 100 % (3 instances: 125%) is within the search's margins: one \
             instance's capacity lies below 1200/s, and that many times it reaches each of these \
             pools' capacities."
        ),
        "{md}"
    );
    // The fixture's CPU: 2 × min(rate / 30000, 0.05) cores at the capacity step.
    assert!(
        md.contains(
            "The origins' CPU per request at each pool's capacity (instances: CPU): 1: 67 µs, \
             2: 67 µs, 3: 33 µs; this study does not measure why it differs between pools."
        ),
        "{md}"
    );
    // Where the origins' Redis hits at capacity spread, the note gives them.
    study.scaling[0].steps[1].origin_cache = Some(CacheLookups {
        hits: 50,
        misses: 50,
        bypasses: 0,
    });
    let md = markdown(&study);
    assert!(
        md.contains(
            "3: 33 µs; the pools share one Redis, and the share of the origins' lookups that \
             found their key there at capacity differed too (1: 50%, 2: 75%, 3: 75%; each hit \
             spares a database read); this study does not measure how much of the difference in \
             CPU that explains."
        ),
        "{md}"
    );
    // One instance missed at 850/s: three of it carry at most 2550/s, short of 3000/s.
    study.scaling[0].steps[2] = summary(850.0, 900.0, 40);
    let md = markdown(&study);
    assert!(
        md.contains(
            "is more than the search's margins allow: one instance's capacity lies below 850/s, \
             and that many times it falls short of 3 instances' 3000/s."
        ),
        "{md}"
    );
}

#[test]
fn a_capacity_that_met_the_objective_within_its_noise_is_marginal() {
    assert!(!markdown(&study()).contains("Marginal:"));
    let mut study = study();
    // The fixture's p99 noise is a tenth of its p99: 95 ms ± 9.5 is within 2 × 9.5 of 100.
    study.scaling[1].steps[1] = summary(1500.0, 95.0, 0);
    let md = markdown(&study);
    assert!(
        md.contains(
            "Marginal: 2 instances' (p99 95.00 ms, noise ±9.50 ms) capacity met the objective by \
             less than twice the noise of its p99"
        ),
        "{md}"
    );
    assert!(md.contains("| 2 | 1500/s (marginal) |"), "{md}");
    assert!(md.contains("| 3 | 2000/s |"), "{md}");

    // The edge's capacity is held to the same test, in its own section.
    study.edge_capacity = Some(ScalingResult {
        instances: 3,
        capacity_rps: 4500.0,
        steps: vec![summary(4500.0, 95.0, 0), summary(6000.0, 900.0, 40)],
    });
    let md = markdown(&study);
    let cdn = md
        .lines()
        .find(|line| line.starts_with("On 3 instances, within the objective"))
        .unwrap_or_else(|| panic!("no CDN line in {md}"));
    assert!(
        cdn.contains(
            "Marginal: the edge's (p99 95.00 ms, noise ±9.50 ms) capacity met the objective"
        ),
        "{cdn}"
    );
    assert!(!cdn.contains("the pool straight to nginx's ("), "{cdn}");
}

#[test]
fn the_database_tier_s_capacities_show_their_redis_hits_and_margins() {
    let mut study = study();
    let mut cassandra = summary(600.0, 95.0, 0);
    cassandra.origin_cache = Some(CacheLookups {
        hits: 300,
        misses: 700,
        bypasses: 0,
    });
    let backend = |name: &str, step: RunSummary| BackendCapacity {
        backend: name.into(),
        result: ScalingResult {
            instances: 2,
            capacity_rps: step.offered_rate,
            steps: vec![step.clone(), summary(step.offered_rate * 1.5, 900.0, 40)],
        },
        measured_in: "the database tier".into(),
    };
    study.database_tier = Some(DatabaseTier {
        capacity: vec![
            backend("PostgreSQL", summary(1500.0, 60.0, 0)),
            backend("Cassandra", cassandra),
        ],
        ..DatabaseTier::default()
    });
    let md = markdown(&study);
    assert!(md.contains("| Origins' Redis hits at capacity |"), "{md}");
    assert!(md.contains("| PostgreSQL | 2 | 1500/s |"), "{md}");
    assert!(md.contains("| Cassandra | 2 | 600/s (marginal) |"), "{md}");
    assert!(md.contains("| 30.0% |") && md.contains("| 75.0% |"), "{md}");
    assert!(
        md.contains("Marginal: Cassandra's (p99 95.00 ms, noise ±9.50 ms) capacity"),
        "{md}"
    );
    assert!(!md.contains("PostgreSQL's (p99"), "{md}");
}

#[test]
fn the_latency_chart_draws_the_objective_and_a_timeout_only_when_reached() {
    let levels = |study: &StudyResults| -> Vec<String> {
        super::charts::latency_chart(study)
            .series
            .into_iter()
            .filter(|line| line.dashed)
            .map(|line| line.name)
            .collect()
    };
    let mut study = study();
    assert_eq!(levels(&study), ["objective (100 ms)"]);
    // A step whose p99 is the client's timeout: its requests were given up on.
    study.scaling[0].steps.push(summary(2400.0, 2000.0, 900));
    assert_eq!(
        levels(&study),
        ["objective (100 ms)", "client timeout (2000 ms)"]
    );
}

#[test]
fn a_capacity_that_met_the_error_bound_within_its_noise_is_marginal() {
    let mut study = study();
    // 2 errors in 3000 requests: 0.067 % ± 0.047 %, within twice its noise of 0.1 %.
    study.scaling[1].steps[1] = summary(1500.0, 60.0, 2);
    // 1 error in 4000: 0.025 % ± 0.025 %, clear of the bound by more than twice that.
    study.scaling[2].steps[1] = summary(2000.0, 60.0, 1);
    let md = markdown(&study);
    assert!(
        md.contains(
            "Marginal: 2 instances' (errors 0.067%, noise ±0.047%) capacity met the objective by \
             less than twice the noise of its p99 (the standard error of the step's per-second \
             p99s) or of its error rate;"
        ),
        "{md}"
    );
    assert!(!md.contains("3 instances' (errors"), "{md}");
}

#[test]
fn a_configuration_over_its_pool_s_capacity_at_400_per_second_is_said_to_be() {
    assert!(!markdown(&study()).contains("is over this pool's capacity"));
    // One instance carries 338/s under its quota and missed at 380/s: the original's
    // 400/s overloads it. Two carry 372/s and missed at 446/s: 400/s lies in between.
    let with_capacity = |study: &mut StudyResults, index: usize, capacity: f64, missed: f64| {
        study.scaling[index] = ScalingResult {
            instances: index + 1,
            capacity_rps: capacity,
            steps: vec![summary(capacity, 60.0, 0), summary(missed, 900.0, 40)],
        };
    };
    let mut study = study();
    with_capacity(&mut study, 0, 338.0, 380.0);
    let md = markdown(&study);
    assert!(
        md.contains("| Single Service (1 instance + nginx + Redis: 400/s is over this pool's capacity, 338/s (it missed at 380/s)) |"),
        "{md}"
    );
    assert!(
        md.contains(
            "400 requests/s is above the capacity this study measured for Single Service (338/s) \
             under a CPU quota of 0.05 core per instance"
        ),
        "{md}"
    );
    assert!(
        !md.contains("Two Services (2 instances + nginx + Redis:"),
        "{md}"
    );
    assert!(
        !md.contains("lies within the capacity search's bracket"),
        "{md}"
    );

    with_capacity(&mut study, 1, 372.0, 446.0);
    let md = markdown(&study);
    assert!(
        md.contains("| Two Services (2 instances + nginx + Redis: 400/s lies between this pool's capacity, 372/s, and the first rate it missed, 446/s) |"),
        "{md}"
    );
    assert!(
        md.contains(
            "400 requests/s lies within the capacity search's bracket for Two Services (372/s to 446/s)"
        ),
        "{md}"
    );
    assert!(
        !md.contains("measured for Single Service (338/s), Two Services"),
        "a pool whose bracket holds 400/s is not called over it: {md}"
    );
}

#[test]
fn the_edge_against_the_pool_says_only_what_the_brackets_allow() {
    // The pool (3 instances) carried 2000/s and missed at 3000/s.
    let cdn_line = |edge: f64, edge_missed: Option<f64>| {
        let mut study = study();
        let mut steps = vec![summary(edge, 30.0, 0)];
        steps.extend(edge_missed.map(|rate| summary(rate, 900.0, 40)));
        study.edge_capacity = Some(ScalingResult {
            instances: 3,
            capacity_rps: edge,
            steps,
        });
        let md = markdown(&study);
        let line = md
            .lines()
            .find(|line| line.starts_with("On 3 instances, within the objective"))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("no CDN line in {md}"))
    };
    let more = cdn_line(4500.0, Some(6000.0));
    assert!(
        more.contains("The edge carried more than the pool alone: at least 1.50× (its lower bound over the pool's upper one; one search each)."),
        "{more}"
    );
    // At the pool's upper bound exactly: the edge met a rate the pool missed.
    let at_bound = cdn_line(3000.0, Some(4000.0));
    assert!(at_bound.contains("at least 1.00×"), "{at_bound}");
    // "At least" rounds down: 3205 / 3000 = 1.068.
    let rounded = cdn_line(3205.0, Some(5000.0));
    assert!(rounded.contains("at least 1.06×"), "{rounded}");
    // ...but not a quotient that is exactly a hundredth (3450 / 3000 is 114.999... % in
    // floating point).
    let exact = cdn_line(3450.0, Some(5000.0));
    assert!(exact.contains("at least 1.15×"), "{exact}");
    let less = cdn_line(1000.0, Some(2000.0));
    assert!(
        less.contains("The edge carried less than the pool alone."),
        "{less}"
    );
    let overlap = cdn_line(2500.0, Some(3750.0));
    assert!(
        overlap.contains("The two brackets overlap: this run does not tell the two capacities apart (the full profile's 5 bisections narrow them)."),
        "{overlap}"
    );
    assert!(
        !overlap.contains("more than") && !overlap.contains("less than"),
        "{overlap}"
    );
    // No edge step missed: its capacity has no upper bound, and more bisections
    // would not narrow it.
    let unbounded = cdn_line(2500.0, None);
    assert!(
        unbounded.contains("2500/s (no faster step missed)"),
        "{unbounded}"
    );
    assert!(
        unbounded.contains(
            "The two brackets overlap: this run does not tell the two capacities apart. "
        ),
        "{unbounded}"
    );
    // A search that carried nothing is still a bracket, [0, knee).
    let nothing = cdn_line(0.0, Some(400.0));
    assert!(
        nothing.contains("The edge carried less than the pool alone."),
        "{nothing}"
    );
}

/// A tier run at 400/s with the given requests at the origins (over 2 s) and CPU; the
/// edge, when its cache is on, uses 0.141 cores.
fn tier(edge_cache: bool, redis: bool, origin_rate: f64, origins: f64, database: f64) -> TierRun {
    let mut summary = summary(400.0, 9.0, 0);
    summary.origin_requests = Some((origin_rate * summary.duration_s) as u64);
    let cpu = summary.cpu.as_mut().expect("the fixture's summary has CPU");
    cpu.instances = origins;
    cpu.postgres = database;
    cpu.edge = if edge_cache { 0.141 } else { 0.002 };
    TierRun {
        edge_cache,
        redis,
        rate: 400.0,
        summary,
    }
}

#[test]
fn the_cdn_sections_say_what_the_edge_cache_changed_at_the_origins() {
    let mut study = study();
    // As in a full study: behind Redis, a quarter fewer requests but the same CPU;
    // without Redis, the CPU falls with the requests.
    study.tiers = vec![
        tier(true, true, 300.0, 0.092, 0.056),
        tier(false, true, 400.0, 0.094, 0.056),
        tier(true, false, 300.0, 0.084, 0.074),
        tier(false, false, 400.0, 0.110, 0.102),
    ];
    let md = markdown(&study);
    // The fixture's other parts: nginx 0.02, Redis 0.05 (and the generator 0.04, not
    // counted).
    assert!(
        md.contains(
            "At 400/s, putting the edge (its cache on) in front changed the requests that \
             reached the origins by -25% (400/s to 300/s), the origins' CPU by no measurable \
             amount (0.094 to 0.092 cores; 235 to 307 µs per request they got) and the \
             database's by no measurable amount (0.056 to 0.056); the edge itself used 0.141 \
             cores, on the same machine, and the stack's parts together (not the load \
             generator) 0.22 to 0.36 (one run each)."
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "With Redis off, putting the edge (its cache on) in front changed the requests that \
             reached the origins by -25% (400/s to 300/s), the origins' CPU by -24% (0.110 to \
             0.084 cores; 275 to 280 µs per request they got) and the database's by -27% (0.102 \
             to 0.074); the edge itself used 0.141 cores, on the same machine, and the stack's \
             parts together (not the load generator) 0.28 to 0.37"
        ),
        "{md}"
    );

    // Without the runs with Redis off, the tiers say only what ran.
    study.tiers.truncate(2);
    let md = markdown(&study);
    assert!(
        md.contains("the origins' CPU by no measurable amount"),
        "{md}"
    );
    assert!(!md.contains("With Redis off"), "{md}");

    // Two ticks (10 ms each) over a 2 s run are 0.010 cores: within the readings'
    // resolution, however large a share of a small figure; three are not.
    let database_by = |before: f64, after: f64| {
        let mut study = study.clone();
        study.tiers = vec![
            tier(true, true, 300.0, 0.092, after),
            tier(false, true, 400.0, 0.094, before),
        ];
        markdown(&study)
    };
    let md = database_by(0.020, 0.030);
    assert!(
        md.contains("the database's by no measurable amount (0.020 to 0.030)"),
        "{md}"
    );
    let md = database_by(0.020, 0.035);
    assert!(
        md.contains("the database's by +75% (0.020 to 0.035)"),
        "{md}"
    );
}

#[test]
fn a_percentile_at_the_client_s_timeout_is_said_to_be_the_timeout() {
    let mut study = study();
    // An overloaded pool: its slowest requests were given up on at 2 s.
    study.fixed[0].ours = summary(400.0, 2002.9, 120);
    let md = markdown(&study);
    assert!(md.contains("| ≥ 2000 ms (the client's timeout) |"), "{md}");
    // Below the timeout a percentile is a latency.
    study.fixed[0].ours = summary(400.0, 1999.0, 0);
    assert!(!markdown(&study).contains("the client's timeout"));
}

#[test]
fn the_origins_redis_hits_are_given_at_each_capacity_and_tier() {
    let md = markdown(&study());
    assert!(md.contains("| Origins' Redis hits at capacity |"), "{md}");
    // The fixture's origins found three quarters of their keys in every run.
    let capacity_rows = md
        .lines()
        .filter(|line| line.ends_with("| 75.0% |"))
        .count();
    assert_eq!(capacity_rows, 3, "{md}");
    assert!(md.contains("| 75.0% | healthy |"), "{md}");
    // A run whose origins were not asked says so.
    let mut study = study();
    study.tiers[0].summary.origin_cache = None;
    assert!(markdown(&study).contains("| — | healthy |"));
}
