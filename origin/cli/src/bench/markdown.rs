//! The query table as Markdown, with its settings above and its skips below.

use super::{BenchReport, Cell, Draw, Measured};

impl BenchReport {
    /// The table, with the settings above it and the skips and reasons below.
    pub fn markdown(&self) -> String {
        let mut out = self.heading();
        for cell in &self.cells {
            out.push_str(&cell.row());
        }
        out.push('\n');
        for why in self.reasons_not_measured() {
            out.push_str(&format!("HTTP + Redis rows not measured: {why}.\n"));
        }
        for skip in &self.skipped {
            out.push_str(&format!("{skip}\n"));
        }
        for cell in &self.cells {
            out.push_str(&cell.notes());
        }
        out
    }

    /// The title, a paragraph on the settings, and the table's header rows.
    fn heading(&self) -> String {
        let s = &self.settings;
        let distribution = match s.distribution {
            Draw::Uniform => "uniformly",
            Draw::Zipf => "by the data set's Zipf popularity law",
        };
        let warmed = if s.backend_warmup_seconds > 0.0 {
            format!(
                "Before its first cell each backend serves {:.1} s of the three reads, unmeasured, \
                 to keep the first cells from paying for a cold database. ",
                s.backend_warmup_seconds
            )
        } else {
            "No backend was warmed before its first cell (--backend-warmup-seconds 0). ".to_owned()
        };
        format!(
            "## Query benchmark\n\n\
             {} songs loaded (from {}); song ids drawn {distribution} from 1..={}. \
             {warmed}Each cell runs {} closed-loop clients, {:.1} s warm-up then {:.1} s measured; page size {}. \
             Latency is from sending a request to having the whole answer; client and server \
             share one process on {} cores. HTTP rows go through an in-process origin on 127.0.0.1.\n\n\
             | backend | query | through | clients | p50 (ms) | p99 (ms) | throughput (req/s) | requests | errors | Redis hits | original (Node/Express capstone, 10M songs) |\n\
             | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
            s.songs,
            s.songs_from,
            s.songs,
            s.concurrency
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            s.warmup_seconds,
            s.seconds,
            s.limit,
            s.cores,
        )
    }

    /// Why cells were not measured, each reason once, in table order.
    fn reasons_not_measured(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for cell in self.cells.iter().filter(|cell| cell.measured.is_none()) {
            let why = cell.not_measured.clone().unwrap_or_default();
            if !reasons.contains(&why) {
                reasons.push(why);
            }
        }
        reasons
    }
}

impl Cell {
    /// The cell's line in the table.
    fn row(&self) -> String {
        let figures = match &self.measured {
            Some(m) => format!(
                "{:.3} | {:.3} | {:.0} | {} | {} | {}",
                m.p50_ms,
                m.p99_ms,
                m.throughput_per_s,
                m.requests,
                m.errors,
                m.redis_hit_ratio
                    .map_or_else(|| "–".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            ),
            None => "not measured | – | – | – | – | –".to_owned(),
        };
        format!(
            "| {} | {} | {} | {} | {figures} | {} |\n",
            self.backend, self.query, self.through, self.clients, self.original
        )
    }

    /// Lines below the table for Redis bypasses and the first error, if any.
    fn notes(&self) -> String {
        let mut out = String::new();
        if let Some(Measured {
            redis_bypasses: Some(bypasses @ 1..),
            ..
        }) = &self.measured
        {
            out.push_str(&format!(
                "{} {} through {}: Redis was bypassed {bypasses} times (it failed or was slower than its timeout), \
                 so some of these requests were database reads.\n",
                self.backend, self.query, self.through
            ));
        }
        if let Some(Measured {
            errors: 1..,
            first_error: Some(error),
            ..
        }) = &self.measured
        {
            out.push_str(&format!(
                "{} {} through {}: first error: {error}\n",
                self.backend, self.query, self.through
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::{BenchReport, Cell, Draw, Measured, Read, Settings, Via};

    #[test]
    fn markdown_has_a_row_per_cell_and_says_what_was_not_measured() {
        let measured = Measured {
            p50_ms: 0.25,
            p99_ms: 1.5,
            max_ms: 3.0,
            throughput_per_s: 1234.0,
            requests: 6170,
            errors: 0,
            first_error: None,
            redis_hit_ratio: None,
            redis_bypasses: None,
        };
        let report = BenchReport {
            settings: Settings {
                songs: 1000,
                songs_from: "--songs".into(),
                distribution: Draw::Uniform,
                concurrency: vec![1, 16],
                seconds: 5.0,
                warmup_seconds: 1.0,
                backend_warmup_seconds: 15.0,
                limit: 50,
                cores: 2,
            },
            cells: vec![
                Cell {
                    backend: "PostgreSQL".into(),
                    query: Read::Song.label().into(),
                    through: Via::Storage.label().into(),
                    clients: 16,
                    original: Read::Song.original().into(),
                    measured: Some(measured),
                    not_measured: None,
                },
                Cell::not_measured("PostgreSQL", Read::Feed, Via::HttpRedis, 1, "no Redis"),
            ],
            skipped: vec!["ScyllaDB: skipped: SCYLLA_URI is not set".into()],
        };
        let table = report.markdown();
        assert!(table.contains(
            "| PostgreSQL | single song read | storage | 16 | 0.250 | 1.500 | 1234 | 6170 | 0 | – | Cassandra single read: 2–11 ms |"
        ), "{table}");
        assert!(
            table.contains("| PostgreSQL | song-comments feed | HTTP + Redis | 1 | not measured |")
        );
        assert!(table.contains("HTTP + Redis rows not measured: no Redis."));
        assert!(table.contains("\nScyllaDB: skipped: SCYLLA_URI is not set\n"));
        assert!(table.contains("drawn uniformly"));
        assert!(
            table.contains("each backend serves 15.0 s of the three reads, unmeasured"),
            "{table}"
        );
        assert!(
            table.contains("Each cell runs 1 or 16 closed-loop clients"),
            "{table}"
        );
    }
}
