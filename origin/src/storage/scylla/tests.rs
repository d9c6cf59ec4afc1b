use chrono::DateTime;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::*;

#[test]
fn schema_statements_name_the_keyspace_and_replication() {
    let statements = schema_statements(
        "test_ks",
        "{'class': 'SimpleStrategy', 'replication_factor': 3}",
        Product::Cassandra,
    );
    assert_eq!(statements.len(), 5, "{statements:#?}");
    assert_eq!(
        statements[0],
        "CREATE KEYSPACE IF NOT EXISTS test_ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}"
    );
    for statement in &statements[1..] {
        assert!(
            statement.starts_with("CREATE TABLE IF NOT EXISTS test_ks."),
            "{statement}"
        );
        assert!(!statement.contains(DEFAULT_KEYSPACE), "{statement}");
        assert!(!statement.contains("--"), "{statement}");
    }
    assert!(
        statements
            .iter()
            .any(|s| s.contains("PRIMARY KEY ((song_id), track_ms, id)")
                && s.contains("CLUSTERING ORDER BY (track_ms ASC, id ASC)"))
    );
    let default = schema_statements(DEFAULT_KEYSPACE, DEFAULT_REPLICATION, Product::Cassandra);
    assert!(default[0].ends_with(DEFAULT_REPLICATION));
    assert!(
        !default.iter().any(|s| s.contains("tablets")),
        "never sent to Cassandra"
    );
    let scylla = schema_statements(DEFAULT_KEYSPACE, DEFAULT_REPLICATION, Product::ScyllaDb);
    assert!(
        scylla[0].ends_with(&format!(
            "{DEFAULT_REPLICATION} AND tablets = {{'enabled': false}}"
        )),
        "{}",
        scylla[0]
    );
    assert_eq!(scylla[1..], default[1..]);
}

#[test]
fn keyspace_names_are_checked() {
    assert!(check_keyspace("song_comments_01").is_ok());
    for bad in ["", "a-b", "x; DROP", &"k".repeat(49)] {
        assert!(check_keyspace(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn times_round_down_to_milliseconds() {
    let time = DateTime::from_timestamp_micros(1_700_000_000_123_999).unwrap();
    assert_eq!(to_millis(time).timestamp_micros(), 1_700_000_000_123_000);
    assert_eq!(from_cql(to_cql(time)), to_millis(time));
}

#[test]
fn rows_missing_their_author_are_skipped() {
    let remnant = PageRow {
        id: Uuid::now_v7(),
        track_ms: 5,
        user_id: None,
        body: Some("edited".into()),
        created_at: None,
        updated_at: Some(CqlTimestamp(1)),
        author_name: None,
        author_avatar_url: None,
    };
    assert!(remnant.into_feed_comment(SongId::new(1).unwrap()).is_none());
}
