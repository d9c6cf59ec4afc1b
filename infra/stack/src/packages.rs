//! Checks for the Debian packages the stack runs (nginx, redis-server, PostgreSQL) and installs them as root.

use std::path::Path;
use std::process::Command;

/// Why the system packages are not there.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "missing programs: {programs}; install them with `sudo apt-get install -y {packages}` (or run `stack` as root to have it done)"
    )]
    Missing { programs: String, packages: String },
    #[error("`apt-get install -y {0}` failed")]
    InstallFailed(String),
    #[error("cannot run apt-get")]
    AptGet(#[source] std::io::Error),
}

/// A program the stack needs and the package that provides it.
struct Requirement {
    program: &'static str,
    package: &'static str,
    present: fn() -> bool,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        program: "nginx",
        package: "nginx",
        present: || on_path("nginx") || Path::new("/usr/sbin/nginx").exists(),
    },
    Requirement {
        program: "redis-server",
        package: "redis-server",
        present: || on_path("redis-server"),
    },
    Requirement {
        program: "postgres, initdb",
        package: "postgresql",
        present: postgres_present,
    },
];

/// Makes sure every program is there: installs what is missing when running as root,
/// otherwise names it.
pub fn ensure_installed() -> Result<(), PackageError> {
    let missing: Vec<&Requirement> = REQUIREMENTS
        .iter()
        .filter(|requirement| !(requirement.present)())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing
        .iter()
        .map(|requirement| requirement.package)
        .collect::<Vec<_>>();
    if !nix::unistd::geteuid().is_root() {
        return Err(PackageError::Missing {
            programs: missing
                .iter()
                .map(|requirement| requirement.program)
                .collect::<Vec<_>>()
                .join(", "),
            packages: packages.join(" "),
        });
    }
    eprintln!("[stack] installing {}", packages.join(" "));
    let update = Command::new("apt-get")
        .arg("update")
        .status()
        .map_err(PackageError::AptGet)?;
    if !update.success() {
        eprintln!("[stack] apt-get update failed; trying the install anyway");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(PackageError::AptGet)?;
    if !install.success() {
        return Err(PackageError::InstallFailed(packages.join(" ")));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn postgres_present() -> bool {
    if on_path("initdb") && on_path("postgres") {
        return true;
    }
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .flatten()
            .any(|version| version.path().join("bin/initdb").is_file())
    })
}
