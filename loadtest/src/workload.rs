//! Turns a scenario's mix into concrete requests: weighted choice of the call,
//! Zipf-distributed song ids, tokens minted once per user, and the run's own
//! comments remembered so that edits and deletes touch only those.

use std::collections::VecDeque;

use bytes::Bytes;
use http::Method;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;
use serde::Serialize;
use uuid::Uuid;

use crate::scenario::{RequestKind, Scenario};

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(
        "the mix writes, so it needs a JWT secret (--jwt-secret, JWT_SECRET, or jwt_secret in the scenario)"
    )]
    MissingSecret,
    #[error("minting a token")]
    Token(#[source] jsonwebtoken::errors::Error),
    #[error("the song popularity distribution")]
    Zipf(#[source] rand_distr::ZipfError),
}

/// Comments each request slot remembers for later edits and deletes.
const OWN_COMMENTS_KEPT: usize = 32;

#[derive(Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// Mints an HS256 token whose subject is `user_id`, valid for `lifetime_s`.
pub fn mint_token(secret: &str, user_id: u64, lifetime_s: u64) -> Result<String, WorkloadError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        sub: user_id.to_string(),
        iat: now,
        exp: now + lifetime_s,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(WorkloadError::Token)
}

/// The shared, read-only part: what to draw from.
#[derive(Debug)]
pub struct Workload {
    pub endpoint_names: Vec<String>,
    kinds: Vec<RequestKind>,
    /// Pre-parsed URIs of fixed-path entries (kind `get`): no parsing per request.
    fixed_uris: Vec<Option<http::Uri>>,
    choice: WeightedIndex<u32>,
    songs: Zipf<f64>,
    /// Bearer header values for user ids 1..=len.
    authorizations: Vec<http::HeaderValue>,
    max_track_ms: u32,
    /// Where a write falls back to when it has no own comment to edit.
    post_endpoint: Option<usize>,
}

/// One request about to be sent.
#[derive(Debug)]
pub struct PlannedRequest {
    pub endpoint: usize,
    pub kind: RequestKind,
    pub method: Method,
    pub path: String,
    /// Set instead of `path` for fixed-path entries.
    pub uri: Option<http::Uri>,
    pub body: Bytes,
    pub authorization: Option<http::HeaderValue>,
    /// For writes: the user acting, and the comment touched.
    pub user: usize,
    pub song_id: i64,
}

/// Per-slot mutable state: its random stream and its own comments.
#[derive(Debug)]
pub struct SlotState {
    rng: SmallRng,
    own_comments: VecDeque<(Uuid, usize)>,
    sequence: u64,
}

impl SlotState {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            own_comments: VecDeque::new(),
            sequence: 0,
        }
    }

    /// A comment this slot wrote was acknowledged.
    pub fn remember(&mut self, id: Uuid, user: usize) {
        if self.own_comments.len() == OWN_COMMENTS_KEPT {
            self.own_comments.pop_front();
        }
        self.own_comments.push_back((id, user));
    }
}

impl Workload {
    pub fn new(scenario: &Scenario, jwt_secret: Option<&str>) -> Result<Self, WorkloadError> {
        let entries: Vec<_> = scenario
            .mix
            .iter()
            .filter(|entry| entry.weight > 0)
            .collect();
        let choice = WeightedIndex::new(entries.iter().map(|entry| entry.weight))
            .expect("validated weights");
        let authorizations = if scenario.has_writes() {
            let secret = jwt_secret.ok_or(WorkloadError::MissingSecret)?;
            let users = scenario.data.token_users.clamp(1, scenario.data.users);
            (1..=users)
                .map(|user| {
                    let token = mint_token(secret, user, 24 * 3600)?;
                    Ok(http::HeaderValue::from_str(&format!("Bearer {token}"))
                        .expect("JWTs are header-safe"))
                })
                .collect::<Result<Vec<_>, WorkloadError>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            endpoint_names: entries.iter().map(|entry| entry.label()).collect(),
            kinds: entries.iter().map(|entry| entry.kind).collect(),
            fixed_uris: entries
                .iter()
                .map(|entry| {
                    entry
                        .path
                        .as_deref()
                        .and_then(|path| http::Uri::try_from(path).ok())
                })
                .collect(),
            choice,
            songs: Zipf::new(scenario.data.songs as f64, scenario.data.zipf_exponent)
                .map_err(WorkloadError::Zipf)?,
            authorizations,
            max_track_ms: scenario.data.max_track_ms.max(1),
            post_endpoint: entries
                .iter()
                .position(|entry| entry.kind == RequestKind::PostComment),
        })
    }

    pub fn endpoints(&self) -> usize {
        self.endpoint_names.len()
    }

    fn song(&self, rng: &mut SmallRng) -> i64 {
        self.songs.sample(rng) as i64
    }

    /// Draws the next request for a slot.
    pub fn plan(&self, state: &mut SlotState) -> PlannedRequest {
        let mut endpoint = self.choice.sample(&mut state.rng);
        let mut kind = self.kinds[endpoint];
        // Edits and deletes need a comment of our own; until there is one, write one.
        if matches!(kind, RequestKind::PatchComment | RequestKind::DeleteComment)
            && state.own_comments.is_empty()
        {
            match self.post_endpoint {
                Some(post) => {
                    endpoint = post;
                    kind = RequestKind::PostComment;
                }
                None => {
                    endpoint = self
                        .kinds
                        .iter()
                        .position(|kind| !kind.is_write())
                        .unwrap_or(endpoint);
                    kind = self.kinds[endpoint];
                }
            }
        }
        state.sequence += 1;
        let rng = &mut state.rng;
        let mut planned = PlannedRequest {
            endpoint,
            kind,
            method: Method::GET,
            path: String::new(),
            uri: None,
            body: Bytes::new(),
            authorization: None,
            user: 0,
            song_id: 0,
        };
        match kind {
            RequestKind::GetSong => planned.path = format!("/api/songs/{}", self.song(rng)),
            RequestKind::GetComments => {
                planned.path = format!("/api/songs/{}/comments", self.song(rng))
            }
            RequestKind::GetFeed => planned.path = format!("/api/songs/{}/feed", self.song(rng)),
            RequestKind::Get => {
                let uri = self.fixed_uris[endpoint].clone();
                planned.uri = Some(uri.unwrap_or_else(|| http::Uri::from_static("/")));
            }
            RequestKind::PostComment => {
                let song = self.song(rng);
                let user = rng.random_range(0..self.authorizations.len().max(1));
                let track_ms = rng.random_range(0..self.max_track_ms);
                planned.method = Method::POST;
                planned.path = format!("/api/songs/{song}/comments");
                planned.body = Bytes::from(format!(
                    r#"{{"body":"load test comment {}","track_ms":{track_ms}}}"#,
                    state.sequence
                ));
                planned.authorization = self.authorizations.get(user).cloned();
                planned.user = user;
                planned.song_id = song;
            }
            RequestKind::PatchComment => {
                let (id, user) = *state.own_comments.back().expect("checked above");
                planned.method = Method::PATCH;
                planned.path = format!("/api/comments/{id}");
                planned.body = Bytes::from(format!(
                    r#"{{"body":"edited by load test {}"}}"#,
                    state.sequence
                ));
                planned.authorization = self.authorizations.get(user).cloned();
                planned.user = user;
            }
            RequestKind::DeleteComment => {
                let (id, user) = state.own_comments.pop_front().expect("checked above");
                planned.method = Method::DELETE;
                planned.path = format!("/api/comments/{id}");
                planned.authorization = self.authorizations.get(user).cloned();
                planned.user = user;
            }
        }
        planned
    }
}

/// The comment id a DELETE or PATCH path names.
pub fn comment_id_in_path(path: &str) -> Option<Uuid> {
    path.rsplit('/')
        .next()
        .and_then(|id| Uuid::parse_str(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_songs_are_skewed_and_in_range() {
        let scenario = Scenario::read_heavy(1000, 50);
        let workload = Workload::new(&scenario, Some("secret")).unwrap();
        let mut state = SlotState::new(7);
        let mut hits = vec![0u32; 1001];
        for _ in 0..20_000 {
            let song = workload.song(&mut state.rng);
            assert!((1..=1000).contains(&song));
            hits[song as usize] += 1;
        }
        // With exponent 1 over 1000 songs, song 1 takes about 13 % of draws.
        assert!(
            hits[1] > 2000 && hits[1] > 10 * hits[100],
            "song 1: {}, song 100: {}",
            hits[1],
            hits[100]
        );
    }

    #[test]
    fn edits_and_deletes_touch_only_own_comments() {
        let scenario = Scenario::read_heavy(100, 10);
        let workload = Workload::new(&scenario, Some("secret")).unwrap();
        let mut state = SlotState::new(1);
        let mut written = Vec::new();
        for _ in 0..5000 {
            let planned = workload.plan(&mut state);
            match planned.kind {
                RequestKind::PostComment => {
                    assert!(planned.authorization.is_some());
                    let id = Uuid::now_v7();
                    written.push(id);
                    state.remember(id, planned.user);
                }
                RequestKind::PatchComment | RequestKind::DeleteComment => {
                    let id = comment_id_in_path(&planned.path).unwrap();
                    assert!(
                        written.contains(&id),
                        "{} touched a comment not ours",
                        planned.path
                    );
                }
                _ => assert_eq!(planned.method, Method::GET),
            }
        }
        assert!(!written.is_empty());
    }

    #[test]
    fn writes_need_a_secret() {
        let scenario = Scenario::read_heavy(100, 10);
        assert!(matches!(
            Workload::new(&scenario, None),
            Err(WorkloadError::MissingSecret)
        ));
    }

    #[test]
    fn minted_tokens_verify_with_the_secret() {
        let token = mint_token("s3cret", 42, 60).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "42");
    }
}
