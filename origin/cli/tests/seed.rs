//! `origin seed` against a real PostgreSQL: determinism, counts, the Zipf skew,
//! the rebuilt indexes, refusal of a non-empty database, and resuming.

use std::time::Duration;

use indicatif::ProgressBar;
use origin_cli::datagen::Dataset;
use origin_cli::datagen::postgres::{self as loader, LoadError};
use origin_cli::datagen::{Existing, StartError};
use stack::postgres::{PostgresOptions, PostgresServer};
use tokio_postgres::{Client, NoTls};

fn dataset(seed: u64) -> Dataset {
    Dataset {
        seed,
        songs: 1_000,
        users: 300,
        comments: 10_000,
        zipf_exponent: 0.5,
    }
}

async fn client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

async fn load(url: &str, dataset: Dataset, existing: Existing) -> Result<(), LoadError> {
    loader::load(url, dataset, existing, &ProgressBar::hidden())
        .await
        .map(|_| ())
}

async fn counts(client: &Client) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM songs), (SELECT count(*) FROM users), (SELECT count(*) FROM comments)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// A digest of every row of every table, in id order.
async fn fingerprint(client: &Client) -> Vec<String> {
    let mut digests = Vec::new();
    for table in ["songs", "users", "comments"] {
        let query = format!("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM {table} t");
        digests.push(client.query_one(&query, &[]).await.unwrap().get(0));
    }
    digests
}

async fn server() -> PostgresServer {
    PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start PostgreSQL")
}

#[tokio::test]
async fn same_seed_loads_the_same_rows_with_indexes_rebuilt() {
    let postgres = server().await;
    let first = postgres.create_database("first").await.unwrap();
    let second = postgres.create_database("second").await.unwrap();
    let other = postgres.create_database("other").await.unwrap();
    load(&first, dataset(5), Existing::Refuse).await.unwrap();
    load(&second, dataset(5), Existing::Refuse).await.unwrap();
    load(&other, dataset(6), Existing::Refuse).await.unwrap();
    let (first, second, other) = (
        client(&first).await,
        client(&second).await,
        client(&other).await,
    );

    assert_eq!(counts(&first).await, (1_000, 300, 10_000));
    let ids = first
        .query_one("SELECT min(id), max(id) FROM songs", &[])
        .await
        .unwrap();
    assert_eq!((ids.get::<_, i64>(0), ids.get::<_, i64>(1)), (1, 1_000));
    assert_eq!(fingerprint(&first).await, fingerprint(&second).await);
    let (a, c) = (fingerprint(&first).await, fingerprint(&other).await);
    assert!(
        a.iter().zip(&c).all(|(a, c)| a != c),
        "another seed gives other rows"
    );

    // Keys, foreign keys and the covering index are back; the bookkeeping is gone.
    let constraints: Vec<String> = first
        .query(
            "SELECT conname::text FROM pg_constraint WHERE contype IN ('p', 'f') \
             AND conrelid IN ('songs'::regclass, 'users'::regclass, 'comments'::regclass) ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        constraints,
        [
            "comments_pkey",
            "comments_song_id_fkey",
            "comments_user_id_fkey",
            "songs_pkey",
            "users_pkey"
        ]
    );
    let index: Option<String> = first
        .query_one("SELECT to_regclass('comments_by_song_position')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(index.as_deref(), Some("comments_by_song_position"));
    let leftovers: i64 = first
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'seed\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0);

    // Every comment is within its song, after its release, and has a v7 id.
    let misfits: i64 = first
        .query_one(
            "SELECT count(*) FROM comments c JOIN songs s ON s.id = c.song_id \
             WHERE c.track_ms > s.duration_ms OR c.created_at < s.created_at \
             OR substr(c.id::text, 15, 1) <> '7'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(misfits, 0);
}

#[tokio::test]
async fn song_popularity_is_zipf_skewed() {
    let postgres = server().await;
    let url = postgres.create_random_database().await.unwrap();
    let skewed = Dataset {
        songs: 2_000,
        comments: 5_000,
        ..dataset(9)
    };
    load(&url, skewed, Existing::Refuse).await.unwrap();
    let client = client(&url).await;
    let row = client
        .query_one(
            "SELECT max(n), count(*) FILTER (WHERE n = 0), percentile_disc(0.5) WITHIN GROUP (ORDER BY n) \
             FROM (SELECT s.id, count(c.id) AS n FROM songs s LEFT JOIN comments c ON c.song_id = s.id \
                   GROUP BY s.id) per_song",
            &[],
        )
        .await
        .unwrap();
    let (max, silent, median): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // 2.5 comments per song on average: the head has over ten times that, the tail none.
    assert!(max > 25, "busiest song has {max} comments");
    assert!(silent > 100, "{silent} songs without comments");
    assert!(median <= 2, "median {median}");
}

#[tokio::test]
async fn refuses_a_loaded_database_unless_forced() {
    let postgres = server().await;
    let url = postgres.create_random_database().await.unwrap();
    load(&url, dataset(1), Existing::Refuse).await.unwrap();
    let client = client(&url).await;
    let before = fingerprint(&client).await;

    let refused = load(&url, dataset(2), Existing::Refuse).await.unwrap_err();
    assert!(
        matches!(
            refused,
            LoadError::NotEmpty {
                songs: 1_000,
                users: 300,
                comments: 10_000
            }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("--force"), "{refused}");
    assert!(matches!(
        load(&url, dataset(2), Existing::Resume).await,
        Err(LoadError::Start(StartError::NothingToResume))
    ));
    assert_eq!(
        fingerprint(&client).await,
        before,
        "a refused load changes nothing"
    );

    let smaller = Dataset {
        songs: 500,
        users: 100,
        comments: 2_000,
        ..dataset(2)
    };
    load(&url, smaller, Existing::Replace).await.unwrap();
    assert_eq!(counts(&client).await, (500, 100, 2_000));
    assert_ne!(fingerprint(&client).await, before);
}

#[tokio::test]
async fn an_interrupted_load_resumes_where_it_stopped() {
    let postgres = server().await;
    let url = postgres.create_random_database().await.unwrap();
    let big = Dataset {
        comments: 400_000,
        ..dataset(3)
    };
    let watcher = client(&url).await;
    {
        // Stop the load (as Ctrl-C does: its connections close) once songs and
        // users are committed and comments are on their way.
        let load = load(&url, big, Existing::Refuse);
        let songs_and_users_done = async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let done = watcher
                    .query_one(
                        "SELECT count(*) FROM seed_loaded_tables WHERE table_name <> 'comments'",
                        &[],
                    )
                    .await
                    .map(|row| row.get::<_, i64>(0))
                    .unwrap_or(0);
                if done == 2 {
                    break;
                }
            }
        };
        tokio::select! {
            outcome = load => panic!("the load finished before it could be interrupted: {outcome:?}"),
            () = songs_and_users_done => {}
        }
    }
    // The server rolls the open COPY back once it sees the connection gone.
    let mut comments = -1;
    for _ in 0..100 {
        comments = counts(&watcher).await.2;
        let busy: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY comments%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(comments, 0);
    let remaining = loader::remaining(&url)
        .await
        .unwrap()
        .expect("an interrupted load");
    assert_eq!(remaining.loaded_tables, ["songs", "users"]);
    assert_eq!(
        remaining.pending_statements, 6,
        "3 keys, 1 index, 2 foreign keys"
    );

    let refused = load(&url, big, Existing::Refuse).await.unwrap_err();
    assert!(
        matches!(refused, LoadError::Start(StartError::Interrupted)),
        "{refused}"
    );
    let different = load(&url, dataset(4), Existing::Resume).await.unwrap_err();
    assert!(
        matches!(different, LoadError::Start(StartError::DifferentPlan(_))),
        "{different}"
    );

    load(&url, big, Existing::Resume).await.unwrap();
    assert_eq!(counts(&watcher).await, (1_000, 300, 400_000));
    assert!(loader::remaining(&url).await.unwrap().is_none());
}
