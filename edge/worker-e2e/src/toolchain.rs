//! Finds the tools that build and run the Worker, and builds it with `worker-build`.
//!
//! `worker-build` would download wasm-bindgen, esbuild and binaryen at run time;
//! here every tool is installed ahead (see edge/worker/README.md) and passed in
//! by path: `WASM_BINDGEN_BIN`, `ESBUILD_BIN`, and `wasm-opt = false` in the
//! crate's metadata.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// Every tool, by absolute path.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub esbuild: PathBuf,
    pub workerd: PathBuf,
}

#[derive(Debug, Error)]
pub enum ToolchainError {
    #[error("{tool} not found (looked at: {looked}); install it with `{install}`")]
    Missing {
        tool: &'static str,
        looked: String,
        install: &'static str,
    },
    #[error("could not run worker-build")]
    Spawn(#[source] std::io::Error),
    #[error("worker-build failed with {0}")]
    BuildFailed(std::process::ExitStatus),
    #[error("worker-build finished but {0} is missing")]
    NoOutput(PathBuf),
}

/// The repository root (this crate lives in `edge/worker-e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"));
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn find(
    tool: &'static str,
    env_var: &str,
    fallback: Option<PathBuf>,
    install: &'static str,
) -> Result<PathBuf, ToolchainError> {
    let from_env = env::var_os(env_var).map(PathBuf::from);
    let mut looked = vec![format!("${env_var}")];
    for candidate in [from_env, fallback.clone(), on_path(tool)]
        .into_iter()
        .flatten()
    {
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    if fallback.is_none() {
        looked.push(format!("{tool} on PATH and in ~/.cargo/bin"));
    }
    Err(ToolchainError::Missing {
        tool,
        looked: looked.join(", "),
        install,
    })
}

impl Toolchain {
    /// Finds the tools: environment variables first, then the repository's
    /// `node_modules`, then `PATH` and `~/.cargo/bin`.
    pub fn locate() -> Result<Self, ToolchainError> {
        let root = workspace_root();
        let node_modules = root.join("node_modules");
        Ok(Self {
            worker_build: find(
                "worker-build",
                "WORKER_BUILD_BIN",
                None,
                "cargo install worker-build --version 0.8.7 --locked",
            )?,
            wasm_bindgen: find(
                "wasm-bindgen",
                "WASM_BINDGEN_BIN",
                None,
                "cargo install wasm-bindgen-cli --version <wasm-bindgen version in Cargo.lock>",
            )?,
            esbuild: find(
                "esbuild",
                "ESBUILD_BIN",
                Some(node_modules.join("@esbuild/linux-x64/bin/esbuild")),
                "npm install (at the repository root)",
            )?,
            workerd: find(
                "workerd",
                "WORKERD_BIN",
                Some(node_modules.join("@cloudflare/workerd-linux-64/bin/workerd")),
                "npm install (at the repository root)",
            )?,
        })
    }

    /// Builds `edge/worker` into `target/edge-worker/build` and returns that
    /// directory. The build uses its own target directory so it can run while
    /// an outer `cargo test` holds the shared one.
    pub fn build_worker(&self) -> Result<PathBuf, ToolchainError> {
        let root = workspace_root();
        let target_dir = root.join("target").join("edge-worker");
        let out_dir = target_dir.join("build");
        eprintln!(
            "building the Worker with {} (the first build compiles the worker crate for wasm: minutes)",
            self.worker_build.display()
        );
        let status = Command::new(&self.worker_build)
            .arg("--release")
            .arg("--out-dir")
            .arg(&out_dir)
            .current_dir(root.join("edge/worker"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("WASM_BINDGEN_BIN", &self.wasm_bindgen)
            .env("ESBUILD_BIN", &self.esbuild)
            .status()
            .map_err(ToolchainError::Spawn)?;
        if !status.success() {
            return Err(ToolchainError::BuildFailed(status));
        }
        for file in ["index.js", "index_bg.wasm"] {
            if !out_dir.join(file).is_file() {
                return Err(ToolchainError::NoOutput(out_dir.join(file)));
            }
        }
        Ok(out_dir)
    }
}
