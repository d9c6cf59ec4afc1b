//! Property tests for every edge-core parser that reads what the network sends:
//! `Cache-Control`, `Age`, HTTP dates, `Vary`, entity tags, cache keys and
//! queries, song paths, generations, stored records and whole request heads.
//! No input may panic, and what is written can be read back.

use bytes::Bytes;
use edge_core::behaviour::{Behaviour, parse_behaviours, parse_groups, pattern_matches};
use edge_core::cache_control::{CacheControl, DELTA_SECONDS_MAX, parse_delta_seconds};
use edge_core::conditional::{EntityTag, client_has_current, identifies};
use edge_core::key::normalise_query;
use edge_core::policy::{AgeValue, age_value, initial_age_ms, storability, vary_names};
use edge_core::{
    CacheKey, EdgeConfig, Headers, RequestHead, StoredResponse, classify, format_http_date,
    parse_generation, parse_http_date, song_of_path,
};
use proptest::prelude::*;

fn h(fields: &[(&str, &str)]) -> Headers {
    fields.iter().copied().collect()
}

/// Any header value a client or origin could send, including odd bytes.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[ -~]{0,40}",
        "[0-9a-z=,;\" -]{0,40}",
        "(max-age|s-maxage|no-cache|no-store|private|public|must-revalidate|stale-if-error|stale-while-revalidate|must-understand)(=[-0-9\"a-z.]{0,12})?( ?, ?)?",
    ]
}

fn any_headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(("[a-zA-Z-]{1,16}", any_value()), 0..8)
        .prop_map(|fields| fields.into_iter().collect())
}

/// An origin's response fields, most of them with a freshness lifetime first,
/// so that most such responses are storable and their records can be read back.
fn origin_headers() -> impl Strategy<Value = Headers> {
    (
        proptest::option::weighted(0.8, "(max-age|s-maxage)=[0-9]{1,5}"),
        proptest::collection::vec(("[a-zA-Z-]{1,16}", any_value()), 0..8),
    )
        .prop_map(|(lifetime, fields)| {
            lifetime
                .map(|value| ("cache-control".to_owned(), value))
                .into_iter()
                .chain(fields)
                .collect()
        })
}

/// A well-formed entity tag over so few characters that two often match.
fn entity_tag() -> impl Strategy<Value = String> {
    ("(W/)?", "[!a#]{0,2}").prop_map(|(weak, opaque)| format!("{weak}\"{opaque}\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cache_control_never_panics(value in any_value(), headers in any_headers()) {
        let _ = CacheControl::parse(&value);
        let _ = CacheControl::from_headers(&headers);
    }

    #[test]
    fn cache_control_round_trips(
        max_age in proptest::option::of(0u64..10_000_000_000),
        s_maxage in proptest::option::of(0u64..1_000_000),
        swr in proptest::option::of(0u64..1_000_000),
        sie in proptest::option::of(0u64..1_000_000),
        flags in proptest::collection::vec(any::<bool>(), 7),
        upper in any::<bool>(),
    ) {
        let mut directives = Vec::new();
        for (name, value) in [("max-age", max_age), ("s-maxage", s_maxage),
            ("stale-while-revalidate", swr), ("stale-if-error", sie)] {
            if let Some(v) = value {
                directives.push(format!("{name}={v}"));
            }
        }
        let names = ["no-store", "no-cache", "private", "public", "must-revalidate",
            "proxy-revalidate", "must-understand"];
        for (name, on) in names.iter().zip(&flags) {
            if *on {
                directives.push((*name).to_owned());
            }
        }
        let mut text = directives.join(", ");
        if upper {
            text = text.to_ascii_uppercase();
        }
        let cap = |v: Option<u64>| v.map(|v| v.min(DELTA_SECONDS_MAX));
        let expected = CacheControl {
            max_age: cap(max_age),
            s_maxage: cap(s_maxage),
            stale_while_revalidate: cap(swr),
            stale_if_error: cap(sie),
            no_store: flags[0],
            no_cache: flags[1],
            private: flags[2],
            public: flags[3],
            must_revalidate: flags[4],
            proxy_revalidate: flags[5],
            must_understand: flags[6],
            ..CacheControl::default()
        };
        prop_assert_eq!(CacheControl::parse(&text), expected);
    }

    #[test]
    fn delta_seconds_are_digits_only_and_capped(text in ".{0,24}") {
        match parse_delta_seconds(&text) {
            Some(n) => {
                prop_assert!(!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(n <= DELTA_SECONDS_MAX);
            }
            None => prop_assert!(text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit())),
        }
    }

    #[test]
    fn age_never_panics_and_never_makes_a_response_younger(
        values in proptest::collection::vec(any_value(), 0..4),
        request_ms in 0u64..4_000_000_000_000,
        delay_ms in 0u64..100_000,
    ) {
        let headers: Headers = values.iter().map(|v| ("age", v.clone())).collect();
        let age = age_value(&headers);
        let initial = initial_age_ms(&headers, request_ms, request_ms + delay_ms);
        prop_assert!(initial >= delay_ms, "an age is never below the response delay");
        if let AgeValue::Seconds(secs) = age {
            // Every member said the same number of seconds.
            for member in values.iter().flat_map(|v| v.split(',')) {
                prop_assert_eq!(parse_delta_seconds(member.trim()), Some(secs));
            }
        }
    }

    #[test]
    fn ages_round_trip(secs in 0u64..(1 << 31), copies in 1usize..4) {
        let headers: Headers = (0..copies).map(|_| ("age", secs.to_string())).collect();
        prop_assert_eq!(age_value(&headers), AgeValue::Seconds(secs));
        let fractional = h(&[("age", &format!("{secs}.5"))]);
        prop_assert_eq!(age_value(&fractional), AgeValue::Invalid);
        let negative = h(&[("age", &format!("-{secs}"))]);
        prop_assert_eq!(age_value(&negative), AgeValue::Invalid);
    }

    #[test]
    fn http_dates_round_trip(secs in 0u64..253_402_300_799) {
        let text = format_http_date(secs);
        prop_assert_eq!(parse_http_date(&text), Some(secs));
    }

    #[test]
    fn http_dates_never_panic(text in ".{0,40}") {
        let _ = parse_http_date(&text);
    }

    #[test]
    fn vary_names_are_trimmed_lower_case_and_select_their_own_request(
        names in proptest::collection::vec("[A-Za-z-]{1,12}", 1..4),
        values in proptest::collection::vec("[ -~]{0,12}", 4),
        garbage in any_value(),
    ) {
        let _ = vary_names(&h(&[("vary", garbage.as_str())]));
        let vary = names.join(" , ");
        let listed = vary_names(&h(&[("vary", vary.as_str())]));
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        prop_assert_eq!(&listed, &lower);
        let request: Headers = names.iter().zip(&values).map(|(n, v)| (n.as_str(), v.clone())).collect();
        let response = h(&[("vary", vary.as_str()), ("cache-control", "max-age=60")]);
        let record = StoredResponse::from_origin(
            &request, 200, &response, Bytes::new(), 0, 0, &EdgeConfig::default().ttl(),
        ).unwrap();
        prop_assert!(record.vary_matches(&request));
    }

    #[test]
    fn entity_tags_compare_as_rfc_9110_says(a in entity_tag(), b in entity_tag()) {
        let (Some(x), Some(y)) = (EntityTag::parse(&a), EntityTag::parse(&b)) else {
            return Err(TestCaseError::fail(format!("{a} or {b} is not read as an entity tag")));
        };
        // RFC 9110 section 8.8.3.2: weak comparison ignores `W/`, strong
        // comparison needs both tags strong.
        let same = a.trim_start_matches("W/") == b.trim_start_matches("W/");
        let both_strong = !a.starts_with("W/") && !b.starts_with("W/");
        prop_assert_eq!(x.weak_eq(&y), same);
        prop_assert_eq!(x.strong_eq(&y), same && both_strong);
    }

    #[test]
    fn entity_tags_never_panic(
        a in prop_oneof![any_value(), entity_tag()],
        b in prop_oneof![any_value(), entity_tag()],
    ) {
        let _ = EntityTag::parse(&a);
        let _ = client_has_current(&h(&[("if-none-match", a.as_str())]), &h(&[("etag", b.as_str())]));
        let _ = client_has_current(&h(&[("if-modified-since", a.as_str())]), &h(&[("last-modified", b.as_str())]));
        let _ = identifies(&h(&[("etag", a.as_str())]), &h(&[("etag", b.as_str())]));
    }

    #[test]
    fn the_order_of_names_never_splits_a_key_and_one_names_values_always_do(
        params in proptest::collection::btree_map("[a-z0-9%]{1,4}", "[a-z0-9%=]{0,4}", 0..6),
        repeated in "[a-z0-9%]{1,4}",
        (first, second) in ("[a-z0-9%]{1,4}", "[a-z0-9%]{1,4}"),
        path in "/api/[a-z0-9/]{0,16}",
        host in "[a-z0-9.:-]{1,16}",
        generation in any::<u64>(),
    ) {
        let pairs: Vec<String> = params.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let forward = pairs.join("&");
        let mut reversed = pairs.clone();
        reversed.reverse();
        let backward = format!("&{}&", reversed.join("&"));
        prop_assert_eq!(
            CacheKey::new(&host, &format!("{path}?{forward}"), generation),
            CacheKey::new(&host, &format!("{path}?{backward}"), generation)
        );
        prop_assert_eq!(normalise_query(&normalise_query(&forward)), normalise_query(&forward));
        // Two values of one name, around the other parameters: an origin may
        // read either, so their order is part of the key.
        let one = format!("{path}?{repeated}={first}&{forward}&{repeated}={second}");
        let other = format!("{path}?{repeated}={second}&{forward}&{repeated}={first}");
        prop_assert_eq!(
            CacheKey::new(&host, &one, generation) == CacheKey::new(&host, &other, generation),
            first == second
        );
    }

    #[test]
    fn keys_never_panic_and_keep_paths_apart(a in ".{0,30}", b in ".{0,30}", host in ".{0,12}") {
        let (ka, kb) = (CacheKey::new(&host, &a, 1), CacheKey::new(&host, &b, 1));
        let path = |t: &str| t.split_once('?').map_or(t.to_owned(), |(p, _)| p.to_owned());
        if path(&a) != path(&b) {
            prop_assert_ne!(ka, kb);
        }
        let _ = song_of_path(&a);
    }

    #[test]
    fn song_paths_round_trip(song in any::<u64>(), rest in "(/[a-z]{1,8}){0,2}(\\?[a-z=0-9]{0,8})?") {
        prop_assert_eq!(song_of_path(&format!("/api/songs/{song}{rest}")), Some(song));
    }

    #[test]
    fn generations_round_trip_and_garbage_never_panics(n in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 0..24)) {
        prop_assert_eq!(parse_generation(n.to_string().as_bytes()), Some(n));
        let _ = parse_generation(&junk);
    }

    #[test]
    fn records_round_trip_and_any_bytes_decode_without_panic(
        status in prop_oneof![3 => Just(200u16), 1 => 100u16..1000],
        response in origin_headers(),
        request in any_headers(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        junk in proptest::collection::vec(any::<u8>(), 0..128),
        times in (0u64..4_000_000_000_000, 0u64..100_000),
    ) {
        let _ = StoredResponse::decode(&junk);
        let _ = storability("GET", &request, status, &response);
        let (sent, delay) = times;
        if let Ok(record) = StoredResponse::from_origin(
            &request, status, &response, Bytes::from(body), sent, sent + delay, &EdgeConfig::default().ttl(),
        ) {
            prop_assert_eq!(StoredResponse::decode(&record.encode()), Ok(record.clone()));
            let mut truncated = record.encode();
            truncated.pop();
            prop_assert!(StoredResponse::decode(&truncated).is_err());
        }
    }

    #[test]
    fn any_request_head_is_classified_without_panic(
        method in "[A-Za-z]{0,8}",
        target in ".{0,40}",
        host in proptest::option::of(".{0,20}"),
        headers in any_headers(),
    ) {
        let head = RequestHead { method, path_and_query: target, host, headers };
        let config = EdgeConfig { origins: vec!["http://o".into()], ..EdgeConfig::default() };
        let _ = classify(&head, &config);
        let _ = head.key_host();
        let _ = edge_core::forward_headers(&head, &Behaviour::api("/api/*"));
    }

    #[test]
    fn well_formed_behaviours_parse_as_written(
        names in proptest::collection::btree_set("[a-z][a-z0-9_-]{0,5}", 0..4),
        entries in proptest::collection::vec(
            (
                "/[a-z0-9*?/]{0,10}",
                any::<proptest::sample::Index>(),
                proptest::option::of([0u64..100_000, 0u64..100_000, 0u64..100_000]),
            ),
            1..5,
        ),
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let groups_text = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}=http://127.0.0.1:{}", 8000 + i))
            .collect::<Vec<_>>()
            .join("; ");
        let groups = parse_groups(&groups_text);
        prop_assert!(groups.is_ok(), "{groups_text}: {groups:?}");
        let groups = groups.unwrap();
        prop_assert_eq!(groups.len(), names.len());
        // Each entry names a group by its index (0 is `default`) and may bound its TTL.
        let mut text = String::new();
        let mut expected = Vec::new();
        for (pattern, index, ttl) in &entries {
            let group = index.index(names.len() + 1);
            let name = if group == 0 { "default" } else { names[group - 1].as_str() };
            text.push_str(&format!("{pattern} origin={name}"));
            let ttl = ttl.map(|mut ttl| {
                ttl.sort_unstable();
                ttl
            });
            if let Some([min, default, max]) = ttl {
                text.push_str(&format!(" ttl={min},{default},{max}"));
            }
            text.push_str("; ");
            expected.push((pattern, group, ttl));
        }
        let parsed = parse_behaviours(&text, &groups);
        prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.len(), expected.len());
        for (behaviour, (pattern, group, ttl)) in parsed.iter().zip(expected) {
            prop_assert_eq!(&behaviour.pattern, pattern);
            prop_assert_eq!(behaviour.group, group);
            prop_assert_eq!(
                behaviour.ttl.map(|t| [t.min_secs, t.default_secs, t.max_secs]),
                ttl
            );
        }
    }

    #[test]
    fn behaviour_configuration_never_panics(groups in ".{0,60}", behaviours in ".{0,120}", path in ".{0,40}") {
        if let Ok(groups) = parse_groups(&groups)
            && let Ok(parsed) = parse_behaviours(&behaviours, &groups)
        {
            for behaviour in &parsed {
                prop_assert!(behaviour.group <= groups.len());
                let _ = behaviour.matches(&path);
                let _ = behaviour.origin_target(&path);
            }
        }
        let _ = pattern_matches(behaviours.as_bytes(), path.as_bytes());
    }

    #[test]
    fn a_star_pattern_matches_every_path_under_its_prefix(prefix in "/[a-z]{1,8}", rest in "[a-z/.]{0,20}") {
        let pattern = format!("{prefix}/*");
        let path = format!("{prefix}/{rest}");
        prop_assert!(pattern_matches(pattern.as_bytes(), path.as_bytes()));
        prop_assert!(!pattern_matches(pattern.as_bytes(), prefix.as_bytes()));
    }
}
