//! `sysg validate`

use super::args::{Global, ValidateArgs};
use super::context::config_path;
use super::{error, EXIT_OK, EXIT_USAGE};
use crate::config;

/// `sysg validate [--config F] [--json]`
pub fn run(g: &Global, a: &ValidateArgs) -> i32 {
    let path = config_path(g);
    match config::load(&path) {
        Ok(cfg) => {
            if a.json {
                let v = serde_json::json!({
                    "ok": true,
                    "config": cfg.path,
                    "project": cfg.project,
                    "services": cfg.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                });
                println!("{v}");
            } else {
                let n = cfg.services.len();
                println!(
                    "{}: ok (project `{}`, {n} service{})",
                    cfg.path.display(),
                    cfg.project,
                    if n == 1 { "" } else { "s" }
                );
            }
            EXIT_OK
        }
        Err(e) => {
            if a.json {
                let v = serde_json::json!({ "ok": false, "config": path, "errors": e.0 });
                println!("{v}");
            } else {
                eprintln!("{e}");
                let n = e.0.len();
                error(format!(
                    "{} has {n} problem{}",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ));
            }
            EXIT_USAGE
        }
    }
}
