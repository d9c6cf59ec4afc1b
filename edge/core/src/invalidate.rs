//! What a successful write makes stale (RFC 9111 section 4.4): the target URI,
//! `Location` and `Content-Location` on the same host, the collection the target
//! belongs to when the response names it (`Link: <...>; rel="collection"`, RFC
//! 6573: how the origin says which song an edited comment belongs to), and every
//! cached page of each song those paths belong to (through the song's
//! generation, see [`crate::key`]).

use crate::headers::Headers;
use crate::key::song_of_path;
use crate::request::is_safe;

/// What a write made stale: request targets, and songs (all their pages). The
/// flow moves their generations (see [`crate::key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Request targets (path and query), every variant of each.
    pub targets: Vec<String>,
    /// Songs whose every cached page is now stale.
    pub songs: Vec<u64>,
}

impl Invalidation {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.songs.is_empty()
    }
}

/// The invalidation caused by a response to `method path_and_query` on `host`
/// (the normalised key host). Only unsafe methods with a non-error status
/// (2xx or 3xx) invalidate. `Location`/`Content-Location`/`Link` targets on another
/// host are ignored, so a response cannot be used to flush someone else's entries.
pub fn invalidation(
    method: &str,
    path_and_query: &str,
    host: &str,
    status: u16,
    response_headers: &Headers,
) -> Invalidation {
    let mut result = Invalidation::default();
    if is_safe(method) || !(200..400).contains(&status) {
        return result;
    }
    let mut targets = vec![path_and_query.to_owned()];
    for name in ["location", "content-location"] {
        if let Some(value) = response_headers.get(name)
            && let Some(target) = same_host_target(value.trim(), host, path_and_query)
        {
            targets.push(target);
        }
    }
    for value in response_headers.get_all("link") {
        for reference in collection_links(value) {
            if let Some(target) = same_host_target(reference, host, path_and_query) {
                targets.push(target);
            }
        }
    }
    for target in targets {
        if let Some(song) = song_of_path(&target)
            && !result.songs.contains(&song)
        {
            result.songs.push(song);
        }
        if !result.targets.contains(&target) {
            result.targets.push(target);
        }
    }
    result
}

/// The targets of the `rel="collection"` links in one `Link` field value
/// (RFC 8288: `<uri>; param; param, <uri>; ...`; relation types are
/// space-separated and compared case-insensitively).
fn collection_links(value: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|i| open + i) else {
            break;
        };
        let reference = rest[open + 1..close].trim();
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_collection = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches(|c| c == '"' || c == ',' || c == ' ')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("collection"))
        });
        if is_collection {
            found.push(reference);
        }
        rest = &after[params_end..];
    }
    found
}

fn same_host_target(reference: &str, host: &str, base_path: &str) -> Option<String> {
    let reference = reference.split('#').next().unwrap_or_default();
    if let Some(rest) = reference
        .strip_prefix("http://")
        .or_else(|| reference.strip_prefix("https://"))
    {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let authority = authority.to_ascii_lowercase();
        let authority = authority.strip_suffix(":80").unwrap_or(&authority);
        return (authority == host).then(|| {
            if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            }
        });
    }
    if reference.starts_with("//") {
        return None;
    }
    if reference.starts_with('/') {
        return Some(reference.to_owned());
    }
    if reference.is_empty() {
        return None;
    }
    let base = base_path.split('?').next().unwrap_or_default();
    let directory = &base[..=base.rfind('/').unwrap_or(0)];
    Some(format!("{directory}{reference}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        method: &str,
        target: &str,
        status: u16,
        response: &[(&str, &str)],
        targets: &[&str],
        songs: &[u64],
    ) {
        let headers: Headers = response.iter().copied().collect();
        let got = invalidation(method, target, "edge.test", status, &headers);
        let expected = Invalidation {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            songs: songs.to_vec(),
        };
        assert_eq!(got, expected, "{method} {target} {status} {response:?}");
    }

    #[test]
    fn writes_invalidate_targets_locations_and_songs() {
        check("GET", "/api/songs/1", 200, &[], &[], &[]);
        check("HEAD", "/api/songs/1", 200, &[], &[], &[]);
        check(
            "POST",
            "/api/songs/1/comments",
            201,
            &[],
            &["/api/songs/1/comments"],
            &[1],
        );
        check(
            "POST",
            "/api/songs/1/comments",
            201,
            &[("location", "/api/comments/77")],
            &["/api/songs/1/comments", "/api/comments/77"],
            &[1],
        );
        check(
            "DELETE",
            "/api/comments/77",
            204,
            &[("content-location", "/api/songs/3/comments")],
            &["/api/comments/77", "/api/songs/3/comments"],
            &[3],
        );
        check(
            "PUT",
            "/api/comments/77",
            200,
            &[("location", "http://edge.test/api/songs/4")],
            &["/api/comments/77", "/api/songs/4"],
            &[4],
        );
        check(
            "PUT",
            "/api/comments/77",
            200,
            &[("location", "http://EDGE.test:80/api/songs/4")],
            &["/api/comments/77", "/api/songs/4"],
            &[4],
        );
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[("location", "http://other.example/api/songs/4")],
            &["/api/comments/77"],
            &[],
        );
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[("location", "//other.example/api/songs/4")],
            &["/api/comments/77"],
            &[],
        );
        check(
            "POST",
            "/api/songs/2/comments",
            201,
            &[("location", "5")],
            &["/api/songs/2/comments", "/api/songs/2/5"],
            &[2],
        );
        check(
            "POST",
            "/api/songs/2/comments",
            201,
            &[("location", "/api/songs/2/comments")],
            &["/api/songs/2/comments"],
            &[2],
        );
        check(
            "POST",
            "/api/songs/2/comments",
            201,
            &[("location", "/api/songs/9/comments#x")],
            &["/api/songs/2/comments", "/api/songs/9/comments"],
            &[2, 9],
        );
        check(
            "POST",
            "/api/songs/1/comments",
            303,
            &[],
            &["/api/songs/1/comments"],
            &[1],
        );
        check(
            "POST",
            "/api/songs/1/comments",
            400,
            &[("location", "/api/songs/2")],
            &[],
            &[],
        );
        check("POST", "/api/songs/1/comments", 500, &[], &[], &[]);
        check("DELETE", "/api/users/1", 204, &[], &["/api/users/1"], &[]);
        check(
            "POST",
            "/api/songs/1/comments?x=1",
            201,
            &[],
            &["/api/songs/1/comments?x=1"],
            &[1],
        );
    }

    #[test]
    fn collection_links_name_the_song_of_an_edited_comment() {
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[("link", "</api/songs/3/comments>; rel=\"collection\"")],
            &["/api/comments/77", "/api/songs/3/comments"],
            &[3],
        );
        check(
            "DELETE",
            "/api/comments/77",
            204,
            &[(
                "link",
                "</api/songs/8>; rel=\"up\", </api/songs/3/comments>; rel=\"item Collection\"",
            )],
            &["/api/comments/77", "/api/songs/3/comments"],
            &[3],
        );
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[("link", "</api/songs/3/comments>; rel=\"next\"")],
            &["/api/comments/77"],
            &[],
        );
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[(
                "link",
                "<http://other.example/api/songs/3/comments>; rel=collection",
            )],
            &["/api/comments/77"],
            &[],
        );
        check(
            "PATCH",
            "/api/comments/77",
            200,
            &[("link", "</api/songs/3/comments; rel=collection")],
            &["/api/comments/77"],
            &[],
        );
        check(
            "GET",
            "/api/comments/77",
            200,
            &[("link", "</api/songs/3/comments>; rel=collection")],
            &[],
            &[],
        );
        check(
            "PATCH",
            "/api/comments/77",
            500,
            &[("link", "</api/songs/3/comments>; rel=collection")],
            &[],
            &[],
        );
    }

    #[test]
    fn empty_invalidation_is_empty() {
        assert!(Invalidation::default().is_empty());
        assert!(!invalidation("POST", "/api/x", "h", 200, &Headers::new()).is_empty());
    }
}
