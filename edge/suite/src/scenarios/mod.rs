//! The scenarios, written once for every platform. Each is an `async fn`
//! taking the [`crate::Launcher`]; [`SCENARIOS`] lists them. Where a platform
//! cannot hold a behaviour the scenario asks [`crate::Platform`] and checks what
//! the platform does instead.
//!
//! - [`caching`]: storing, serving, variants, poisoning, the stale modes,
//!   collapsing.
//! - [`origins`]: failover, writes and invalidation, refusals, behaviours that
//!   front other origins.
//! - [`rfc9111`]: the RFC 9111 / RFC 9110 rules the edge once broke.
//! - [`adapters`]: what each adapter translates itself and both must translate
//!   alike (host, method, an empty write's framing, the origin body's limit).

mod adapters;
mod caching;
mod origins;
mod rfc9111;

use adapters::*;
use caching::*;
use origins::*;
use rfc9111::*;

use crate::L;

/// A `Cache-Control` that any shared cache may store for a minute.
const CACHEABLE: &str = "public, max-age=60";

/// One scenario: it gets the launcher and panics when the edge misbehaves.
pub type Scenario = fn(L) -> crate::BoxFuture<()>;

/// Every scenario, by name.
pub static SCENARIOS: &[(&str, Scenario)] = &[
    ("health_and_non_api_paths_never_reach_the_origin", |l| {
        Box::pin(health_and_non_api_paths_never_reach_the_origin(l))
    }),
    ("a_miss_is_stored_and_then_served_as_a_hit_with_age", |l| {
        Box::pin(a_miss_is_stored_and_then_served_as_a_hit_with_age(l))
    }),
    ("query_order_does_not_split_the_cache", |l| {
        Box::pin(query_order_does_not_split_the_cache(l))
    }),
    ("responses_that_must_not_be_shared_are_never_stored", |l| {
        Box::pin(responses_that_must_not_be_shared_are_never_stored(l))
    }),
    ("vary_keeps_variants_apart", |l| {
        Box::pin(vary_keeps_variants_apart(l))
    }),
    ("unkeyed_headers_cannot_poison_the_cache", |l| {
        Box::pin(unkeyed_headers_cannot_poison_the_cache(l))
    }),
    ("stale_responses_are_revalidated_and_updated_on_304", |l| {
        Box::pin(stale_responses_are_revalidated_and_updated_on_304(l))
    }),
    (
        "stale_while_revalidate_serves_at_once_and_refreshes_in_the_background",
        |l| Box::pin(stale_while_revalidate_serves_at_once_and_refreshes_in_the_background(l)),
    ),
    (
        "stale_if_error_stands_in_for_a_failing_or_dead_origin",
        |l| Box::pin(stale_if_error_stands_in_for_a_failing_or_dead_origin(l)),
    ),
    (
        "concurrent_misses_are_collapsed_where_the_platform_can",
        |l| Box::pin(concurrent_misses_are_collapsed_where_the_platform_can(l)),
    ),
    ("a_large_answer_passes_whole_and_is_stored", |l| {
        Box::pin(a_large_answer_passes_whole_and_is_stored(l))
    }),
    (
        "reads_fail_over_and_writes_only_when_they_were_never_sent",
        |l| Box::pin(reads_fail_over_and_writes_only_when_they_were_never_sent(l)),
    ),
    ("a_silent_origin_is_given_up_at_the_time_limit", |l| {
        Box::pin(a_silent_origin_is_given_up_at_the_time_limit(l))
    }),
    (
        "a_successful_write_invalidates_every_cached_page_of_its_song",
        |l| Box::pin(a_successful_write_invalidates_every_cached_page_of_its_song(l)),
    ),
    ("a_write_invalidates_its_target_for_every_reader", |l| {
        Box::pin(a_write_invalidates_its_target_for_every_reader(l))
    }),
    ("bad_requests_are_refused_before_the_origin", |l| {
        Box::pin(bad_requests_are_refused_before_the_origin(l))
    }),
    ("malformed_or_truncated_bodies_are_400_not_413", |l| {
        Box::pin(malformed_or_truncated_bodies_are_400_not_413(l))
    }),
    ("an_invalid_age_makes_a_response_stale_not_fresher", |l| {
        Box::pin(an_invalid_age_makes_a_response_stale_not_fresher(l))
    }),
    ("clients_holding_the_stored_representation_get_304", |l| {
        Box::pin(clients_holding_the_stored_representation_get_304(l))
    }),
    ("a_304_updates_only_the_representation_it_names", |l| {
        Box::pin(a_304_updates_only_the_representation_it_names(l))
    }),
    ("must_understand_keeps_unknown_status_codes_out", |l| {
        Box::pin(must_understand_keeps_unknown_status_codes_out(l))
    }),
    (
        "fields_named_in_connection_are_neither_stored_nor_forwarded",
        |l| {
            Box::pin(fields_named_in_connection_are_neither_stored_nor_forwarded(
                l,
            ))
        },
    ),
    ("a_chunked_origin_answer_is_served_and_stored", |l| {
        Box::pin(a_chunked_origin_answer_is_served_and_stored(l))
    }),
    (
        "a_content_length_beside_chunking_does_not_cut_the_body",
        |l| Box::pin(a_content_length_beside_chunking_does_not_cut_the_body(l)),
    ),
    ("revalidation_carries_the_headers_vary_names", |l| {
        Box::pin(revalidation_carries_the_headers_vary_names(l))
    }),
    ("with_the_cache_off_every_read_reaches_the_origin", |l| {
        Box::pin(with_the_cache_off_every_read_reaches_the_origin(l))
    }),
    ("a_behaviour_fronts_another_origin", |l| {
        Box::pin(a_behaviour_fronts_another_origin(l))
    }),
    (
        "an_origin_body_over_the_limit_is_a_502_and_never_read_whole",
        |l| {
            Box::pin(an_origin_body_over_the_limit_is_a_502_and_never_read_whole(
                l,
            ))
        },
    ),
    ("unknown_methods_are_refused_never_taken_for_get", |l| {
        Box::pin(unknown_methods_are_refused_never_taken_for_get(l))
    }),
    ("a_body_less_write_is_sent_with_content_length_zero", |l| {
        Box::pin(a_body_less_write_is_sent_with_content_length_zero(l))
    }),
    (
        "the_client_host_keys_the_cache_and_names_its_locations",
        |l| Box::pin(the_client_host_keys_the_cache_and_names_its_locations(l)),
    ),
];
