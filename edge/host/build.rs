//! Builds the edge component (edge/spin) for wasm32-wasip2 with the workspace's
//! `guest` profile (release, optimised as one unit) and hands its path to the host
//! crate, so `edge-host` and its tests always run the guest built from the current
//! source. The bench's floor component (edge/floor) is built in the same cargo run
//! (it shares every dependency) and reaches the bench as `EDGE_FLOOR_WASM`;
//! `edge-host` itself does not embed it. The nested cargo uses its own target
//! directory: on the shared one it would wait forever for the lock the outer build
//! holds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    for path in [
        "edge/spin/src",
        "edge/spin/Cargo.toml",
        "edge/core/src",
        "edge/core/Cargo.toml",
        "edge/alloc/src",
        "edge/alloc/Cargo.toml",
        "edge/floor/src",
        "edge/floor/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let guest_target = workspace.join("target/wasm-guest");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "build",
            "-p",
            "edge-spin",
            "-p",
            "edge-floor",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&guest_target);
    for (name, _) in std::env::vars() {
        let inherited_build_setting = name.starts_with("CARGO_")
            && name != "CARGO_HOME"
            && !name.starts_with("CARGO_NET")
            && !name.starts_with("CARGO_HTTP")
            && !name.starts_with("CARGO_REGISTRIES");
        if inherited_build_setting
            || name == "RUSTFLAGS"
            || name == "RUSTC_WRAPPER"
            || name == "RUSTC_WORKSPACE_WRAPPER"
        {
            command.env_remove(name);
        }
    }
    let status = command.status().expect("cargo runs");
    assert!(
        status.success(),
        "building edge-spin and edge-floor for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    let wasm = guest_target.join("wasm32-wasip2/guest/edge_spin.wasm");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("edge_spin.wasm");
    std::fs::copy(&wasm, &out).expect("copy the built component");
    // The floor sits beside the embedded component in OUT_DIR, so that cleaning
    // the guests' target directory cannot leave the bench pointing at nothing.
    let floor = out.with_file_name("edge_floor.wasm");
    std::fs::copy(
        guest_target.join("wasm32-wasip2/guest/edge_floor.wasm"),
        &floor,
    )
    .expect("copy the built floor component");
    println!("cargo:rustc-env=EDGE_FLOOR_WASM={}", floor.display());
}
