//! Command-line interface: parse, set up logging, dispatch. Each subcommand has its own file.

pub mod args;
mod complete_names;
mod completions;
mod context;
mod cron;
mod human;
mod init;
mod inspect;
mod journal;
mod list;
mod logs;
pub mod output;
mod progress;
mod purge;
mod restart;
mod run;
mod run_wait;
mod schema;
mod security;
mod select;
mod service_cmds;
mod spawn;
mod start;
mod status;
mod stop;
pub mod table;
pub mod term;
mod validate;

use std::io::Write as _;

use clap::Parser;

use args::{Cli, Command};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: runtime failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad usage or invalid configuration.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `status` when no supervisor runs.
pub const EXIT_NOT_RUNNING: i32 = 3;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(&cli);
    let g = &cli.global;
    match &cli.command {
        Command::Start(a) => start::run(g, a),
        Command::Stop(a) => stop::run(g, a),
        Command::Restart(a) => restart::run(g, a),
        Command::Status(a) => status::run(g, a),
        Command::Inspect(a) => inspect::run(g, a),
        Command::Logs(a) => logs::run(g, a),
        Command::Spawn(a) => spawn::run(g, a),
        Command::Validate(a) => validate::run(g, a),
        Command::Security(a) => security::run(g, a),
        Command::Purge => purge::run(g),
        Command::Completions(a) => completions::completions(a),
        Command::Complete(a) => complete_names::run(g, a),
        Command::Manpages(a) => completions::manpages(a),
        Command::Schema(a) => schema::run(a),
        Command::Supervise(a) => start::supervise(g, a),
        Command::Run(a) => run::run(g, a),
        Command::Init(a) => init::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Reload(a) => service_cmds::reload(g, a),
        Command::Kill(a) => service_cmds::kill(g, a),
    }
}

fn init_tracing(cli: &Cli) {
    use tracing::level_filters::LevelFilter;
    let default = match cli.command {
        // The supervisor tells what it does; client commands stay quiet unless asked.
        Command::Supervise(_) | Command::Start(_) => LevelFilter::INFO,
        _ => LevelFilter::WARN,
    };
    let level = cli.global.log_level.unwrap_or(default);
    let supervisor = matches!(cli.command, Command::Supervise(_) | Command::Start(_));
    if supervisor && journal::init(level) {
        return;
    }
    let ansi = output::color_enabled_stderr();
    if supervisor {
        // Rate-limited, and rotated once the supervisor knows its log (logs/supervisor.rs).
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(crate::logs::supervisor::SupervisorLog)
            .with_ansi(ansi)
            .with_target(false)
            .log_internal_errors(false)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        // The daemon's stderr is its log file: on a full disk, a failed write must not become
        // a panic (tracing would report it with eprintln!, which panics when stderr fails).
        .log_internal_errors(false)
        .try_init();
}

/// Print an error the way every command does. Errors quote what supervisors, services and
/// config files said, so control characters are removed first (`sanitize`).
pub(crate) fn error(msg: impl std::fmt::Display) {
    let msg = msg.to_string();
    let msg = crate::control::sanitize::terminal_safe(&msg);
    // Not eprintln!: it panics when stderr cannot be written (a daemon's log on a full disk).
    let _ = writeln!(std::io::stderr(), "sysg: {msg}");
}
