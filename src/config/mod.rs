//! Configuration: parse `systemg.yaml`, validate every rule, report every problem with its
//! position.

pub mod schema;

use std::path::{Path, PathBuf};

use thiserror::Error;

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

/// Read, parse and validate the config at `path`.
pub fn load(_path: &Path) -> Result<Config, ConfigErrors> {
    todo!("config")
}

/// Parse and validate `source` as if read from `path` (env files resolve against its directory).
pub fn load_str(_source: &str, _path: &Path) -> Result<Config, ConfigErrors> {
    todo!("config")
}
