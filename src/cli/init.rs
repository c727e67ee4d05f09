//! `sysg init`: write a commented starter `systemg.yaml` that validates as written.

use std::io::Write;

use super::args::{Global, InitArgs};
use super::context::config_path;
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

/// The starter config. Kept valid by a test that loads it.
pub const TEMPLATE: &str = r#"# systemg configuration. Check it with `sysg validate`, run it with `sysg start`.
# Reference: docs/configuration.md.
version: "1"

# One supervisor runs per project; the default is this directory's name.
# project: myapp

services:
  # A job that must finish (exit 0) before the services that need it start.
  setup:
    command: "mkdir -p data && echo setup done"
    restart_policy: never

  # A long-running service, restarted when it fails, with a health check.
  web:
    exec: ["python3", "-m", "http.server", "8080", "--bind", "127.0.0.1"]
    depends_on:
      - service: setup
        condition: completed
    restart_policy: on-failure   # always | on-failure | never
    backoff: 1s                  # doubles for each consecutive restart
    env:
      vars:
        PYTHONUNBUFFERED: "1"
    health_check:
      url: "http://127.0.0.1:8080/"
      interval: 5s
      retries: 3
    tags: [web]                  # `sysg restart --tag web`, `sysg logs --tag web`
    # Hardening, enforced by the kernel on both backends (`sysg security` rates it and
    # says what to add next; docs/security.md, "Hardening a service").
    sandbox:
      no_new_privileges: true    # setuid programs grant nothing
      protect_system: strict     # the whole file system read-only...
      # read_write_paths: ["/var/lib/web"]   # ...but for what it must write
      protect_home: read-only    # `true` hides /home entirely (not if this project lives there)
      # private_tmp: true        # own /tmp (not if this project lives under /tmp)
      private_devices: true
      protect_kernel_tunables: true
      protect_kernel_modules: true
      protect_control_groups: true
      restrict_address_families: [AF_UNIX, AF_INET, AF_INET6]
      system_call_filter: ["@system-service"]   # systemd's groups; `~@group` denies
      memory_deny_write_execute: true

  # A worker that starts once web is healthy.
  worker:
    command: "while true; do date; sleep 10; done"
    depends_on: [web]
    stop_timeout: 5s
    tags: [background]
"#;

/// `sandbox:` keys of the template that set up a mount namespace: the process backend needs a
/// root supervisor for them (`config/privileged.rs` refuses them otherwise).
const MOUNT_KEYS: [&str; 6] = [
    "protect_system:",
    "protect_home:",
    "private_devices:",
    "protect_kernel_tunables:",
    "protect_kernel_modules:",
    "protect_control_groups:",
];

/// The note put above the commented-out mount keys for a supervisor without root.
const NOT_ROOT_NOTE: &str = "      # The keys below need a root supervisor (`sudo sysg --sys start`); uncomment them there.";

/// The template as `sysg init` writes it for a supervisor with (`root`) or without root: the
/// same file, but without root the keys that need it are commented out, so that what `init`
/// writes validates and starts for whoever ran it.
pub fn template(root: bool) -> String {
    if root {
        return TEMPLATE.to_string();
    }
    let mut out = String::with_capacity(TEMPLATE.len() + 256);
    let mut noted = false;
    for line in TEMPLATE.lines() {
        let key = line.trim_start();
        if MOUNT_KEYS.iter().any(|k| key.starts_with(k)) {
            if !noted {
                out.push_str(NOT_ROOT_NOTE);
                out.push('\n');
                noted = true;
            }
            let indent = &line[..line.len() - key.len()];
            out.push_str(indent);
            out.push_str("# ");
            out.push_str(key);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `sysg init [--force]`: writes `--config PATH` or ./systemg.yaml.
pub fn run(g: &Global, a: &InitArgs) -> i32 {
    let path = config_path(g);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if a.force {
        opts.create(true).truncate(true);
    } else {
        // create_new: refusing to overwrite is decided atomically by the kernel.
        opts.create_new(true);
    }
    let mut f = match opts.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            error(format!(
                "{} already exists; not overwriting it (pass --force to replace it)",
                path.display()
            ));
            return EXIT_USAGE;
        }
        Err(e) => {
            error(format!("cannot create {}: {e}", path.display()));
            return EXIT_FAILURE;
        }
    };
    let root = nix::unistd::geteuid().is_root();
    if let Err(e) = f.write_all(template(root).as_bytes()) {
        error(format!("writing {}: {e}", path.display()));
        return EXIT_FAILURE;
    }
    println!("wrote {}; check it with `sysg validate`", path.display());
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemg.yaml");
        std::fs::write(&path, TEMPLATE).unwrap();
        let cfg = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["setup", "web", "worker"]);
        assert_eq!(
            cfg.service("web").map(|s| s.tags.clone()),
            Some(vec!["web".into()])
        );
        let web = cfg.service("web").unwrap();
        assert_eq!(
            web.sandbox.protect_system,
            crate::sandbox::ProtectSystem::Strict
        );
        assert!(web.sandbox.no_new_privileges && web.sandbox.memory_deny_write_execute);
    }

    /// Without root the mount keys are commented out (with a note) and nothing else changes;
    /// the result still loads, with the filters that need no root kept.
    #[test]
    fn without_root_the_mount_keys_are_commented_out() {
        assert_eq!(template(true), TEMPLATE);
        let text = template(false);
        for key in MOUNT_KEYS {
            assert!(
                text.contains(&format!("# {key}")),
                "{key} not commented out"
            );
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with(key)),
                "{key} still active"
            );
        }
        assert_eq!(text.matches(NOT_ROOT_NOTE).count(), 1);
        assert_eq!(text.lines().count(), TEMPLATE.lines().count() + 1);
        let cfg = crate::config::load_str(&text, std::path::Path::new("/x/systemg.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let web = cfg.service("web").unwrap();
        assert_eq!(
            web.sandbox.protect_system,
            crate::sandbox::ProtectSystem::No
        );
        assert!(!web.sandbox.private_devices && !web.sandbox.protect_control_groups);
        assert!(web.sandbox.no_new_privileges && web.sandbox.memory_deny_write_execute);
        assert!(!web.sandbox.system_call_filter.is_empty());
    }

    /// The commented-out lines of the sandbox are valid too once uncommented.
    #[test]
    fn the_commented_sandbox_lines_validate_uncommented() {
        let text = TEMPLATE
            .replace(
                "# read_write_paths: [\"/var/lib/web\"]",
                "read_write_paths: [\"/var/lib\"]",
            )
            .replace("# private_tmp: true", "private_tmp: true");
        let cfg = crate::config::load_str(&text, std::path::Path::new("/x/systemg.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let web = cfg.service("web").unwrap();
        assert!(web.sandbox.private_tmp);
        assert_eq!(
            web.sandbox.read_write_paths,
            vec![std::path::PathBuf::from("/var/lib")]
        );
    }
}
