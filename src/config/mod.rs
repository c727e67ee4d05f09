//! Configuration: parse `systemg.yaml`, validate every rule, report every problem with its
//! position.

mod build;
pub mod calendar;
pub mod caps;
pub mod cron;
pub mod duration;
pub mod envfile;
pub mod graph;
pub mod input_forms;
pub mod input_schema;
mod node;
pub mod privileged;
mod reader;
pub mod sandbox;
pub mod sandbox_schema;
pub mod schema;
mod sections;
pub mod service_model;
pub mod size;
pub mod sockets;
pub mod source;
pub mod systemd_versions;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use build::{name_problem, valid_name, MAX_NAME_LEN, MAX_PROJECT_LEN};
pub use cron::CronSchedule;
pub use graph::start_order;
pub use privileged::{privileged_problems, Caller};
pub use schema::Config;

/// Where a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagKind {
    /// The file could not be read.
    Io,
    /// Not valid YAML.
    Syntax,
    /// Valid YAML, invalid configuration.
    Config,
    /// An env file named by `env.file` is unreadable or malformed.
    EnvFile,
}

/// One problem, with its position (1-based; 0 when the position is unknown).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub kind: DiagKind,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", render(.0))]
pub struct ConfigErrors(pub Vec<Diagnostic>);

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            DiagKind::Io => "error",
            DiagKind::Syntax => "syntax error",
            DiagKind::Config => "error",
            DiagKind::EnvFile => "env file error",
        };
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {what}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        } else {
            write!(f, "{}: {what}: {}", self.file.display(), self.message)
        }
    }
}

/// Configs larger than this are refused before parsing: real ones are a few kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Read, parse and validate the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let abs = absolute(path);
    let io_error = |message: String| {
        ConfigErrors(vec![Diagnostic {
            kind: DiagKind::Io,
            file: abs.clone(),
            line: 0,
            column: 0,
            message,
        }])
    };
    // The cap is on the bytes read: a FIFO or a device has no meaningful size, and opening
    // one must not block (source.rs).
    let bytes = source::read_capped(&abs, MAX_CONFIG_BYTES).map_err(|e| match e {
        source::SourceError::TooLarge { .. } => io_error(format!(
            "the config is larger than {MAX_CONFIG_BYTES} bytes (4 MiB), the limit"
        )),
        e => io_error(format!("the config {e}")),
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => load_str(&text, &abs),
        Err(e) => {
            let (line, column) = sections::line_col(e.as_bytes(), e.utf8_error().valid_up_to());
            Err(ConfigErrors(vec![Diagnostic {
                kind: DiagKind::Syntax,
                file: abs,
                line,
                column,
                message: "the config is not valid UTF-8 text".into(),
            }]))
        }
    }
}

/// Parse and validate `source` as if read from `path` (env files resolve against its directory).
pub fn load_str(source: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let file = absolute(path);
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let syntax = |line: u64, column: u64, message: String| {
        ConfigErrors(vec![Diagnostic {
            kind: DiagKind::Syntax,
            file: file.clone(),
            line,
            column,
            message: reader::one_line(&message),
        }])
    };
    if source.len() as u64 > MAX_CONFIG_BYTES {
        return Err(syntax(0, 0, too_large(source.len() as u64)));
    }
    let root = node::parse(source).map_err(|e| {
        let (line, column) = e.pos.map_or((0, 0), |p| (p.line, p.column));
        syntax(line, column, e.message)
    })?;
    let project = default_project(&base_dir);
    let mut ctx = reader::Ctx::new(file.clone(), base_dir);
    match build::build(&mut ctx, &root, project) {
        Some(config) if ctx.diags.is_empty() => Ok(config),
        _ => {
            let mut diags = ctx.diags;
            if diags.is_empty() {
                // Defensive: a build that failed must say why.
                diags.push(Diagnostic {
                    kind: DiagKind::Config,
                    file,
                    line: 0,
                    column: 0,
                    message: "invalid configuration".into(),
                });
            }
            // Report in file order; env file problems after the config's own.
            diags.sort_by_key(|d| (d.kind == DiagKind::EnvFile, d.line, d.column));
            Err(ConfigErrors(diags))
        }
    }
}

/// The project of the config at `path` (`project:`, else its directory's name) without
/// validating the rest: enough to find a running supervisor when the config cannot be fully
/// loaded by this user (an env file only root may read). The flag says whether `project:` was
/// written (see `Config::project_explicit`).
pub fn project_name(path: &Path) -> Option<(String, bool)> {
    let abs = absolute(path);
    let bytes = source::read_capped(&abs, MAX_CONFIG_BYTES).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let root = node::parse(&text).ok()?;
    if let node::Kind::Map(entries) = &root.value {
        for (k, v) in entries {
            if matches!(&k.value, node::Kind::Str(s) if s == "project") {
                return match &v.value {
                    node::Kind::Str(p) if valid_name(p) => Some((p.clone(), true)),
                    _ => None,
                };
            }
        }
    }
    abs.parent().map(|d| (default_project(d), false))
}

/// True when every problem is an env file this process may not read (the config itself is
/// fine): the case of a non-root user looking at a `--sys` project.
pub fn only_unreadable_env_files(e: &ConfigErrors) -> bool {
    !e.0.is_empty()
        && e.0.iter().all(|d| {
            // The env file's read failed for lack of permission (EACCES); the diagnostic
            // points at `env.file` in the config, so the config itself was readable.
            d.kind == DiagKind::EnvFile
                && d.message.contains("cannot be read")
                && d.message.contains("(os error 13)")
        })
}

fn too_large(len: u64) -> String {
    format!("the config is {len} bytes; the limit is {MAX_CONFIG_BYTES} bytes (4 MiB)")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The project name when `project:` is absent: the config directory's name, with any
/// character outside `[A-Za-z0-9_.-]` replaced so the result is always valid.
fn default_project(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // A leading `.` would make a hidden (or `.`/`..`) directory name.
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "systemg".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests;
