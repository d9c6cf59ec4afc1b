//! What a Cassandra node runs on: a JDK 17 and the jars of `cassandra-all` with its
//! runtime dependencies, fetched from Maven Central once per machine into a cache outside
//! the repository, and used offline from then on.
//!
//! Cassandra 5.0 runs on Java 11 or 17 with different JVM options per version; we support
//! 17 only (the one our machines have), found explicitly so that a newer default JDK (21,
//! 25) beside it is never picked up by accident.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The Cassandra release the stack and the tests run.
pub const CASSANDRA_VERSION: &str = "5.0.8";
/// The JDK feature release Cassandra runs on here.
pub const JAVA_FEATURE_RELEASE: u32 = 17;
/// A pinned plugin, so that a fetch does the same thing on every machine.
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1";
/// Written last into a cache directory: its presence means the jars are complete.
const COMPLETE_MARKER: &str = ".complete";

/// Environment variables that override the search.
pub const JAVA_HOME_ENV: &str = "CASSANDRA_JAVA_HOME";
pub const LIB_DIR_ENV: &str = "CASSANDRA_LIB_DIR";
pub const CACHE_DIR_ENV: &str = "SONG_COMMENTS_CACHE";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "no JDK {JAVA_FEATURE_RELEASE} found (looked at {searched}); Cassandra {CASSANDRA_VERSION} \
         needs one: install it with `apt-get install openjdk-17-jdk-headless` (or run \
         scripts/setup), or set {JAVA_HOME_ENV} to a JDK 17"
    )]
    NoJdk { searched: String },
    #[error(
        "{JAVA_HOME_ENV}={path} is not a JDK {JAVA_FEATURE_RELEASE} ({found}); point it at a JDK 17"
    )]
    WrongJdk { path: PathBuf, found: String },
    #[error(
        "Maven (`mvn`) is needed once per machine to fetch Cassandra {CASSANDRA_VERSION}'s jars \
         from Maven Central and was not found: install it with `apt-get install maven` (or run \
         scripts/setup), or set {LIB_DIR_ENV} to a directory holding those jars"
    )]
    NoMaven,
    #[error("{LIB_DIR_ENV}={0} holds no cassandra-all jar")]
    BadLibDir(PathBuf),
    #[error("cannot prepare the cache directory {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "Maven could not fetch cassandra-all {CASSANDRA_VERSION} ({status}); is Maven Central \
         reachable? Output:\n{output}"
    )]
    Fetch {
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// A JDK 17 and a complete directory of Cassandra jars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `bin/java` of the JDK 17.
    pub java: PathBuf,
    /// Every jar `CassandraDaemon` needs, `cassandra-all` included.
    pub lib_dir: PathBuf,
}

impl Runtime {
    /// Finds the JDK and the jars, fetching the jars with Maven the first time on this
    /// machine. Callers in one process share one fetch; processes racing each other each
    /// fetch into a directory of their own and the first to finish wins.
    pub fn locate() -> Result<Self, RuntimeError> {
        static FETCH: Mutex<()> = Mutex::new(());
        let java = find_java()?;
        let lib_dir = match std::env::var_os(LIB_DIR_ENV) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if jamm_agent(&dir).is_none() || !has_cassandra_jar(&dir) {
                    return Err(RuntimeError::BadLibDir(dir));
                }
                dir
            }
            None => {
                let _one_fetch_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
                cached_jars(&cache_root()?)?
            }
        };
        Ok(Self { java, lib_dir })
    }

    /// The classpath: every jar of the directory (the JVM expands `dir/*`).
    pub fn classpath(&self) -> String {
        format!("{}/*", self.lib_dir.display())
    }

    /// `jamm`, the agent Cassandra measures object sizes with; it must be loaded with
    /// `-javaagent` or memtable accounting fails at start.
    pub fn jamm_agent(&self) -> Option<PathBuf> {
        jamm_agent(&self.lib_dir)
    }
}

/// `$SONG_COMMENTS_CACHE`, else `$XDG_CACHE_HOME/song-comments`, else `~/.cache/song-comments`.
pub fn cache_root() -> Result<PathBuf, RuntimeError> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("song-comments"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| RuntimeError::Cache {
        path: PathBuf::from("~/.cache"),
        source: std::io::Error::other(format!("HOME is not set; set {CACHE_DIR_ENV}")),
    })?;
    Ok(PathBuf::from(home).join(".cache").join("song-comments"))
}

/// `<cache>/cassandra-<version>/lib`, fetched now if it is not complete yet.
fn cached_jars(cache: &Path) -> Result<PathBuf, RuntimeError> {
    let home = cache.join(format!("cassandra-{CASSANDRA_VERSION}"));
    if home.join(COMPLETE_MARKER).is_file() {
        return Ok(home.join("lib"));
    }
    let mvn = find_on_path("mvn").ok_or(RuntimeError::NoMaven)?;
    let cache_error = |path: &Path| {
        let path = path.to_owned();
        move |source| RuntimeError::Cache { path, source }
    };
    std::fs::create_dir_all(cache).map_err(cache_error(cache))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!(".cassandra-{CASSANDRA_VERSION}-"))
        .tempdir_in(cache)
        .map_err(cache_error(cache))?;
    let pom = scratch.path().join("pom.xml");
    std::fs::write(&pom, pom_xml()).map_err(cache_error(&pom))?;
    eprintln!(
        "[stack] fetching Cassandra {CASSANDRA_VERSION} from Maven Central into {} (once per machine)",
        home.display()
    );
    let output = Command::new(&mvn)
        .args(["-B", "-q", "-f"])
        .arg(&pom)
        .arg(format!("{DEPENDENCY_PLUGIN}:copy-dependencies"))
        .arg(format!(
            "-DoutputDirectory={}",
            scratch.path().join("lib").display()
        ))
        .arg("-DincludeScope=runtime")
        .output()
        .map_err(|source| RuntimeError::Spawn {
            program: mvn.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        return Err(RuntimeError::Fetch {
            status: output.status,
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let marker = scratch.path().join(COMPLETE_MARKER);
    std::fs::write(&marker, CASSANDRA_VERSION).map_err(cache_error(&marker))?;
    // Another process may have finished first: its directory is as good as ours.
    let fetched = scratch.keep();
    if std::fs::rename(&fetched, &home).is_err() {
        let _ = std::fs::remove_dir_all(&fetched);
        if !home.join(COMPLETE_MARKER).is_file() {
            return Err(RuntimeError::Cache {
                path: home,
                source: std::io::Error::other("exists but is incomplete; remove it and retry"),
            });
        }
    }
    Ok(home.join("lib"))
}

/// A pom with the one dependency whose runtime closure is the server.
fn pom_xml() -> String {
    format!(
        r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.song-comments</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>{CASSANDRA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{CASSANDRA_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"#
    )
}

fn has_cassandra_jar(dir: &Path) -> bool {
    jar_starting_with(dir, "cassandra-all-").is_some()
}

fn jamm_agent(dir: &Path) -> Option<PathBuf> {
    jar_starting_with(dir, "jamm-")
}

fn jar_starting_with(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix) && name.ends_with(".jar"))
        })
}

/// `bin/java` of a JDK 17: `$CASSANDRA_JAVA_HOME` (which must be one), else `$JAVA_HOME`
/// if it is one, else the first JDK 17 under `/usr/lib/jvm`.
pub fn find_java() -> Result<PathBuf, RuntimeError> {
    find_java_in(
        std::env::var_os(JAVA_HOME_ENV).map(PathBuf::from),
        std::env::var_os("JAVA_HOME").map(PathBuf::from),
        Path::new("/usr/lib/jvm"),
    )
}

fn find_java_in(
    explicit: Option<PathBuf>,
    java_home: Option<PathBuf>,
    jvm_dir: &Path,
) -> Result<PathBuf, RuntimeError> {
    if let Some(home) = explicit {
        return match feature_release(&home) {
            Some(JAVA_FEATURE_RELEASE) if home.join("bin").join("java").is_file() => {
                Ok(home.join("bin").join("java"))
            }
            found => Err(RuntimeError::WrongJdk {
                path: home,
                found: found.map_or_else(
                    || "no readable `release` file".to_owned(),
                    |v| format!("Java {v}"),
                ),
            }),
        };
    }
    let mut candidates: Vec<PathBuf> = java_home.into_iter().collect();
    if let Ok(entries) = std::fs::read_dir(jvm_dir) {
        let mut installed: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        installed.sort();
        candidates.extend(installed);
    }
    candidates
        .iter()
        .find(|home| {
            feature_release(home) == Some(JAVA_FEATURE_RELEASE)
                && home.join("bin").join("java").is_file()
        })
        .map(|home| home.join("bin").join("java"))
        .ok_or_else(|| RuntimeError::NoJdk {
            searched: if candidates.is_empty() {
                format!("$JAVA_HOME and {}, both empty", jvm_dir.display())
            } else {
                candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// The feature release (17 of "17.0.15") a JDK's `release` file names.
fn feature_release(home: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(home.join("release")).ok()?;
    parse_java_version(&text)
}

fn parse_java_version(release_file: &str) -> Option<u32> {
    let line = release_file
        .lines()
        .find_map(|line| line.strip_prefix("JAVA_VERSION="))?;
    let version = line.trim().trim_matches('"');
    // "1.8.0_392" is Java 8; "17.0.15" is 17.
    let mut parts = version.split(['.', '_', '+', '-']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_parse_from_release_files() {
        let check = |text: &str, expected: Option<u32>| {
            assert_eq!(parse_java_version(text), expected, "{text}");
        };
        check(
            "IMPLEMENTOR=\"Debian\"\nJAVA_VERSION=\"17.0.15\"\n",
            Some(17),
        );
        check("JAVA_VERSION=\"25.0.3\"", Some(25));
        check("JAVA_VERSION=\"1.8.0_392\"", Some(8));
        check("JAVA_VERSION=\"21\"", Some(21));
        check("IMPLEMENTOR=\"x\"", None);
    }

    fn fake_jdk(root: &Path, name: &str, version: &str) -> PathBuf {
        let home = root.join(name);
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::write(home.join("bin/java"), "").unwrap();
        std::fs::write(
            home.join("release"),
            format!("JAVA_VERSION=\"{version}\"\n"),
        )
        .unwrap();
        home
    }

    #[test]
    fn jdk_17_is_chosen_over_a_newer_default() {
        let root = tempfile::tempdir().unwrap();
        let newer = fake_jdk(root.path(), "temurin-25-jdk", "25.0.3");
        let jdk17 = fake_jdk(root.path(), "java-17-openjdk", "17.0.15");
        let found = find_java_in(None, Some(newer.clone()), root.path()).unwrap();
        assert_eq!(found, jdk17.join("bin/java"));
        // An explicit choice must be a 17, and the error says what it found.
        let error = find_java_in(Some(newer), None, root.path()).unwrap_err();
        assert!(error.to_string().contains("Java 25"), "{error}");
        assert!(error.to_string().contains(JAVA_HOME_ENV), "{error}");
        assert_eq!(
            find_java_in(Some(jdk17.clone()), None, root.path()).unwrap(),
            jdk17.join("bin/java")
        );
    }

    #[test]
    fn no_jdk_17_is_an_error_naming_the_fix() {
        let root = tempfile::tempdir().unwrap();
        fake_jdk(root.path(), "temurin-25-jdk", "25.0.3");
        let error = find_java_in(None, None, root.path())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("apt-get install openjdk-17-jdk-headless"),
            "{error}"
        );
        assert!(error.contains("temurin-25-jdk"), "{error}");
        let empty = tempfile::tempdir().unwrap();
        let error = find_java_in(None, None, empty.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("both empty"), "{error}");
    }

    #[test]
    fn the_pom_names_the_pinned_release() {
        let pom = pom_xml();
        assert!(pom.contains("<artifactId>cassandra-all</artifactId>"));
        assert_eq!(pom.matches(CASSANDRA_VERSION).count(), 2, "{pom}");
    }
}
