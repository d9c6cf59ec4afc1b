//! The engine's instance pool is one per process: every host in it draws on it,
//! and one that could ask for more than is left is refused at start.

use edge_host::{EdgeHost, HostOptions, POOLED_INSTANCES};

fn options(max_instances: usize) -> HostOptions {
    let mut options = HostOptions::new(
        "127.0.0.1:0".parse().expect("address"),
        vec![("origins".to_owned(), "http://127.0.0.1:9".to_owned())],
    );
    options.max_instances = max_instances;
    options.serving_threads = 1;
    options
}

#[tokio::test]
async fn hosts_in_one_process_share_the_instance_pool() {
    let most = POOLED_INSTANCES - 56;
    let first = EdgeHost::bind(options(most))
        .await
        .expect("within the pool");
    let refused = EdgeHost::bind(options(100))
        .await
        .err()
        .expect("100 more than the pool has left");
    assert!(
        refused
            .to_string()
            .contains(&format!("not 100 ({most} already held by other hosts")),
        "{refused}"
    );
    let within = EdgeHost::bind(options(56)).await.expect("what is left");
    drop(first);
    let again = EdgeHost::bind(options(100))
        .await
        .expect("a dropped host's share is back");
    drop((within, again));
}
