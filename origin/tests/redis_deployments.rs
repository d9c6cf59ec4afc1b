//! Every Redis the origin is deployed with evicts only keys with an expiry
//! (`volatile-*`): the generation keys (`o:gen:{song}`) have none, and evicting
//! one would bring back pages a write made stale (see `src/cache.rs`). Read
//! from the deployment files, so a change to any of them fails here.

use std::path::PathBuf;

fn repository_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The value that follows `maxmemory-policy` in `text` (a command-line
/// argument or a Terraform `value = "..."`), once per mention.
fn eviction_policies(text: &str) -> Vec<String> {
    text.split("maxmemory-policy")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .find(|word| {
                    word.contains("lru")
                        || word.contains("lfu")
                        || *word == "noeviction"
                        || word.contains("random")
                        || word.contains("ttl")
                })
                .unwrap_or_else(|| panic!("no policy after maxmemory-policy in {rest:.80?}"))
                .to_string()
        })
        .collect()
}

#[test]
fn the_origins_redis_never_evicts_a_key_without_an_expiry() {
    for path in [
        "infra/docker/compose.yaml",
        "terraform/modules/cache/main.tf",
        "infra/stack/src/redis.rs",
    ] {
        let policies = eviction_policies(&repository_file(path));
        assert!(!policies.is_empty(), "{path} sets no eviction policy");
        for policy in policies {
            assert!(
                policy.starts_with("volatile-") || policy == "noeviction",
                "{path} runs the origin's Redis with {policy}: a generation key could be evicted"
            );
        }
    }
}

#[test]
fn the_policy_reader_finds_each_spelling() {
    assert_eq!(
        eviction_policies(r#"["--maxmemory-policy", "volatile-lru"]"#),
        ["volatile-lru"]
    );
    assert_eq!(
        eviction_policies("name  = \"maxmemory-policy\"\n    value = \"allkeys-lru\""),
        ["allkeys-lru"]
    );
}
