//! Bearer tokens: HS256 JWTs whose `sub` is the user id (a string of the
//! integer) and whose `exp` is required. The author of a write is the token's
//! subject, never a field of the body.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::ApiError;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
}

/// Signs and checks tokens with one shared secret. Cloning is cheap (one
/// `Arc`): the [`Author`] extractor takes a copy per request.
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }))
    }

    /// A token for `user` valid for `ttl_secs` from now (negative: already expired).
    pub fn issue(&self, user: UserId, ttl_secs: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            exp: (now + ttl_secs).max(0) as u64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .expect("HS256 signing of a small claim set cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<UserId, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map_err(|error| {
                ApiError::Unauthorized(match error.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature is not valid",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (sub, exp)",
                    _ => "token is malformed",
                })
            })?;
        UserId::parse(&data.claims.sub)
            .map_err(|_| ApiError::Unauthorized("token subject is not a user id"))
    }
}

/// The user a request acts for, from its `Authorization: Bearer` header.
/// Works with any router state that can hand out the [`JwtKeys`].
#[derive(Debug, Clone, Copy)]
pub struct Author(pub UserId);

impl<S> FromRequestParts<S> for Author
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("authorization header is not text"))?;
        let token = bearer_token(header).ok_or(ApiError::Unauthorized(
            "authorization is not a bearer token",
        ))?;
        JwtKeys::from_ref(state).verify(token).map(Author)
    }
}

/// The token of `Bearer <token>`. The scheme name is case-insensitive
/// (RFC 9110 section 11.1), so `BEARER` and `bEaReR` name it too; one or more
/// spaces may follow it.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_when_signed_fresh_and_well_formed() {
        let keys = JwtKeys::new(b"secret");
        let user = UserId::new(42).unwrap();
        assert_eq!(keys.verify(&keys.issue(user, 60)).unwrap(), user);
        let expired = keys.issue(user, -10);
        assert!(matches!(
            keys.verify(&expired),
            Err(ApiError::Unauthorized("token expired"))
        ));
        let forged = JwtKeys::new(b"other").issue(user, 60);
        assert!(matches!(
            keys.verify(&forged),
            Err(ApiError::Unauthorized("token signature is not valid"))
        ));
        assert!(matches!(
            keys.verify("not.a.jwt"),
            Err(ApiError::Unauthorized(_))
        ));
    }

    async fn author_of(keys: &JwtKeys, authorization: &str) -> Result<UserId, ApiError> {
        let request = axum::http::Request::builder()
            .header(AUTHORIZATION, authorization)
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        Author::from_request_parts(&mut parts, keys)
            .await
            .map(|Author(user)| user)
    }

    #[tokio::test]
    async fn the_bearer_scheme_is_case_insensitive() {
        let keys = JwtKeys::new(b"secret");
        let user = UserId::new(7).unwrap();
        let token = keys.issue(user, 60);
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let authorization = format!("{scheme} {token}");
            assert_eq!(
                author_of(&keys, &authorization).await.unwrap(),
                user,
                "{scheme}"
            );
        }
        assert_eq!(
            author_of(&keys, &format!("Bearer   {token}"))
                .await
                .unwrap(),
            user
        );
        for refused in [
            "Basic YWxpY2U6cHc=",
            "Bearer",
            "Bearer ",
            "Bearerx y",
            &token,
        ] {
            assert!(
                matches!(
                    author_of(&keys, refused).await,
                    Err(ApiError::Unauthorized(
                        "authorization is not a bearer token"
                    ))
                ),
                "{refused:?}"
            );
        }
    }
}
