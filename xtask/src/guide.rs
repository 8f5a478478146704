//! `cargo xtask guide`: follows docs/getting-started.md literally, as a newcomer would.
//!
//! It reads the guide's shell and Rust blocks in order and acts them out in an empty directory
//! outside the workspace (`$TMPDIR/snap-es-guide-PID`, so `cargo new` makes a crate of its own):
//! runs the `cargo new` and `cargo add` commands (with `PATH/TO/snap-es`
//! pointing at this checkout), writes the Rust of steps 2 and 3 into `src/main.rs`, runs it,
//! then applies step 4 (the `cargo add` with the `sqlite` feature and the SQLite repository in
//! place of the in-memory one) and runs it twice. A step the guide leaves out fails the build,
//! and so does a command this runner does not understand, so the guide stays something a
//! person can follow by copy and paste.
//!
//! Two things differ from a newcomer's machine: the workspace's `Cargo.lock` is copied in
//! first, so the crate builds with the dependency versions CI tests, and the build shares the
//! workspace's target directory, so it reuses what is already compiled.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

const GUIDE: &str = "docs/getting-started.md";
/// The placeholder the guide uses for this checkout.
const PLACEHOLDER: &str = "PATH/TO/snap-es";

/// A fenced block of the guide.
#[derive(Debug)]
enum Block {
    Shell(String),
    Rust(String),
}

/// How an open block is kept when it closes; `None` for a language the runner skips.
type Keep = Option<fn(String) -> Block>;

/// The guide's `sh` and `rust` blocks, in order; blocks in other languages are skipped.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // The open block: its body, and how to keep it (`None`: another language, dropped).
    let mut open: Option<(Keep, String)> = None;
    for line in markdown.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(tag)) => {
                let tag = tag.trim();
                let kind: Keep = if tag == "sh" {
                    Some(Block::Shell)
                } else if tag == "rust" || tag.starts_with("rust,") {
                    Some(Block::Rust)
                } else {
                    None
                };
                open = Some((kind, String::new()));
            }
            (Some((kind, body)), Some(_)) => {
                if let Some(kind) = kind {
                    blocks.push(kind(std::mem::take(body)));
                }
                open = None;
            }
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Runs the commands of a shell block in `dir`, following its `cd`s; returns the directory
/// the block ends in.
fn run_shell(block: &str, mut dir: PathBuf, root: &Path, target: &Path) -> Result<PathBuf> {
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for command in line.split("&&").map(str::trim) {
            let words: Vec<String> = command
                .split_whitespace()
                .map(|word| word.replace(PLACEHOLDER, &root.display().to_string()))
                .collect();
            match words.first().map(String::as_str) {
                Some("cd") => {
                    let to = words.get(1).ok_or("`cd` without a directory")?;
                    dir = dir.join(to);
                }
                Some("cargo") => {
                    eprintln!("xtask: guide: {command}");
                    let created = words.get(1).is_some_and(|w| w == "new");
                    run(Command::new(cargo())
                        .args(&words[1..])
                        .current_dir(&dir)
                        .env("CARGO_TARGET_DIR", target))?;
                    if created {
                        let name = words.last().ok_or("`cargo new` without a name")?;
                        std::fs::copy(root.join("Cargo.lock"), dir.join(name).join("Cargo.lock"))
                            .map_err(|e| format!("cannot copy Cargo.lock: {e}"))?;
                    }
                }
                _ => {
                    return Err(format!(
                        "{GUIDE}: the command `{command}` is not one a reader can run here \
                         (only cargo and cd are followed)"
                    ));
                }
            }
        }
    }
    Ok(dir)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(command: &mut Command) -> Result {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// Puts step 4's SQLite repository in place of the in-memory one of step 3: the statement
/// from `let repo =` to its `.build()?;`.
fn swap_repository(main: &str, sqlite: &str) -> Result<String> {
    let start = main
        .find("    let repo = ")
        .ok_or("step 3 builds no `repo`")?;
    let end = main[start..]
        .find(".build()?;\n")
        .map(|i| start + i + ".build()?;\n".len())
        .ok_or("step 3's `repo` does not end in `.build()?;`")?;
    let indented: String = sqlite
        .lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_owned()
            } else {
                format!("    {line}\n")
            }
        })
        .collect();
    Ok(format!("{}{indented}{}", &main[..start], &main[end..]))
}

/// The guide's shell blocks and Rust blocks, each in order: at least the two shell blocks of
/// steps 1 and 4 and the Rust of steps 2, 3 and 4.
fn steps(markdown: &str) -> Result<(Vec<String>, Vec<String>)> {
    let (mut shell, mut rust) = (Vec::new(), Vec::new());
    for block in blocks(markdown) {
        match block {
            Block::Shell(body) => shell.push(body),
            Block::Rust(body) => rust.push(body),
        }
    }
    if shell.len() < 2 || rust.len() < 3 {
        return Err(format!(
            "{GUIDE}: expected the shell of steps 1 and 4 and the Rust of steps 2, 3 and 4; \
             found {} shell and {} Rust blocks",
            shell.len(),
            rust.len()
        ));
    }
    Ok((shell, rust))
}

/// Follows the guide from an empty directory to a snapshot-backed load on SQLite.
pub(crate) fn guide() -> Result {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let markdown = std::fs::read_to_string(root.join(GUIDE))
        .map_err(|e| format!("cannot read {GUIDE}: {e}"))?;
    let (shell, rust) = steps(&markdown)?;
    // Outside the workspace: inside it, `cargo new` would join the workspace.
    let work = std::env::temp_dir().join(format!("snap-es-guide-{}", std::process::id()));
    let target = root.join("target");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .map_err(|e| format!("cannot clear {}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let cargo_run = |krate: &Path| {
        run(Command::new(cargo())
            .args(["run", "--quiet"])
            .current_dir(krate)
            .env("CARGO_TARGET_DIR", &target))
    };

    // Step 1: the crate; steps 2 and 3: the aggregate and the program, on the memory stores.
    let krate = run_shell(&shell[0], work, &root, &target)?;
    let main = format!("{}\n{}", rust[0], rust[1]);
    std::fs::write(krate.join("src/main.rs"), &main).map_err(|e| e.to_string())?;
    eprintln!("xtask: guide: cargo run (steps 2 and 3, in memory)");
    cargo_run(&krate)?;

    // Step 4: the sqlite feature and the SQLite stores; the second run finds the first's file.
    let krate = run_shell(&shell[1], krate, &root, &target)?;
    std::fs::write(krate.join("src/main.rs"), swap_repository(&main, &rust[2])?)
        .map_err(|e| e.to_string())?;
    for run_number in 1..=2 {
        eprintln!("xtask: guide: cargo run (step 4, on SQLite, run {run_number})");
        cargo_run(&krate)?;
    }
    let db = krate.join("counter.db");
    if !db.exists() {
        return Err(format!("step 4 left no database at {}", db.display()));
    }
    eprintln!("xtask: guide: every step of {GUIDE} ran");
    let _ = std::fs::remove_dir_all(krate.parent().unwrap_or(&krate));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_in_order_and_other_languages_dropped() {
        let markdown =
            "text\n```sh\ncargo new x\n```\n```toml\n[a]\n```\n```rust,ignore\nfn main() {}\n```\n";
        let found = blocks(markdown);
        assert!(matches!(&found[..], [Block::Shell(s), Block::Rust(r)]
            if s == "cargo new x\n" && r == "fn main() {}\n"));
    }

    #[test]
    fn the_repository_statement_is_swapped() {
        let main = "fn main() {\n    let repo = A::builder(x)\n        .build()?;\n    go();\n}\n";
        let swapped = swap_repository(
            main,
            "let db = open();\nlet repo = B::new(db)\n    .build()?;\n",
        )
        .unwrap_or_default();
        assert_eq!(
            swapped,
            "fn main() {\n    let db = open();\n    let repo = B::new(db)\n        .build()?;\n    go();\n}\n"
        );
        assert!(swap_repository("fn main() {}", "x").is_err());
    }
}
