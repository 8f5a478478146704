//! Release readiness, as a crates.io user would check it: the supported Rust version is the one
//! CI builds with, every published crate packages and builds from its package alone, and every
//! dependency's licence and source are allowed.

use std::fs;
use std::process::Command;

use crate::{Result, cargo};

/// The crates that are published.
const PUBLISHED: [&str; 10] = [
    "snap-core",
    "snap-memory",
    "snap-sqlite",
    "snap-postgres",
    "snap-nats",
    "snap-strategy",
    "snap-repo",
    "snap-testkit",
    "snap-es",
    "snap-cli",
];

/// The crates that are not published: the benchmark and this tool.
const UNPUBLISHED: [&str; 3] = ["snap-bench", "snap-example-ops", "xtask"];

/// `rust-version` in the workspace manifest names the toolchain that `rust-toolchain.toml`
/// pins, which every CI step builds with: the declared minimum is a version CI actually built.
/// (Machines here have one toolchain, so an older one cannot be tried.)
pub(crate) fn msrv() -> Result {
    let manifest = fs::read_to_string("Cargo.toml").map_err(|e| format!("Cargo.toml: {e}"))?;
    let toolchain = fs::read_to_string("rust-toolchain.toml")
        .map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    let declared = quoted_value(&manifest, "rust-version")
        .ok_or("Cargo.toml declares no rust-version in [workspace.package]")?;
    let pinned =
        quoted_value(&toolchain, "channel").ok_or("rust-toolchain.toml pins no channel")?;
    if pinned != declared && !pinned.starts_with(&format!("{declared}.")) {
        return Err(format!(
            "rust-version {declared} is not the pinned toolchain {pinned}: CI would not build \
             with the version the crates declare"
        ));
    }
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run rustc: {e}"))?;
    let version = String::from_utf8_lossy(&rustc.stdout);
    if !version.contains(&format!(" {pinned}")) {
        return Err(format!(
            "rustc is {version:?}, the pinned toolchain is {pinned}"
        ));
    }
    eprintln!(
        "xtask: rust-version {declared}, built with {}",
        version.trim()
    );
    Ok(())
}

/// The first `key = "value"` of `text`.
fn quoted_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == key).then(|| value.trim().trim_matches('"'))
    })
}

/// Packages every published crate and builds each from its package alone (a crate that reads
/// a file outside its directory fails here), against the others' packages.
pub(crate) fn package() -> Result {
    forget_earlier_packages()?;
    // Their builds too: cargo knows a registry crate's build by name and version, not content.
    let mut clean = vec!["clean"];
    for crate_name in PUBLISHED {
        clean.extend(["--package", crate_name]);
    }
    cargo(&clean, &[])?;
    let mut args = vec!["package", "--workspace", "--allow-dirty", "--locked"];
    for crate_name in UNPUBLISHED {
        args.extend(["--exclude", crate_name]);
    }
    cargo(&args, &[])
}

/// Removes the copies of this workspace's crates that an earlier `cargo package` unpacked from
/// its local registry (`$CARGO_HOME/registry/src/-<hash>/<crate>-<version>`): cargo keys them
/// by name and version only, so a later run would build the others against the earlier code.
fn forget_earlier_packages() -> Result {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = fs::read_dir(home.join("registry").join("src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        // Local registries are named by a hash after a dash; crates.io's by its host.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if unpacked.file_name().to_string_lossy().starts_with("snap-") {
                fs::remove_dir_all(unpacked.path())
                    .map_err(|e| format!("remove {}: {e}", unpacked.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Licences, bans and sources of every dependency against deny.toml. The advisory database is
/// fetched from the network, which CI machines here do not reach, so advisories are checked
/// where it is reachable (`cargo deny check advisories`).
pub(crate) fn deny() -> Result {
    cargo(&["deny", "check", "licenses", "bans", "sources"], &[])
}
