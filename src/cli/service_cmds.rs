//! `sysg reload` (a service's `reload:`, without restarting it) and `sysg kill` (a signal to
//! a service's processes, like `systemctl kill`). The supervisor does the work
//! (runtime/supervisor/service_cmds.rs); this file selects the services and prints the answer.

use super::args::{Global, KillArgs, ReloadArgs};
use super::context::resolve;
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::control::protocol::{Request, Response};
use crate::control::{client, ControlError};

/// `sysg reload [--service S | --tag T] [--json]`
pub fn reload(g: &Global, a: &ReloadArgs) -> i32 {
    let Some((ctx, services)) = selection(g, a.sel.service.as_deref(), &a.sel.tag.tags) else {
        return EXIT_USAGE;
    };
    let request = Request::ReloadServices { services };
    answer(&ctx, request, a.json, "reloaded")
}

/// `sysg kill --signal SIG [--service S | --tag T] [--main] [--json]`
pub fn kill(g: &Global, a: &KillArgs) -> i32 {
    let Some((number, _)) = crate::signals::parse(&a.signal) else {
        error(format!(
            "unknown signal {:?}: expected a name like SIGHUP (or HUP) or a number",
            a.signal
        ));
        return EXIT_USAGE;
    };
    let Some((ctx, services)) = selection(g, a.sel.service.as_deref(), &a.sel.tag.tags) else {
        return EXIT_USAGE;
    };
    let request = Request::Kill {
        services,
        signal: number,
        main: a.main,
    };
    answer(&ctx, request, a.json, "signalled")
}

fn selection(
    g: &Global,
    service: Option<&str>,
    tags: &[String],
) -> Option<(super::context::Ctx, Option<Vec<String>>)> {
    let ctx = resolve(g).ok()?;
    let selected = super::select::resolve(&ctx, service, tags, false).ok()?;
    Some((ctx, selected))
}

fn answer(ctx: &super::context::Ctx, request: Request, json: bool, verb: &str) -> i32 {
    let resp: Response = match client::call(&ctx.paths, &ctx.project, request, None) {
        Ok(r) => r,
        Err(ControlError::NotRunning { project, .. }) => {
            error(format!(
                "no supervisor is running for project `{project}`; use `sysg start`"
            ));
            return EXIT_FAILURE;
        }
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    };
    if json {
        let mut out = resp.data.clone();
        if let Some(o) = out.as_object_mut() {
            o.insert("ok".into(), resp.ok.into());
            if let Some(e) = &resp.error {
                o.insert("error".into(), e.clone().into());
            }
        }
        match serde_json::to_string_pretty(&out) {
            Ok(s) => println!("{s}"),
            Err(e) => error(e),
        }
    } else if let Some(list) = resp.data.get("services").and_then(|s| s.as_array()) {
        for s in list {
            let name = s.get("name").and_then(|v| v.as_str()).unwrap_or("?");
            let pid = s.get("pid").and_then(|v| v.as_u64()).unwrap_or(0);
            let what = s
                .get("action")
                .or_else(|| s.get("signal"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            println!("{verb} {name} (pid {pid}, {what})");
        }
    }
    if resp.ok {
        EXIT_OK
    } else {
        for line in resp.error.as_deref().unwrap_or("failed").lines() {
            eprintln!("sysg: {line}");
        }
        EXIT_FAILURE
    }
}
