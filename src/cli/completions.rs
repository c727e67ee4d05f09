//! `sysg completions SHELL` and `sysg manpages DIR`: generated from the clap definitions, so
//! they always match the binary (names come from `complete_names`). Packaging installs their
//! output.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use thiserror::Error;

use super::args::{Cli, CompletionsArgs, ManpagesArgs};
use super::{error, EXIT_FAILURE, EXIT_OK};

/// Failures writing man pages.
#[derive(Debug, Error)]
pub enum DocGenError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The command tree without hidden commands: some generators list those too, and an
/// internal command is nothing to complete.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("sysg")
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"));
    for a in full.get_arguments() {
        cmd = cmd.arg(a.clone());
    }
    for s in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(s.clone());
    }
    cmd
}

/// `sysg completions SHELL`: the script on stdout.
pub fn completions(a: &CompletionsArgs) -> i32 {
    let mut cmd = visible_command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "sysg", &mut buf);
    let script = super::complete_names::with_name_hooks(a.shell, &String::from_utf8_lossy(&buf));
    super::term::print(&script);
    EXIT_OK
}

/// `sysg manpages DIR`
pub fn manpages(a: &ManpagesArgs) -> i32 {
    match write_manpages(&a.dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            EXIT_OK
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}

/// Write `sysg.1` and `sysg-COMMAND.1` for every visible command into `dir`; returns the
/// files written.
pub fn write_manpages(dir: &Path) -> Result<Vec<PathBuf>, DocGenError> {
    let io = |context: String| move |source| DocGenError::Io { context, source };
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let cmd = Cli::command();
    let mut written = Vec::new();
    let mut render = |page: &clap::Command, name: &str| -> Result<(), DocGenError> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page.clone())
            .title(name.to_uppercase())
            .section("1")
            .source(format!("sysg {}", env!("CARGO_PKG_VERSION")))
            .manual("systemg manual")
            .render(&mut buf)
            .map_err(io(format!("rendering {name}.1")))?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf).map_err(io(format!("writing {}", path.display())))?;
        written.push(path);
        Ok(())
    };
    render(&cmd, "sysg")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // The page of a subcommand is named like git's: `sysg-status(1)`, invoked `sysg status`.
        let name = format!("sysg-{}", sub.get_name());
        let page = sub.clone().bin_name(format!("sysg {}", sub.get_name()));
        render(&page, &name)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_name_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut visible_command(), "sysg", &mut buf);
            let text = String::from_utf8_lossy(&buf);
            for word in ["status", "inspect", "completions", "stream"] {
                assert!(text.contains(word), "{shell:?} script lacks {word}");
            }
            assert!(
                !text.contains("supervise"),
                "{shell:?} completes the hidden command"
            );
        }
    }

    #[test]
    fn man_pages_for_every_visible_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_manpages(dir.path()).expect("pages");
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str().map(str::to_string))
            .collect();
        for n in ["sysg.1", "sysg-status.1", "sysg-inspect.1", "sysg-schema.1"] {
            assert!(names.iter().any(|x| x == n), "missing {n}: {names:?}");
        }
        assert!(!names.iter().any(|x| x.contains("supervise")));
        let status = std::fs::read_to_string(dir.path().join("sysg-status.1")).expect("read");
        assert!(
            status.starts_with(".ie") || status.contains(".TH"),
            "{status}"
        );
        assert!(status.contains("stream"), "{status}");
    }
}
