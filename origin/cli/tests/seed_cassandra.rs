//! `origin seed --backend cassandra` against a real Cassandra node: determinism, counts in
//! both comment tables, refusal of a loaded keyspace unless forced, and resuming an
//! interrupted load from its last checkpoint.

use std::time::Duration;

use futures::TryStreamExt as _;
use indicatif::ProgressBar;
use origin::configuration::ScyllaArgs;
use origin::storage::scylla::ScyllaOptions;
use origin_cli::datagen::Dataset;
use origin_cli::datagen::scylla::{self as loader, LoadError};
use origin_cli::datagen::{Existing, StartError};
use scylla::client::session::Session;
use scylla::value::Row;

fn dataset(seed: u64) -> Dataset {
    Dataset {
        seed,
        songs: 1_000,
        users: 300,
        comments: 5_000,
        zipf_exponent: 0.5,
    }
}

/// A keyspace of its own on the node this test process shares.
async fn keyspace(name: &str) -> ScyllaOptions {
    let node = stack::cassandra::shared_for_tests()
        .await
        .expect("start Cassandra");
    ScyllaArgs {
        uri: Some(node.uri().to_owned()),
        keyspace: format!("{name}_{}", std::process::id()),
        ..ScyllaArgs::default()
    }
    .options(Duration::from_secs(10))
    .unwrap()
}

async fn load(
    options: &ScyllaOptions,
    dataset: Dataset,
    existing: Existing,
) -> Result<(), LoadError> {
    loader::load(options, dataset, existing, &ProgressBar::hidden())
        .await
        .map(|_| ())
}

async fn session(options: &ScyllaOptions) -> Session {
    origin::storage::scylla::session(options).await.unwrap()
}

/// Rows of songs, users, comments_by_song and comments_by_id.
async fn counts(session: &Session, ks: &str) -> [i64; 4] {
    let mut counts = [0; 4];
    for (count, table) in
        counts
            .iter_mut()
            .zip(["songs", "users", "comments_by_song", "comments_by_id"])
    {
        *count = session
            .query_unpaged(format!("SELECT count(*) FROM {ks}.{table}"), ())
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row::<(i64,)>()
            .unwrap()
            .0;
    }
    counts
}

/// Every row of every table, as text, sorted: equal exactly when the contents are.
async fn contents(session: &Session, ks: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for table in ["songs", "users", "comments_by_song", "comments_by_id"] {
        let pager = session
            .query_iter(format!("SELECT * FROM {ks}.{table}"), ())
            .await
            .unwrap()
            .rows_stream::<Row>()
            .unwrap();
        let mut table_rows: Vec<String> = pager
            .map_ok(|row| format!("{table} {:?}", row.columns))
            .try_collect()
            .await
            .unwrap();
        table_rows.sort();
        rows.extend(table_rows);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_loads_the_same_rows_into_both_comment_tables() {
    let (first, second, other) = (
        keyspace("first").await,
        keyspace("second").await,
        keyspace("other").await,
    );
    load(&first, dataset(5), Existing::Refuse).await.unwrap();
    load(&second, dataset(5), Existing::Refuse).await.unwrap();
    load(&other, dataset(6), Existing::Refuse).await.unwrap();
    let client = session(&first).await;
    assert_eq!(
        counts(&client, &first.keyspace).await,
        [1_000, 300, 5_000, 5_000]
    );
    let first_rows = contents(&client, &first.keyspace).await;
    assert_eq!(first_rows, contents(&client, &second.keyspace).await);
    assert_ne!(first_rows, contents(&client, &other.keyspace).await);
    // The bookkeeping tables are gone once a load is complete.
    assert!(loader::remaining(&first).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_loaded_keyspace_unless_forced() {
    let options = keyspace("loaded").await;
    load(&options, dataset(1), Existing::Refuse).await.unwrap();
    let refused = load(&options, dataset(1), Existing::Refuse)
        .await
        .unwrap_err();
    assert!(matches!(refused, LoadError::NotEmpty(_)), "{refused}");
    assert!(refused.to_string().contains("--force"), "{refused}");
    let smaller = Dataset {
        songs: 500,
        users: 100,
        comments: 2_000,
        ..dataset(2)
    };
    load(&options, smaller, Existing::Replace).await.unwrap();
    let client = session(&options).await;
    assert_eq!(
        counts(&client, &options.keyspace).await,
        [500, 100, 2_000, 2_000]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_load_resumes_where_it_stopped() {
    let options = keyspace("interrupted").await;
    let big = Dataset {
        comments: 20_000,
        ..dataset(3)
    };
    let watcher = session(&options).await;
    {
        // Stop the load (as Ctrl-C does) once songs and users are recorded as done and
        // the comments are on their way.
        let load = load(&options, big, Existing::Refuse);
        let songs_and_users_done = async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let done = loader::remaining(&options).await.ok().flatten();
                let complete = |table: &str, rows: u64| {
                    done.iter()
                        .flatten()
                        .any(|(name, n)| name == table && *n == rows as i64)
                };
                if complete("songs", big.songs) && complete("users", big.users) {
                    break;
                }
            }
        };
        tokio::select! {
            outcome = load => panic!("the load finished before it could be interrupted: {outcome:?}"),
            () = songs_and_users_done => {}
        }
    }
    let remaining = loader::remaining(&options)
        .await
        .unwrap()
        .expect("an interrupted load");
    assert!(
        remaining.iter().all(|(table, _)| table != "comments")
            || remaining
                .iter()
                .any(|(table, n)| table == "comments" && (*n as u64) < big.comments),
        "{remaining:?}"
    );

    let refused = load(&options, big, Existing::Refuse).await.unwrap_err();
    assert!(
        matches!(refused, LoadError::Start(StartError::Interrupted)),
        "{refused}"
    );
    let different = load(&options, dataset(4), Existing::Resume)
        .await
        .unwrap_err();
    assert!(
        matches!(different, LoadError::Start(StartError::DifferentPlan(_))),
        "{different}"
    );

    load(&options, big, Existing::Resume).await.unwrap();
    assert_eq!(
        counts(&watcher, &options.keyspace).await,
        [1_000, 300, 20_000, 20_000]
    );
    assert!(loader::remaining(&options).await.unwrap().is_none());
    // A complete load is not resumed again.
    let nothing = load(&options, big, Existing::Resume).await.unwrap_err();
    assert!(
        matches!(nothing, LoadError::Start(StartError::NothingToResume)),
        "{nothing}"
    );
}
