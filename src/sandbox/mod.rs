//! The `sandbox:` section of a service, as validated config: one type that both backends apply
//! (systemd as unit properties, the process backend in the kernel between fork and exec) and
//! that `sysg inspect` / `sysg security` describe.
//!
//! This module sits below `config` so that the parser, the backends and the exposure report
//! share one vocabulary; it holds data only, no I/O.

pub mod address_families;
pub mod exposure;
pub mod mounts;
#[cfg(target_os = "linux")]
pub mod seccomp;
pub mod syscall_groups;
pub mod view;

use std::path::PathBuf;

use serde::Serialize;

/// `sandbox:` of one service. `Sandbox::default()` is "no protection", which is what a
/// service without the section gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    /// `no_new_privileges`: `PR_SET_NO_NEW_PRIVS` / `NoNewPrivileges=`.
    pub no_new_privileges: bool,
    /// `private_tmp`: own `/tmp` and `/var/tmp`, removed when the service stops.
    pub private_tmp: bool,
    /// `private_devices`: a minimal `/dev`.
    pub private_devices: bool,
    /// `protect_system`.
    pub protect_system: ProtectSystem,
    /// `protect_home`.
    pub protect_home: ProtectHome,
    /// `read_write_paths`: absolute paths.
    pub read_write_paths: Vec<PathBuf>,
    /// `read_only_paths`: absolute paths.
    pub read_only_paths: Vec<PathBuf>,
    /// `inaccessible_paths`: absolute paths.
    pub inaccessible_paths: Vec<PathBuf>,
    /// `protect_kernel_tunables`: `/proc/sys`, `/sys` and friends read-only.
    pub protect_kernel_tunables: bool,
    /// `protect_kernel_modules`: no module loading, `/usr/lib/modules` inaccessible.
    pub protect_kernel_modules: bool,
    /// `protect_control_groups`: `/sys/fs/cgroup` read-only.
    pub protect_control_groups: bool,
    /// `restrict_address_families`: `None` = unrestricted; an allow-list of `AF_*` names, or a
    /// deny-list when written with a leading `~` (systemd's syntax).
    pub restrict_address_families: Option<AddressFamilies>,
    /// `system_call_filter`: entries in systemd's syntax (`@group`, `name`, `~` to deny), in
    /// the order written. Empty = no filter.
    pub system_call_filter: Vec<String>,
    /// `system_call_action`: what a filtered call gets (default: fails with EPERM).
    pub system_call_action: SyscallAction,
    /// `memory_deny_write_execute`: no W+X mappings.
    pub memory_deny_write_execute: bool,
}

impl Sandbox {
    /// True when no field asks for anything (the service runs unsandboxed).
    pub fn is_empty(&self) -> bool {
        self == &Sandbox::default()
    }
}

/// `protect_system:`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtectSystem {
    /// `false` or absent.
    #[default]
    No,
    /// `true`: `/usr` and `/boot` (and `/efi`) read-only.
    Yes,
    /// `full`: also `/etc`.
    Full,
    /// `strict`: the whole file system but `/dev`, `/proc`, `/sys` (and `read_write_paths`).
    Strict,
}

/// `protect_home:`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtectHome {
    /// `false` or absent.
    #[default]
    No,
    /// `true`: `/home`, `/root`, `/run/user` inaccessible.
    Yes,
    /// `read-only`.
    ReadOnly,
    /// `tmpfs`: empty tmpfs over them.
    Tmpfs,
}

/// `restrict_address_families:` in systemd's sense.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressFamilies {
    /// True for a deny-list (`["~AF_PACKET"]`), false for an allow-list.
    pub deny: bool,
    /// `AF_*` names, upper case, without the `~`.
    pub families: Vec<String>,
}

/// What a call filtered by `system_call_filter` gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallAction {
    /// Fails with `EPERM` (`SystemCallErrorNumber=EPERM`).
    #[default]
    Eperm,
    /// The process is killed with `SIGSYS` (systemd's own default).
    Kill,
}
