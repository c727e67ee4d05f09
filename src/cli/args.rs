//! clap definitions of every command and option.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logs::Kind;

/// Exit codes, documented in `sysg --help` and docs/cli.md.
pub const EXIT_CODES: &str = "Exit codes:\n  0  success; `status`/`list`: every selected service runs (or completed) and is healthy\n  1  runtime failure (a service failed, the supervisor is unreachable, ...); `status`/`list`: something selected is degraded\n  2  bad usage, invalid configuration, unknown service or tag\n  3  `status`/`list`: no supervisor is running for this project\n`run --wait` exits with the command's status (128+N when killed by signal N).";

/// sysg: compose programs into systems.
#[derive(Debug, Parser)]
#[command(name = "sysg", version, about = "Process supervisor with dependencies, health checks and rolling deployments", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Configuration file [default: ./systemg.yaml, or /etc/systemg/systemg.yaml with --sys]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// System mode: system paths (/etc, /var/lib, /run, /var/log) and the system manager
    #[arg(long, global = true)]
    pub sys: bool,
    /// Do privileged setup, then run the supervisor as an unprivileged user
    #[arg(long, global = true)]
    pub drop_privileges: bool,
    /// Which backend runs the services
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Log verbosity: off, error, warn, info, debug, trace, or 0-5
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_level)]
    pub log_level: Option<tracing::level_filters::LevelFilter>,
    /// Act on this project's running supervisor, whatever config is in the current directory
    /// (e.g. `--project adhoc` for `sysg run` units)
    #[arg(long, global = true, value_name = "NAME")]
    pub project: Option<String>,
}

/// `--backend`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Auto,
    Systemd,
    Process,
}

/// Parse a log level name or number.
pub fn parse_level(s: &str) -> Result<tracing::level_filters::LevelFilter, String> {
    use tracing::level_filters::LevelFilter as L;
    Ok(match s.to_ascii_lowercase().as_str() {
        "0" | "off" => L::OFF,
        "1" | "error" => L::ERROR,
        "2" | "warn" | "warning" => L::WARN,
        "3" | "info" => L::INFO,
        "4" | "debug" => L::DEBUG,
        "5" | "trace" => L::TRACE,
        _ => {
            return Err(format!(
                "unknown log level `{s}`: expected off, error, warn, info, debug, trace or 0-5"
            ))
        }
    })
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the supervisor and the services (in the foreground unless --daemonize)
    Start(StartArgs),
    /// Stop one service, or every service and then the supervisor
    Stop(ServiceArg),
    /// Restart one service or all; with --config, apply a changed configuration
    Restart(ServiceArg),
    /// Show the state of the services
    Status(StatusArgs),
    /// Show one service in detail
    Inspect(InspectArgs),
    /// Show service output
    Logs(LogsArgs),
    /// Start a child process from inside a service with `spawn.mode: dynamic`
    Spawn(SpawnArgs),
    /// Check the configuration and report every problem
    Validate(ValidateArgs),
    /// Rate how exposed each service is (its sandbox: and identity) and what to add next
    Security(SecurityArgs),
    /// Stop everything and delete this project's state and logs
    Purge,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(long_about = COMPLETIONS_ABOUT)]
    Completions(CompletionsArgs),
    /// Print the service, cron job or tag names of the config, one per line (used by the
    /// completion scripts)
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
    /// Write the man pages (sysg.1 and sysg-COMMAND.1) into a directory
    Manpages(ManpagesArgs),
    /// Print a JSON Schema: of systemg.yaml (default), or of a command's --json output
    Schema(SchemaArgs),
    /// Run the supervisor (used by `start --daemonize`)
    #[command(hide = true)]
    Supervise(SuperviseArgs),
    /// Supervise one command without a config file (like systemd-run)
    Run(RunArgs),
    /// Write a commented starter systemg.yaml
    Init(InitArgs),
    /// One line per service: name, state, pid, uptime, tags (a compact `status`)
    List(ListArgs),
    /// Run services' `reload:` (a signal or a command) without restarting them; `notify`
    /// services: wait for RELOADING=1 … READY=1. To load a changed config, use
    /// `sysg restart --config`
    Reload(ReloadArgs),
    /// Send a signal to every process of services (or with --main their main process), like
    /// `systemctl kill`
    Kill(KillArgs),
}

/// `reload`
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Services to reload [default: every running service that has `reload:`]
    #[command(flatten)]
    pub sel: ServiceArg,
    /// Print JSON: {ok, error?, services: [{name, pid, action}]} (docs/json.md)
    #[arg(long)]
    pub json: bool,
}

/// `kill`
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal: a name (SIGHUP, HUP) or a number
    #[arg(long, short = 'S', value_name = "SIG")]
    pub signal: String,
    /// Services to signal [default: every running service]
    #[command(flatten)]
    pub sel: ServiceArg,
    /// Signal only the main process (`MAINPID=` when the service named one)
    #[arg(long)]
    pub main: bool,
    /// Print JSON: {ok, error?, services: [{name, pid, signal, main}]} (docs/json.md)
    #[arg(long)]
    pub json: bool,
}

/// `--tag`, repeatable: every service carrying any of the tags.
#[derive(Debug, Clone, Default, Args)]
pub struct TagArg {
    /// Act on every service with this tag (repeatable; with --service, the union)
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,
}

/// `run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Unit name [default: the program's name, made unique]
    #[arg(long)]
    pub name: Option<String>,
    /// Restart policy
    #[arg(long, value_enum, default_value_t = RunRestart::Never)]
    pub restart: RunRestart,
    /// Set a variable for the command (repeatable)
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Wait until the command finished and exit with its status (128+N for signal N)
    #[arg(long)]
    pub wait: bool,
    /// Run the command here, in the foreground (terminal, stdin and environment kept), inside
    /// a transient scope of the project's slice, and exit with its status (128+N for signal N)
    #[arg(long, conflicts_with_all = ["wait", "restart"])]
    pub scope: bool,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `run --restart`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunRestart {
    Always,
    OnFailure,
    Never,
}

/// Parse `K=V` (the value may be empty or contain `=`).
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// `init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// `list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List only services with this tag (repeatable: the union)
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,
    /// Print JSON (the same as `status --json`)
    #[arg(long)]
    pub json: bool,
}

/// `start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run the supervisor in the background and return once the services are up
    #[arg(long, short = 'd')]
    pub daemonize: bool,
    /// Start only this service (and what it depends on)
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,
    #[command(flatten)]
    pub tag: TagArg,
}

/// `--service` alone.
#[derive(Debug, Args)]
pub struct ServiceArg {
    /// Act on this service only
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,
    #[command(flatten)]
    pub tag: TagArg,
}

/// `status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show this service only
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,
    #[command(flatten)]
    pub tag: TagArg,
    /// Also show units that are not in the configuration (leftovers)
    #[arg(long)]
    pub all: bool,
    /// Show each service's systemd unit (quoted for a shell when it has to be)
    #[arg(long)]
    pub units: bool,
    /// Print JSON (shape in docs/json.md)
    #[arg(long)]
    pub json: bool,
    /// Refresh every DUR (e.g. 5, 2s, 1m)
    #[arg(long, value_name = "DUR")]
    pub stream: Option<String>,
}

/// `inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Service name
    pub unit: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Refresh every DUR
    #[arg(long, value_name = "DUR")]
    pub stream: Option<String>,
}

/// `logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Show this service only (default: all)
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,
    #[command(flatten)]
    pub tag: TagArg,
    /// Which stream (default: stdout and stderr together)
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// How many lines to show (default 50; with --since/--until, every line in the window)
    #[arg(long, short = 'n')]
    pub lines: Option<usize>,
    /// Only lines from this time on: 10m, 2h, 1d (that long ago), 2026-12-05T14:00:00 or
    /// "2026-12-05 14:00" (local time), 2026-12-05T14:00:00Z (RFC 3339)
    #[arg(long, value_name = "WHEN", value_parser = crate::logs::parse_when)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only lines up to this time (same forms as --since)
    #[arg(long, value_name = "WHEN", value_parser = crate::logs::parse_when, conflicts_with = "follow")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Keep printing new lines as they arrive
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object per line: {service, stream, time, line} (docs/json.md)
    #[arg(long)]
    pub json: bool,
}

/// `spawn` (the global `--log-level` is passed to the child as `SYSG_LOG_LEVEL`)
#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Name of the child
    #[arg(long)]
    pub name: String,
    /// Stop the child after this many seconds
    #[arg(long, value_name = "SECS")]
    pub ttl: Option<u64>,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `security`
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// Only this service (default: every service)
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// What `sysg completions --help` says: where each shell's script goes.
const COMPLETIONS_ABOUT: &str = "\
Print a shell completion script on stdout. It completes commands and options, and the \
service, cron job and tag names of the config in the current directory (or -c FILE): it \
asks `sysg __complete` while you type.

Install it where your shell looks for completions:

  bash        sysg completions bash > ~/.local/share/bash-completion/completions/sysg
              (system-wide: /usr/share/bash-completion/completions/sysg)
  zsh         sysg completions zsh > ~/.zfunc/_sysg
              with `fpath=(~/.zfunc $fpath)` before `compinit` in ~/.zshrc
              (system-wide: /usr/share/zsh/vendor-completions/_sysg)
  fish        sysg completions fish > ~/.config/fish/completions/sysg.fish
              (system-wide: /usr/share/fish/vendor_completions.d/sysg.fish)
  elvish      sysg completions elvish >> ~/.config/elvish/rc.elv
  powershell  sysg completions powershell >> $PROFILE

The .deb, the RPM and packaging/install.sh install the bash, zsh and fish scripts. Open a \
new shell afterwards.";

/// `__complete`
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// Which names
    #[arg(value_enum)]
    pub kind: CompleteKind,
}

/// The names `__complete` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompleteKind {
    /// Services and cron jobs (what `--service` takes)
    Services,
    /// Cron jobs only
    Jobs,
    /// Tags
    Tags,
}

/// `completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `manpages`
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `schema`
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema
    #[arg(value_enum, default_value_t = SchemaKind::Config)]
    pub which: SchemaKind,
}

/// The schemas `sysg schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// systemg.yaml (for editors: yaml-language-server)
    Config,
    /// `sysg status --json`
    Status,
    /// `sysg inspect --json`
    Inspect,
    /// `sysg validate --json`
    Validate,
    /// `sysg logs --json` (one object per line)
    Logs,
}

/// `supervise` (internal)
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// Start only these services (comma-separated)
    #[arg(long)]
    pub service: Option<String>,
    /// File descriptor to report readiness on
    #[arg(long)]
    pub ready_fd: Option<i32>,
    /// Adopt what a crashed supervisor left running, start nothing
    #[arg(long)]
    pub adopt_only: bool,
    /// Run the `adhoc` project's supervisor (no config file; `sysg run`)
    #[arg(long)]
    pub adhoc: bool,
}
