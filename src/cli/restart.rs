//! `sysg restart`

use super::args::{Global, ServiceArg};
use super::context::{load_config, resolve};
use super::output::print_outcome;
use super::{error, EXIT_FAILURE};
use crate::control::protocol::{ReloadChanges, Request};
use crate::control::{client, ControlError};

/// `sysg restart [--service S] [--config NEW]`
pub fn run(g: &Global, a: &ServiceArg) -> i32 {
    // With an explicit --config the file is validated here, before the supervisor sees it.
    if g.config.is_some() {
        if let Err(code) = load_config(g) {
            return code;
        }
    }
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let selected = match super::select::resolve(&ctx, a.service.as_deref(), &a.tag.tags, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = match (selected, g.config.is_some()) {
        (Some(services), _) => Request::Restart {
            services: Some(services),
        },
        (None, true) => Request::Reload {
            config: ctx.config_path.clone(),
        },
        (None, false) => Request::Restart { services: None },
    };
    match client::call(&ctx.paths, &ctx.project, request, None) {
        Ok(resp) => {
            // A reload says what it changed, like `docker compose up -d`.
            let changes = resp
                .data
                .get("changes")
                .and_then(|c| serde_json::from_value::<ReloadChanges>(c.clone()).ok());
            if let Some(c) = changes {
                println!("{}", c.summary());
            }
            print_outcome(&resp)
        }
        Err(ControlError::NotRunning { project, .. }) => {
            error(format!(
                "no supervisor is running for project `{project}`; use `sysg start`"
            ));
            EXIT_FAILURE
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}
