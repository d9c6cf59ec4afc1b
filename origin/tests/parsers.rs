//! Property tests for the origin's parsers of network input: ids from paths,
//! comment ids, cursors, comment bodies, page limits, track positions and
//! bearer tokens. None panics on any input; each accepts exactly what it
//! documents; where a value goes out and comes back (ids, cursors, tokens) the
//! round trip is exact, and what a parser accepts is the one canonical spelling.

use origin::auth::JwtKeys;
use origin::domain::{
    CommentBody, Cursor, InvalidInput, MAX_COMMENT_CHARS, MAX_PAGE_LIMIT, SongId, UserId,
    check_track_position, page_limit, parse_comment_id,
};
use proptest::prelude::*;
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Text that looks like what a path segment could hold, digits often.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9+ -]{0,25}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("0{n}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn song_ids_parse_only_their_canonical_spelling(text in id_text()) {
        match SongId::parse(&text) {
            Ok(id) => {
                prop_assert!(id.get() > 0);
                prop_assert_eq!(id.to_string(), text);
            }
            Err(error) => {
                let is_not_an_id = matches!(error, InvalidInput::NotAnId { name: "song_id", .. });
                prop_assert!(is_not_an_id);
                // The message repeats a bounded prefix of what was sent.
                prop_assert!(error.to_string().chars().count() < 150);
            }
        }
    }

    #[test]
    fn positive_ids_round_trip(n in 1..=i64::MAX) {
        prop_assert_eq!(SongId::parse(&n.to_string()).unwrap().get(), n);
        prop_assert_eq!(UserId::parse(&n.to_string()).unwrap().get(), n);
        let json = serde_json::to_string(&SongId::new(n).unwrap()).unwrap();
        prop_assert_eq!(serde_json::from_str::<SongId>(&json).unwrap().get(), n);
    }

    #[test]
    fn ids_below_one_never_exist(n in i64::MIN..=0) {
        prop_assert!(SongId::new(n).is_none());
        prop_assert!(UserId::parse(&n.to_string()).is_err());
        prop_assert!(serde_json::from_str::<UserId>(&n.to_string()).is_err());
    }

    #[test]
    fn comment_ids_round_trip_in_either_case(id in uuid()) {
        prop_assert_eq!(parse_comment_id(&id.to_string()), Ok(id));
        prop_assert_eq!(parse_comment_id(&id.to_string().to_uppercase()), Ok(id));
        prop_assert!(parse_comment_id(&id.simple().to_string()).is_err());
        prop_assert!(parse_comment_id(&id.braced().to_string()).is_err());
    }

    #[test]
    fn comment_ids_accept_only_hyphenated_uuids(text in any::<String>()) {
        if let Ok(id) = parse_comment_id(&text) {
            prop_assert_eq!(text.len(), 36);
            prop_assert_eq!(id.to_string(), text.to_lowercase());
        }
    }

    #[test]
    fn cursors_round_trip(track_ms in 0..=i32::MAX, id in uuid()) {
        let cursor = Cursor { track_ms, id };
        let text = cursor.encode();
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(text.len(), 27);
        prop_assert_eq!(Cursor::decode(&text), Ok(cursor));
    }

    #[test]
    fn cursors_decode_only_canonical_text(text in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{25,29}"]) {
        match Cursor::decode(&text) {
            Ok(cursor) => {
                prop_assert!(cursor.track_ms >= 0);
                prop_assert_eq!(cursor.encode(), text);
            }
            Err(error) => prop_assert_eq!(error, InvalidInput::BadCursor),
        }
    }

    #[test]
    fn comment_bodies_are_accepted_exactly_as_documented(body in prop_oneof![
        any::<String>(),
        "[ \\t\\n\\u{3000}\\u{feff}\\u{1f}]{0,8}",
        ".{990,1010}",
        any::<String>().prop_map(|s| format!("{s}\u{0}")),
    ]) {
        let chars = body.chars().count();
        let blank = body.chars().all(|c| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}' | '\u{feff}'));
        let accepted = CommentBody::parse(body.clone());
        let expected = !blank && chars <= MAX_COMMENT_CHARS && !body.contains('\0');
        prop_assert_eq!(accepted.is_ok(), expected, "{:?}", accepted);
        if let Ok(kept) = accepted {
            prop_assert_eq!(kept.as_str(), body.as_str(), "kept as sent");
        }
    }

    #[test]
    fn page_limits_are_1_to_200(limit in any::<Option<u32>>()) {
        match (limit, page_limit(limit)) {
            (None, Ok(n)) => prop_assert_eq!(n, 50),
            (Some(asked), Ok(n)) => prop_assert!(asked == n && (1..=MAX_PAGE_LIMIT).contains(&n)),
            (Some(asked), Err(_)) => prop_assert!(!(1..=MAX_PAGE_LIMIT).contains(&asked)),
            (None, Err(error)) => prop_assert!(false, "no limit refused: {error}"),
        }
    }

    #[test]
    fn track_positions_lie_within_the_song(track_ms in any::<i64>(), duration in 1..=i32::MAX) {
        match check_track_position(track_ms, duration) {
            Ok(at) => prop_assert!(i64::from(at) == track_ms && (0..=i64::from(duration)).contains(&track_ms)),
            Err(_) => prop_assert!(!(0..=i64::from(duration)).contains(&track_ms)),
        }
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused(user in 1..=i64::MAX, garbage in any::<String>()) {
        let keys = JwtKeys::new(b"property-secret");
        let user = UserId::new(user).unwrap();
        prop_assert_eq!(keys.verify(&keys.issue(user, 60)).unwrap(), user);
        prop_assert!(keys.verify(&garbage).is_err());
        prop_assert!(JwtKeys::new(b"another").verify(&keys.issue(user, 60)).is_err());
    }
}
