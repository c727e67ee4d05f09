//! Hand-written blocking proxies for the parts of systemd's D-Bus API the backend uses.
//!
//! Written by hand (not generated, no `zbus_systemd`) so they carry exactly the members systemd
//! 252 has and nothing couples the crate to a systemd release. Property reads go through these
//! proxies with caching off: a cache would add match rules and a stream on the call connection,
//! which must stay calls-only (signals are drained on their own connection, see `watch`).

use zbus::zvariant::{OwnedObjectPath, Value};

/// One row of `ListUnitsByPatterns`: name, description, load, active, sub state, following,
/// unit path, job id, job type, job path.
pub type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// `org.freedesktop.systemd1.Manager`
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    gen_blocking = true,
    blocking_name = "ManagerProxy"
)]
pub trait Manager {
    /// Create and start a transient unit; returns the job path.
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    /// Start a loaded unit; returns the job path.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Send a signal to the processes of a unit (`whom`: main, control or all).
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;

    /// Stop a unit (its stop logic, then SIGKILL after its timeout); returns the job path.
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Hold a reference on a unit for this client: it stays loaded (not garbage-collected)
    /// while the connection lives.
    fn ref_unit(&self, name: &str) -> zbus::Result<()>;

    /// Drop a reference taken with `RefUnit` or `AddRef=true`.
    fn unref_unit(&self, name: &str) -> zbus::Result<()>;

    /// Forget a unit's failed state (and let it be garbage-collected).
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    /// The object path of a loaded unit; `NoSuchUnit` otherwise.
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// Ask systemd to broadcast unit and job signals to this client.
    fn subscribe(&self) -> zbus::Result<()>;

    /// Units whose state is in `states` (all when empty) and name matches one of `patterns`.
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<UnitRow>>;

    /// systemd's version string.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// The manager's own cgroup, relative to the cgroup2 mount (empty or `/` for the system
    /// manager, `/user.slice/…/user@<uid>.service` for a user's).
    #[zbus(property)]
    fn control_group(&self) -> zbus::Result<String>;
}

/// `org.freedesktop.systemd1.Unit`
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    gen_blocking = true,
    blocking_name = "UnitProxy"
)]
pub trait Unit {
    /// `active`, `inactive`, `failed`, `activating`, ...
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;

    /// Finer state (`running`, `exited`, `dead`, ...).
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;

    /// The pending job, `(0, "/")` when none.
    #[zbus(property)]
    fn job(&self) -> zbus::Result<(u32, OwnedObjectPath)>;
}

/// `org.freedesktop.systemd1.Service`
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false,
    gen_blocking = true,
    blocking_name = "ServiceProxy"
)]
pub trait Service {
    /// The main process, 0 when none.
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;

    /// `success`, `exit-code`, `signal`, `timeout`, ...
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}
