//! The stored-response record: what the edge puts in the key-value store for one
//! cache key, and its compact binary encoding (no serde, so any adapter can read it).

use bytes::Bytes;
use thiserror::Error;

use crate::behaviour::Ttl;
use crate::cache_control::CacheControl;
use crate::headers::Headers;
use crate::policy::{self, NotStorable, secs_to_ms};

/// One cached response with everything needed to decide later whether it may be
/// served. Instants and ages are Unix milliseconds, so that a one-second lifetime
/// lasts a second and not "until the clock's next tick"; lifetimes are whole
/// seconds, as HTTP states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// End-to-end headers as received, without hop-by-hop fields and `Age`.
    pub headers: Headers,
    /// Shared, so that serving a record never copies its body.
    pub body: Bytes,
    /// When the response arrived (the RFC's `response_time`), Unix milliseconds.
    pub stored_at_ms: u64,
    /// Its corrected age on arrival in milliseconds (see [`policy::initial_age_ms`]).
    pub initial_age_ms: u64,
    /// Seconds.
    pub freshness_lifetime: u64,
    /// Seconds past freshness during which it may be served while refreshing.
    pub stale_while_revalidate: u64,
    /// Seconds past freshness during which it may stand in for a failed origin.
    pub stale_if_error: u64,
    /// The request header values this response was selected by (`Vary`), lower-case
    /// names; `None` means the header was absent.
    pub vary: Vec<(String, Option<String>)>,
}

impl StoredResponse {
    /// Builds the record for an origin response to a GET, or says why it must not be stored.
    pub fn from_origin(
        request_headers: &Headers,
        status: u16,
        response_headers: &Headers,
        body: Bytes,
        request_time_ms: u64,
        response_time_ms: u64,
        ttl: &Ttl,
    ) -> Result<Self, NotStorable> {
        let cc = policy::storability("GET", request_headers, status, response_headers)?;
        let mut headers = response_headers.clone();
        remove_unstored(&mut headers);
        // Usually nothing was taken out, and the directives storability read
        // describe what is stored; a field a `Connection` named might have been
        // `Cache-Control` itself.
        let cc = if headers.len() == response_headers.len() {
            cc
        } else {
            CacheControl::from_headers(&headers)
        };
        let initial_age_ms = policy::initial_age_ms(&headers, request_time_ms, response_time_ms);
        headers.remove("age");
        let mut stored = Self {
            status,
            headers,
            body,
            stored_at_ms: response_time_ms,
            initial_age_ms,
            freshness_lifetime: 0,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            vary: Vec::new(),
        };
        stored.vary = selected_by(&stored.headers, request_headers);
        stored.refresh_lifetimes(&cc, response_time_ms, ttl);
        let has_validator =
            stored.headers.contains("etag") || stored.headers.contains("last-modified");
        if stored.freshness_lifetime == 0 && !has_validator && stored.stale_if_error == 0 {
            return Err(NotStorable::NothingToKeep);
        }
        Ok(stored)
    }

    /// The lifetimes from `cc`, the stored headers' `Cache-Control`.
    fn refresh_lifetimes(&mut self, cc: &CacheControl, response_time_ms: u64, ttl: &Ttl) {
        self.freshness_lifetime =
            policy::freshness_lifetime(&self.headers, cc, response_time_ms / 1000, ttl);
        let (swr, sie) = if cc.forbids_stale() {
            (0, 0)
        } else {
            (
                cc.stale_while_revalidate.unwrap_or(0),
                cc.stale_if_error.unwrap_or(0),
            )
        };
        self.stale_while_revalidate = swr.min(ttl.max_secs);
        self.stale_if_error = sie.min(ttl.max_secs);
    }

    /// The record after a `304 Not Modified` that identifies it (see
    /// [`crate::conditional::identifies`]) in answer to `request_headers`:
    /// stored headers are updated with the 304's (RFC 9111 sections 3.2 and
    /// 4.3.4), the `Vary` selection is taken again, and the clock restarts.
    ///
    /// The 304's `Set-Cookie` is left out: it is about the one client whose
    /// request was sent, and a record with it would hand it to every other.
    /// What the 304 says may still make the record unfit to keep (`private`,
    /// `no-store`, `Vary: *`): see [`StoredResponse::storable`].
    pub fn revalidated(
        &self,
        request_headers: &Headers,
        not_modified_headers: &Headers,
        request_time_ms: u64,
        response_time_ms: u64,
        ttl: &Ttl,
    ) -> Self {
        let mut fresh = self.clone();
        let mut update = not_modified_headers.clone();
        remove_unstored(&mut update);
        update.remove("set-cookie");
        let initial_age_ms = policy::initial_age_ms(&update, request_time_ms, response_time_ms);
        // RFC 9110 section 6.6.1: a message without Date is dated when it
        // arrived. Keeping the stored Date instead would count the 304's
        // Expires from the first response, and make it fresh for too long.
        if !update.contains("date") {
            update.append("date", policy::format_http_date(response_time_ms / 1000));
        }
        // Every other field replaces the stored one (RFC 9111 section 3.2):
        // Content-Length describes the 304, not the stored body, and Age is
        // taken into the initial age above. This cache stores bodies as
        // received, so no field it depends on (such as Content-Encoding for a
        // cache that decodes) needs keeping back.
        update.remove("content-length");
        update.remove("age");
        let mut names: Vec<&str> = update.iter().map(|(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            fresh.headers.remove(name);
            for value in update.get_all(name) {
                fresh.headers.append(name, value);
            }
        }
        fresh.vary = selected_by(&fresh.headers, request_headers);
        fresh.stored_at_ms = response_time_ms;
        fresh.initial_age_ms = initial_age_ms;
        let cc = CacheControl::from_headers(&fresh.headers);
        fresh.refresh_lifetimes(&cc, response_time_ms, ttl);
        fresh
    }

    /// Whether a shared cache may keep this record for `request_headers`
    /// (RFC 9111 section 3). [`StoredResponse::from_origin`] checks a new
    /// response; a record updated by a 304 is checked again, since the 304's
    /// fields replace those the first check read.
    pub fn storable(&self, request_headers: &Headers) -> Result<(), NotStorable> {
        policy::storability("GET", request_headers, self.status, &self.headers).map(|_| ())
    }

    /// Current age in milliseconds at `now_ms` (RFC 9111 section 4.2.3).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.initial_age_ms
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// Current age in whole seconds, as the `Age` header states it.
    pub fn age(&self, now_ms: u64) -> u64 {
        self.age_ms(now_ms) / 1000
    }

    /// Whether the age is still within the freshness lifetime.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.age_ms(now_ms) < secs_to_ms(self.freshness_lifetime)
    }

    /// Whether this response was selected by the same `Vary` header values as `request_headers` carries.
    pub fn vary_matches(&self, request_headers: &Headers) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| vary_value(request_headers, name) == *value)
    }

    /// Conditional headers that revalidate this response (`If-None-Match` from
    /// `ETag`, `If-Modified-Since` from `Last-Modified`); empty when it has no validator.
    pub fn conditional_headers(&self) -> Headers {
        let mut conditional = Headers::new();
        if let Some(etag) = self.headers.get("etag") {
            conditional.append("if-none-match", etag);
        }
        if let Some(modified) = self.headers.get("last-modified") {
            conditional.append("if-modified-since", modified);
        }
        conditional
    }

    /// How long the record stays of use, in seconds: while fresh, then while it
    /// may be served stale (either stale window), and, when it has a validator,
    /// up to the TTL bound so that a later request can revalidate it with a 304
    /// instead of a full fetch. Stores that expire entries keep it that long.
    pub fn retention_secs(&self, ttl: &Ttl) -> u64 {
        let stale_window = self.stale_while_revalidate.max(self.stale_if_error);
        let usable = self.freshness_lifetime.saturating_add(stale_window);
        let has_validator = !self.conditional_headers().is_empty();
        let keep = if has_validator {
            usable.max(ttl.max_secs)
        } else {
            usable
        };
        keep.saturating_sub(self.initial_age_ms / 1000).max(1)
    }

    /// Serialises the record for a key-value store.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body.len() + self.headers.wire_size());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_le_bytes());
        for n in [
            self.stored_at_ms,
            self.initial_age_ms,
            self.freshness_lifetime,
            self.stale_while_revalidate,
            self.stale_if_error,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        put_len(&mut out, self.vary.len());
        for (name, value) in &self.vary {
            put_bytes(&mut out, name.as_bytes());
            match value {
                Some(v) => {
                    out.push(1);
                    put_bytes(&mut out, v.as_bytes());
                }
                None => out.push(0),
            }
        }
        put_len(&mut out, self.headers.len());
        for (name, value) in self.headers.iter() {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_bytes(&mut out, &self.body);
        out
    }

    /// Reads a record written by [`StoredResponse::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let status = u16::from_le_bytes(reader.array()?);
        let mut numbers = [0u64; 5];
        for n in &mut numbers {
            *n = u64::from_le_bytes(reader.array()?);
        }
        let [
            stored_at_ms,
            initial_age_ms,
            freshness_lifetime,
            stale_while_revalidate,
            stale_if_error,
        ] = numbers;
        let vary_count = reader.len()?;
        let mut vary = Vec::with_capacity(vary_count.min(64));
        for _ in 0..vary_count {
            let name = reader.string()?;
            let value = match reader.take(1)?[0] {
                0 => None,
                _ => Some(reader.string()?),
            };
            vary.push((name, value));
        }
        let header_count = reader.len()?;
        let mut headers = Headers::new();
        for _ in 0..header_count {
            let name = reader.string()?;
            let value = reader.string()?;
            headers.append(&name, value);
        }
        let body_len = reader.len()?;
        let body = Bytes::copy_from_slice(reader.take(body_len)?);
        if reader.at != bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(Self {
            status,
            headers,
            body,
            stored_at_ms,
            initial_age_ms,
            freshness_lifetime,
            stale_while_revalidate,
            stale_if_error,
            vary,
        })
    }
}

/// Removes the fields a cache must not store (RFC 9111 section 3.1): the
/// hop-by-hop ones, those `Connection` names, and the proxy's own
/// authentication fields.
fn remove_unstored(headers: &mut Headers) {
    headers.remove_hop_by_hop();
    for name in [
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
    ] {
        headers.remove(name);
    }
}

/// The request's values of every field `response_headers`' `Vary` names.
fn selected_by(
    response_headers: &Headers,
    request_headers: &Headers,
) -> Vec<(String, Option<String>)> {
    policy::vary_names(response_headers)
        .into_iter()
        .map(|name| {
            let value = vary_value(request_headers, &name);
            (name, value)
        })
        .collect()
}

/// The value a request carries for one `Vary`'d header, normalised so that
/// insignificant whitespace differences select the same variant.
fn vary_value(request_headers: &Headers, name: &str) -> Option<String> {
    request_headers.get_joined(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The record's format and version: `EDGE2` keeps instants in milliseconds
/// (`EDGE1` kept seconds and is no longer read; such records count as misses).
const MAGIC: &[u8] = b"EDGE2";

/// A stored value that is not a record this version wrote; the adapter treats it as a miss.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("stored value does not start with the record marker")]
    BadMagic,
    #[error("stored value ends in the middle of a record")]
    Truncated,
    #[error("stored value has bytes after the record")]
    TrailingBytes,
    #[error("stored header or vary text is not UTF-8")]
    NotUtf8,
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.len()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }
}

#[cfg(test)]
mod tests;
