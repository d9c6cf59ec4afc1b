//! The database tier's section: the original's query table with PostgreSQL and Cassandra
//! side by side beside the original's figures, and one pool size's capacity on each.

use super::scaling::marginal_sentence;
use super::tables::{CapacityCells, redis_hits};
use super::{Table, cores, ms, rate};
use crate::study::model::{DatabaseTier, QueryCell, StudyResults};

/// The section's paragraphs: how it was measured, and what was not.
pub fn paragraphs(study: &StudyResults) -> Vec<String> {
    let Some(tier) = &study.database_tier else {
        return vec!["Not run (this report is from before the database tier).".into()];
    };
    let mut lines = Vec::new();
    match &tier.query_settings {
        Some(settings) => lines.push(format!(
            "The original's query table, measured by `origin bench-queries` on PostgreSQL and on one Apache Cassandra node \
             loaded with the same data set ({} songs, ids drawn {}), in this run: through the storage layer (the `Storage` trait, no HTTP) \
             and through the HTTP API of an in-process origin without Redis. {}Each cell: closed-loop clients, each sending its next request \
             when the last one answered, {} s of warm-up then {} s measured; page size {}. Client, server and database share this machine's cores.",
            settings.songs,
            settings.distribution,
            backend_warmup(settings.backend_warmup_seconds),
            settings.warmup_seconds,
            settings.seconds,
            settings.limit
        )),
        None => lines.push("The query table was not measured.".into()),
    }
    let main = study.meta.backend;
    let second = crate::study::database::other_backend(main).label();
    lines.push(format!(
        "Capacity: the highest arrival rate with p99 < {} ms, errors < 0.1 % and no dropped arrivals, straight to nginx, \
         the same mix and quota on each backend, each stack's Redis filled the same way before its search (the cache fill above); the {second} stack \
         (its database, its instances, Redis and nginx) ran beside the study's idle {} stack. \"Database CPU\" is the database's process group at that rate, \
         in cores; \"Origins' Redis hits\", the share of the origins' lookups that Redis answered (each other one read the database).{}",
        study.meta.slo_ms,
        main.label(),
        marginal_sentence(
            tier.capacity
                .iter()
                .map(|backend| (format!("{}'s", backend.backend), &backend.result)),
            study.meta.slo_ms
        )
    ));
    if let Some(seconds) = tier.cassandra_stack_up_s {
        let what = match main {
            stack::DatabaseBackend::Postgres => "the JVM to its first CQL answer",
            stack::DatabaseBackend::Cassandra => "the server to its first answer",
        };
        lines.push(format!(
            "The {second} stack came up in {seconds:.0} s ({what}, the schema, the data set when the database's data were not there yet, the instances)."
        ));
    }
    if let Some(writes) = &tier.cassandra_writes {
        lines.push(format!(
            "Writes the {second} stack acknowledged (201): {}; deleted by the runs themselves: {}; read back through its API: {}; **lost: {}**.",
            writes.acknowledged, writes.deleted_by_the_run, writes.checked, writes.lost
        ));
    }
    lines.extend(slower_underneath(tier));
    for problem in &tier.problems {
        lines.push(format!("**Not measured**: {problem}."));
    }
    lines
}

/// How much less a storage-layer cell may serve than the matching HTTP cell before the
/// report calls it a contradiction. Quick cells (0.75 s) on a shared two-core machine
/// differ by up to a quarter without cause: a warmed Cassandra's storage cells served
/// 0.76 and 0.84 of their HTTP cells' rates in two runs here, a cold one's first cell
/// 0.46 and 0.67.
const SLOWER_UNDERNEATH: f64 = 0.7;

/// `origin bench-queries`' names for the ways through (`Via::label` in origin-cli).
const THROUGH_STORAGE: &str = "storage";
const THROUGH_HTTP: &str = "HTTP, no Redis";

/// A warning for each storage-layer cell that served less than [`SLOWER_UNDERNEATH`] of
/// the rate of the HTTP cell (no Redis) of the same backend, query and client count.
/// The HTTP path makes the same storage call and more (routing, JSON, an HTTP
/// exchange), so with closed-loop clients it cannot serve more in a steady state: when
/// it does, the storage-layer cell most likely measured something else, a database
/// still warming up (it runs before its HTTP cells, so warming costs it most)
/// or a busy moment of the machine. The HTTP path does merge identical reads in flight
/// at once (`Cache::fetch` in the origin), but from 16 clients drawing among thousands
/// of songs that spares one or two reads in a thousand, far inside the margin. Cells
/// with errors or no requests are left out: their rate is not the read's.
fn slower_underneath(tier: &DatabaseTier) -> Vec<String> {
    let over_http = |storage: &QueryCell| {
        tier.queries.iter().find(|cell| {
            cell.through == THROUGH_HTTP
                && cell.backend == storage.backend
                && cell.query == storage.query
                && cell.clients == storage.clients
        })
    };
    tier.queries
        .iter()
        .filter(|cell| cell.through == THROUGH_STORAGE && clean(cell))
        .filter_map(|storage| Some((storage, over_http(storage).filter(|http| clean(http))?)))
        .filter(|(storage, http)| {
            storage.throughput_per_s < SLOWER_UNDERNEATH * http.throughput_per_s
        })
        .map(|(storage, http)| {
            format!(
                "**Check failed**: {}'s {} through the storage layer from {} client{} served {} (p99 {}), \
                 well below its rate through HTTP without Redis ({}, p99 {}), a path that makes the same storage call and more. \
                 So this cell most likely did not measure a steady state: {} was still warming up (a storage-layer cell runs before its HTTP cells, so warming costs it most) \
                 or the machine was busy during it. Read it as an upper bound on the read's cost, not as its cost.",
                storage.backend,
                storage.query,
                storage.clients,
                if storage.clients == 1 { "" } else { "s" },
                rate(storage.throughput_per_s),
                ms(storage.p99_ms),
                rate(http.throughput_per_s),
                ms(http.p99_ms),
                storage.backend,
            )
        })
        .collect()
}

/// Whether a cell's rate is its read's: it served requests, and none failed.
fn clean(cell: &QueryCell) -> bool {
    cell.requests > 0 && cell.errors == 0
}

/// What each database served before its first cell, unmeasured.
fn backend_warmup(seconds: f64) -> String {
    if seconds > 0.0 {
        format!(
            "Before its first cell each database served {seconds} s of the three reads, unmeasured, to keep the first cells \
             from paying for a cold one (a JVM compiles its read path as it serves, and caches fill). "
        )
    } else {
        "No database was warmed before its first cell: the first cells measured on each may include its warming \
         (in an earlier run Cassandra's storage-layer cells, measured first, read slower than the HTTP cells after them that include the same reads). "
            .into()
    }
}

/// The backends of the query table, in the order measured.
fn backends(tier: &DatabaseTier) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for cell in &tier.queries {
        if !names.contains(&cell.backend.as_str()) {
            names.push(&cell.backend);
        }
    }
    names
}

/// One row per (query, through, clients), one group of columns per backend.
pub fn query_table(tier: &DatabaseTier) -> Table {
    let backends = backends(tier);
    let mut headers = vec!["Query".to_owned(), "Through".into(), "Clients".into()];
    for backend in &backends {
        headers.extend([
            format!("{backend} p50"),
            format!("{backend} p99"),
            format!("{backend} throughput"),
        ]);
    }
    headers.push("Original (Node/Express capstone, 10M songs)".into());
    let mut table = Table {
        headers,
        rows: Vec::new(),
    };
    let mut keys: Vec<(&str, &str, usize)> = Vec::new();
    for cell in &tier.queries {
        let key = (cell.query.as_str(), cell.through.as_str(), cell.clients);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (query, through, clients) in keys {
        let mut row = vec![query.to_owned(), through.to_owned(), clients.to_string()];
        let mut original = String::new();
        for backend in &backends {
            let cell = tier.queries.iter().find(|cell| {
                cell.backend == *backend
                    && cell.query == query
                    && cell.through == through
                    && cell.clients == clients
            });
            match cell {
                Some(cell) => {
                    original.clone_from(&cell.original);
                    let errors = if cell.errors > 0 {
                        format!(" ({} errors)", cell.errors)
                    } else {
                        String::new()
                    };
                    row.extend([
                        ms(cell.p50_ms),
                        ms(cell.p99_ms),
                        format!("{}{errors}", rate(cell.throughput_per_s)),
                    ]);
                }
                None => row.extend(["—".into(), "—".into(), "—".into()]),
            }
        }
        row.push(original);
        table.rows.push(row);
    }
    table
}

/// One row per backend: its capacity at the tier's pool size.
pub fn capacity_table(study: &StudyResults) -> Table {
    let slo = study.meta.slo_ms;
    let mut table = Table::new(&[
        "Database",
        "Instances",
        "Capacity",
        "Known within",
        "p50 at capacity",
        "p99 at capacity",
        "Database CPU at capacity",
        "Origins' Redis hits at capacity",
        "At the knee",
        "Measured in",
    ]);
    let Some(tier) = &study.database_tier else {
        return table;
    };
    for backend in &tier.capacity {
        let result = &backend.result;
        let cells = CapacityCells::of(result, slo);
        table.rows.push(vec![
            backend.backend.clone(),
            result.instances.to_string(),
            cells.capacity,
            cells.known_within,
            cells.p50,
            cells.p99,
            result
                .at_capacity(slo)
                .and_then(|step| step.cpu.as_ref())
                .map_or("—".into(), |cpu| cores(cpu.postgres)),
            redis_hits(result.at_capacity(slo)),
            // `CpuUse` calls the database's part "database".
            cells
                .knee
                .replace("database ", &format!("{} ", backend.backend)),
            backend.measured_in.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(backend: &str, through: &str, clients: usize, throughput: f64) -> QueryCell {
        QueryCell {
            backend: backend.into(),
            query: "single song read".into(),
            through: through.into(),
            clients,
            original: String::new(),
            p50_ms: clients as f64 * 1000.0 / throughput,
            p99_ms: 2.0 * clients as f64 * 1000.0 / throughput,
            throughput_per_s: throughput,
            requests: throughput as u64,
            errors: 0,
        }
    }

    fn tier(queries: Vec<QueryCell>) -> DatabaseTier {
        DatabaseTier {
            queries,
            ..DatabaseTier::default()
        }
    }

    #[test]
    fn a_storage_cell_slower_than_its_http_cell_is_called_out() {
        let tier = tier(vec![
            cell("PostgreSQL", "storage", 1, 4_000.0),
            cell("PostgreSQL", "HTTP, no Redis", 1, 3_000.0),
            // Within the noise between two cells, not a contradiction.
            cell("Cassandra", "storage", 16, 7_600.0),
            cell("Cassandra", "HTTP, no Redis", 16, 10_000.0),
            // The artefact of a cold JVM: slower underneath than through HTTP.
            cell("Cassandra", "storage", 1, 1_337.0),
            cell("Cassandra", "HTTP, no Redis", 1, 2_258.0),
            cell("Cassandra", "HTTP + Redis", 1, 9_000.0),
        ]);
        let warnings = slower_underneath(&tier);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "**Check failed**: Cassandra's single song read through the storage layer from 1 client served 1337/s (p99 1.50 ms), \
                 well below its rate through HTTP without Redis (2258/s, p99 0.89 ms)"
            ),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn cells_without_an_http_counterpart_are_not_compared() {
        let tier = tier(vec![
            cell("Cassandra", "storage", 1, 100.0),
            cell("Cassandra", "HTTP, no Redis", 16, 10_000.0),
            cell("PostgreSQL", "HTTP, no Redis", 1, 10_000.0),
        ]);
        assert!(slower_underneath(&tier).is_empty());
    }

    #[test]
    fn cells_with_errors_or_no_requests_are_not_compared() {
        let failing = QueryCell {
            errors: 3,
            ..cell("Cassandra", "storage", 1, 100.0)
        };
        let empty = QueryCell {
            requests: 0,
            throughput_per_s: 0.0,
            ..cell("PostgreSQL", "storage", 1, 100.0)
        };
        let against_failing = QueryCell {
            errors: 1,
            ..cell("Cassandra", "HTTP, no Redis", 16, 10_000.0)
        };
        let with_errors = tier(vec![
            failing,
            cell("Cassandra", "HTTP, no Redis", 1, 10_000.0),
            empty,
            cell("PostgreSQL", "HTTP, no Redis", 1, 10_000.0),
            cell("Cassandra", "storage", 16, 100.0),
            against_failing,
        ]);
        assert!(slower_underneath(&with_errors).is_empty());
        // The same cells without their errors are all called out.
        let clean = with_errors
            .queries
            .iter()
            .map(|cell| QueryCell {
                errors: 0,
                requests: 100,
                throughput_per_s: cell.throughput_per_s.max(100.0),
                ..cell.clone()
            })
            .collect();
        assert_eq!(slower_underneath(&tier(clean)).len(), 3);
    }
}
