//! Bearer tokens: HS256 JWTs whose `sub` is the user id (a string of the
//! integer) and whose `exp` is required. The author of a write is the token's
//! subject, never a field of the body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::error::ApiError;
use crate::startup::AppState;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
}

/// Signs and checks tokens with one shared secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `user` valid for `ttl_secs` from now (negative: already expired).
    pub fn issue(&self, user: UserId, ttl_secs: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            exp: (now + ttl_secs).max(0) as u64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of a small claim set cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<UserId, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                ApiError::Unauthorized(match error.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature is not valid",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (sub, exp)",
                    _ => "token is malformed",
                })
            })?;
        data.claims
            .sub
            .parse::<UserId>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(ApiError::Unauthorized("token subject is not a user id"))
    }
}

/// The user a request acts for, from its `Authorization: Bearer` header.
#[derive(Debug, Clone, Copy)]
pub struct Author(pub UserId);

impl FromRequestParts<Arc<AppState>> for Author {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized(
                "authorization is not a bearer token",
            ))?;
        state.jwt.verify(token.trim()).map(Author)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_when_signed_fresh_and_well_formed() {
        let keys = JwtKeys::new(b"secret");
        assert_eq!(keys.verify(&keys.issue(42, 60)).unwrap(), 42);
        let expired = keys.issue(42, -10);
        assert!(matches!(
            keys.verify(&expired),
            Err(ApiError::Unauthorized("token expired"))
        ));
        let forged = JwtKeys::new(b"other").issue(42, 60);
        assert!(matches!(
            keys.verify(&forged),
            Err(ApiError::Unauthorized("token signature is not valid"))
        ));
        assert!(matches!(
            keys.verify("not.a.jwt"),
            Err(ApiError::Unauthorized(_))
        ));
    }
}
