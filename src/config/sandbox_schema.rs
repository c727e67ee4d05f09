//! The JSON Schema of a service's `sandbox:` section (see `input_schema.rs` for why these types
//! mirror what users write and are never deserialized into). The parser (`sandbox.rs`) stays
//! the authority: it also checks that paths are normalized and that group names exist.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// `sandbox:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SandboxFile {
    /// No privilege gain through setuid binaries or file capabilities (`NoNewPrivileges=`).
    pub no_new_privileges: Option<bool>,
    /// Own /tmp and /var/tmp, removed when the service stops.
    pub private_tmp: Option<bool>,
    /// A minimal /dev (no physical devices).
    pub private_devices: Option<bool>,
    /// true: /usr and /boot read-only; full: also /etc; strict: the whole file system but
    /// /dev, /proc, /sys and `read_write_paths`.
    pub protect_system: Option<ProtectSystemValue>,
    /// true: /home, /root and /run/user inaccessible; read-only; tmpfs: empty.
    pub protect_home: Option<ProtectHomeValue>,
    /// Absolute paths the service may write (under `protect_system: strict` too).
    pub read_write_paths: Option<Vec<AbsolutePath>>,
    /// Absolute paths made read-only.
    pub read_only_paths: Option<Vec<AbsolutePath>>,
    /// Absolute paths made inaccessible.
    pub inaccessible_paths: Option<Vec<AbsolutePath>>,
    /// /proc/sys, /sys and friends read-only.
    pub protect_kernel_tunables: Option<bool>,
    /// No kernel module loading.
    pub protect_kernel_modules: Option<bool>,
    /// /sys/fs/cgroup read-only.
    pub protect_control_groups: Option<bool>,
    /// Socket families allowed (`AF_UNIX`, `AF_INET`, ...), or denied when every entry starts
    /// with `~`.
    #[schemars(length(min = 1))]
    pub restrict_address_families: Option<Vec<AddressFamily>>,
    /// System calls in systemd's syntax: names or `@groups`, `~` to deny, in order.
    #[schemars(length(min = 1))]
    pub system_call_filter: Option<Vec<SyscallEntry>>,
    /// What a filtered call gets: `eperm` (fails with EPERM, the default) or `kill`.
    pub system_call_action: Option<SyscallActionValue>,
    /// No memory mapping both writable and executable.
    pub memory_deny_write_execute: Option<bool>,
}

/// `protect_system:`
pub struct ProtectSystemValue;

impl JsonSchema for ProtectSystemValue {
    fn schema_name() -> Cow<'static, str> {
        "ProtectSystem".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"enum": [true, false, "full", "strict"]})
    }
}

/// `protect_home:`
pub struct ProtectHomeValue;

impl JsonSchema for ProtectHomeValue {
    fn schema_name() -> Cow<'static, str> {
        "ProtectHome".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"enum": [true, false, "read-only", "tmpfs"]})
    }
}

/// `system_call_action:`
pub struct SyscallActionValue;

impl JsonSchema for SyscallActionValue {
    fn schema_name() -> Cow<'static, str> {
        "SyscallAction".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"enum": ["eperm", "kill"]})
    }
}

/// An absolute path.
pub struct AbsolutePath;

impl JsonSchema for AbsolutePath {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "AbsolutePath".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^/"})
    }
}

/// An `AF_*` name, optionally after `~`.
pub struct AddressFamily;

impl JsonSchema for AddressFamily {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "AddressFamily".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^~?[Aa][Ff]_[A-Za-z0-9]+$"})
    }
}

/// A system call filter entry: `name`, `@group`, either after `~`.
pub struct SyscallEntry;

impl JsonSchema for SyscallEntry {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "SyscallEntry".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^~?(@[a-z-]+|[a-z_][a-z0-9_]*)$"})
    }
}
