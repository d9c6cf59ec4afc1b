//! Finds the `origin` and `edge-host` executables the stack runs, building them with cargo when asked to.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a binary could not be found or built.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error(
        "`{name}` not found (looked in {searched}); build it with `cargo build --release -p {package}` or set {env}"
    )]
    NotFound {
        name: &'static str,
        package: &'static str,
        env: &'static str,
        searched: String,
    },
    #[error("cannot run cargo")]
    Cargo(#[source] std::io::Error),
    #[error("`{0}` failed; see its output above")]
    BuildFailed(String),
    #[error("`{command}` succeeded but left no {path}")]
    NotBuilt { command: String, path: String },
}

/// One of the executables the stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Origin,
    EdgeHost,
}

impl Binary {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::EdgeHost => "edge-host",
        }
    }

    /// The package whose binary this is (`origin` is the `origin-cli` package's:
    /// the `origin` package is the server library).
    pub fn package(self) -> &'static str {
        match self {
            Self::Origin => "origin-cli",
            Self::EdgeHost => "edge-host",
        }
    }

    /// Environment variable that overrides the search.
    pub fn env_override(self) -> &'static str {
        match self {
            Self::Origin => "ORIGIN_BIN",
            Self::EdgeHost => "EDGE_HOST_BIN",
        }
    }
}

/// The workspace root, known at compile time (the stack crate lives in `infra/stack`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// Where to look, best first: the override, beside the running executable (so a release
/// `stack` runs release instances), then the workspace's release and debug outputs.
pub fn candidates(binary: Binary) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Some(path) = std::env::var_os(binary.env_override()) {
        found.push(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        // Test executables live in target/<profile>/deps.
        let dir = if dir.ends_with("deps") {
            dir.parent().unwrap_or(dir)
        } else {
            dir
        };
        found.push(dir.join(binary.file_name()));
    }
    let target = workspace_root().join("target");
    found.push(target.join("release").join(binary.file_name()));
    found.push(target.join("debug").join(binary.file_name()));
    found
}

/// The first existing candidate.
pub fn find(binary: Binary) -> Result<PathBuf, BinaryError> {
    let candidates = candidates(binary);
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| BinaryError::NotFound {
            name: binary.file_name(),
            package: binary.package(),
            env: binary.env_override(),
            searched: candidates
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Builds the binaries from the current source, so that tests and the bench never run a
/// stale executable; cargo makes this a no-op when nothing changed.
///
/// A debug build (the tests') is `cargo test --no-run` over the workspace's default
/// members: the very build that `cargo test` at the workspace root makes (CI's), features
/// and all, so under it this finds everything done. `cargo build -p origin-cli -p
/// edge-host` would resolve features for those two packages alone and build some 150
/// crates (libc, tokio, wasmtime, rustls and all above them) a second time beside the test
/// run's: minutes of CI, and gigabytes of `target/` on a machine that may not have them.
/// Under `cargo test -p NAME` this is that second build, once, shared with any later
/// run at the root. It leaves `target/debug/origin` and `target/debug/edge-host` because
/// their packages have integration tests (cargo builds a package's binaries for its own
/// integration tests); without them, [`BinaryError::NotBuilt`] says so. A release build
/// (the bench's) builds the packages asked for.
pub fn build(binaries: &[Binary], release: bool) -> Result<Vec<PathBuf>, BinaryError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    let args: Vec<&str> = if release {
        let packages = binaries.iter().flat_map(|binary| ["-p", binary.package()]);
        ["build", "--release"].into_iter().chain(packages).collect()
    } else {
        vec!["test", "--no-run", "--quiet"]
    };
    command.args(&args);
    let description = format!("cargo {}", args.join(" "));
    let names = binaries
        .iter()
        .map(|binary| binary.file_name())
        .collect::<Vec<_>>()
        .join(" and ");
    eprintln!("[stack] building {names} with `{description}`");
    let status = command.status().map_err(BinaryError::Cargo)?;
    if !status.success() {
        return Err(BinaryError::BuildFailed(description));
    }
    let profile = if release { "release" } else { "debug" };
    binaries
        .iter()
        .map(|binary| {
            let path = workspace_root()
                .join("target")
                .join(profile)
                .join(binary.file_name());
            if path.is_file() {
                Ok(path)
            } else {
                Err(BinaryError::NotBuilt {
                    command: description.clone(),
                    path: path.display().to_string(),
                })
            }
        })
        .collect()
}
