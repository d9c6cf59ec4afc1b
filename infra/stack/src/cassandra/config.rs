//! The files and flags one Cassandra node starts with: a minimal `cassandra.yaml` (one
//! token, loopback, the given ports, everything under one directory), a logback
//! configuration that writes `system.log` there, and the JVM command line of Cassandra's
//! own `conf/jvm-server.options` and `conf/jvm17-server.options`.

use std::path::Path;

/// Where a node listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// CQL clients (the native transport).
    pub native: u16,
    /// Internode messaging; a single node still binds it.
    pub storage: u16,
}

/// How a node trades durability and memory for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Maximum heap in MiB (the initial heap is a quarter, so an idle test node stays small).
    pub heap_mib: u32,
    /// Skip fsync of the system keyspaces, which makes schema changes several times faster.
    /// Data written by clients still goes through the commit log: for tests only.
    pub unsafe_fast_schema: bool,
}

/// `cassandra.yaml` for a single node under `dir`.
///
/// The commit log is synced before a write is acknowledged (`batch`): with Cassandra's
/// default (`periodic`, every 10 s) replay stops at the last sync marker, so a node killed
/// within 10 s of a write loses it, and a single node has no replica to repair from.
/// Small thread pools and caches suit a 2-core machine shared with other servers; Paxos
/// v2 (Cassandra 4.1+) halves the round trips of the conditional writes edits and deletes
/// use; snapshots on truncate or drop would only fill the disk of a test node.
pub fn cassandra_yaml(dir: &Path, ports: Ports) -> String {
    let dir = dir.display();
    format!(
        "# Written by infra/stack (src/cassandra/config.rs): one node on loopback.
cluster_name: song-comments
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: \"127.0.0.1:{storage}\"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage}
native_transport_port: {native}
start_native_transport: true
data_file_directories:
  - {dir}/data
commitlog_directory: {dir}/commitlog
saved_caches_directory: {dir}/saved_caches
hints_directory: {dir}/hints
cdc_raw_directory: {dir}/cdc_raw
commitlog_sync: batch
commitlog_segment_size: 8MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 2
concurrent_materialized_view_writes: 2
concurrent_compactors: 1
file_cache_size: 64MiB
key_cache_size: 16MiB
paxos_variant: v2
auto_snapshot: false
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
",
        storage = ports.storage,
        native = ports.native,
    )
}

/// Logback: INFO and above to `system.log` in the node's directory, nothing to the console
/// (the console goes to `cassandra.out`, where only the JVM's own warnings land).
pub const LOGBACK_XML: &str = r#"<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"#;

/// From `conf/jvm-server.options` (Cassandra 5.0): the flags that apply to every JVM.
/// `-XX:+AlwaysPreTouch` is left out on purpose: it commits the whole heap at start,
/// which a test node on a shared machine cannot afford.
const JVM_SERVER_OPTIONS: &[&str] = &[
    "-ea",
    "-da:net.openhft...",
    "-XX:+UseThreadPriorities",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-Xss256k",
    "-XX:+UseTLAB",
    "-XX:+ResizeTLAB",
    "-XX:+PerfDisableSharedMem",
    "-Djava.net.preferIPv4Stack=true",
];

/// `conf/jvm17-server.options` (Cassandra 5.0): G1, and the module exports and opens
/// Cassandra needs on Java 17.
const JVM17_SERVER_OPTIONS: &[&str] = &[
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports",
    "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports",
    "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports",
    "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports",
    "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports",
    "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.io=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens",
    "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
];

/// The JVM's arguments before the main class: heap, Cassandra's options, the jamm agent,
/// and the system properties that point the node at its files and shorten its start.
pub fn jvm_args(dir: &Path, jamm_agent: &Path, tuning: Tuning) -> Vec<String> {
    let mut args: Vec<String> = vec![
        format!("-Xms{}m", (tuning.heap_mib / 4).max(64)),
        format!("-Xmx{}m", tuning.heap_mib),
        // What cassandra-env.sh adds: a JVM that ran out of memory may corrupt data.
        "-XX:+ExitOnOutOfMemoryError".into(),
    ];
    args.extend(JVM_SERVER_OPTIONS.iter().map(|s| (*s).to_owned()));
    args.extend(JVM17_SERVER_OPTIONS.iter().map(|s| (*s).to_owned()));
    let dir = dir.display();
    args.extend([
        format!("-javaagent:{}", jamm_agent.display()),
        format!("-Dcassandra.config=file://{dir}/cassandra.yaml"),
        format!("-Dcassandra.storagedir={dir}"),
        format!("-Dcassandra.logdir={dir}"),
        format!("-Dlogback.configurationFile=file://{dir}/logback.xml"),
        "-Dcassandra-foreground=yes".into(),
        // A single node has no one to gossip with: do not wait for the ring to settle.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0".into(),
        "-Dcassandra.ring_delay_ms=1000".into(),
        // Without jmx.local.port or jmx.remote.port the node opens no JMX port at all.
    ]);
    if tuning.unsafe_fast_schema {
        args.push("-Dcassandra.unsafesystem=true".into());
    }
    args
}

/// The class `cassandra -f` runs.
pub const MAIN_CLASS: &str = "org.apache.cassandra.service.CassandraDaemon";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_names_the_ports_and_keeps_everything_in_the_directory() {
        let yaml = cassandra_yaml(
            Path::new("/tmp/node"),
            Ports {
                native: 19042,
                storage: 17000,
            },
        );
        assert!(yaml.contains("native_transport_port: 19042\n"));
        assert!(yaml.contains("storage_port: 17000\n"));
        assert!(yaml.contains("seeds: \"127.0.0.1:17000\""));
        for key in [
            "commitlog_directory",
            "saved_caches_directory",
            "hints_directory",
            "cdc_raw_directory",
        ] {
            assert!(yaml.contains(&format!("{key}: /tmp/node/")), "{key}");
        }
        assert!(!yaml.contains("0.0.0.0"));
    }

    #[test]
    fn jvm_args_follow_cassandra_own_options() {
        let tuning = Tuning {
            heap_mib: 1024,
            unsafe_fast_schema: false,
        };
        let args = jvm_args(Path::new("/n"), Path::new("/lib/jamm-0.4.0.jar"), tuning);
        assert!(args.contains(&"-Xmx1024m".to_owned()));
        assert!(args.contains(&"-Xms256m".to_owned()));
        assert!(args.contains(&"-javaagent:/lib/jamm-0.4.0.jar".to_owned()));
        assert!(args.contains(&"-Dcassandra.config=file:///n/cassandra.yaml".to_owned()));
        // Each --add-exports/--add-opens is followed by its module/package.
        for pair in args.windows(2) {
            if pair[0].starts_with("--add-") {
                assert!(pair[1].ends_with("=ALL-UNNAMED"), "{pair:?}");
            }
        }
        assert!(!args.iter().any(|a| a.contains("unsafesystem")));
        assert!(!args.iter().any(|a| a == "-XX:+AlwaysPreTouch"));
        let fast = jvm_args(
            Path::new("/n"),
            Path::new("/j.jar"),
            Tuning {
                unsafe_fast_schema: true,
                ..tuning
            },
        );
        assert!(fast.contains(&"-Dcassandra.unsafesystem=true".to_owned()));
    }
}
