//! Environment entries that name the service's own pid (`LISTEN_PID` of socket activation,
//! `WATCHDOG_PID` of the watchdog): the pid is known only after the fork (and, with
//! `isolation.pid`, after the second one), so each entry is laid out before the fork as
//! `NAME=` followed by room for the digits, and the child writes its own pid into every one
//! just before its exec, with nothing but async-signal-safe steps.

/// Digits of the largest pid (`pid_max` is at most 2^22) fit in 10.
const PID_DIGITS: usize = 10;

/// The entries, each a NUL-terminated `NAME=` buffer with room for the digits.
#[derive(Default)]
pub struct PidEntries {
    /// The buffers (on the heap: their addresses stay put when `self` moves).
    bufs: Vec<Box<[u8]>>,
    /// For each buffer, where its digits start and a pointer to it, taken once (the child
    /// writes through them and may not allocate).
    slots: Vec<(usize, *mut u8)>,
}

impl PidEntries {
    /// Add an entry for `name` (one without `=` or NUL).
    pub fn push(&mut self, name: &str) {
        let at = name.len() + 1;
        let mut buf = Vec::with_capacity(at + PID_DIGITS + 1);
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'=');
        buf.resize(at + PID_DIGITS + 1, 0);
        let mut buf = buf.into_boxed_slice();
        self.slots.push((at, buf.as_mut_ptr()));
        self.bufs.push(buf);
    }

    /// Whether `name` has an entry here (it then wins over any other value of the name).
    pub fn names(&self, name: &[u8]) -> bool {
        self.bufs
            .iter()
            .any(|b| b.len() > name.len() && b.starts_with(name) && b[name.len()] == b'=')
    }

    /// The entries for `envp` (valid while `self` lives; until `fill`, their values are
    /// empty).
    pub fn pointers(&self) -> impl Iterator<Item = *const libc::c_char> + '_ {
        self.slots.iter().map(|&(_, p)| p.cast_const().cast())
    }

    /// Write `pid` as the value of every entry.
    ///
    /// # Safety
    /// No other reference to the buffers may be in use (in the forked child, nothing else
    /// runs). Async-signal-safe: no allocation, no lock.
    pub unsafe fn write(&self, pid: u32) {
        let mut digits = [0u8; PID_DIGITS];
        let mut len = 0;
        let mut rest = pid;
        loop {
            digits[len] = b'0' + (rest % 10) as u8;
            len += 1;
            rest /= 10;
            if rest == 0 || len == PID_DIGITS {
                break;
            }
        }
        for &(at, buf) in &self.slots {
            let out = buf.add(at);
            for k in 0..len {
                *out.add(k) = digits[len - 1 - k];
            }
            *out.add(len) = 0;
        }
    }

    /// In the child, just before exec: its own pid into every entry.
    ///
    /// # Safety
    /// Call only in the forked child (see `write`).
    pub unsafe fn fill(&self) {
        self.write(libc::getpid() as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn values(e: &PidEntries) -> Vec<String> {
        e.pointers()
            // SAFETY: the pointers are NUL-terminated buffers `e` owns.
            .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_entry_gets_the_digits_and_a_shorter_pid_leaves_no_trace() {
        let mut e = PidEntries::default();
        e.push("LISTEN_PID");
        e.push("WATCHDOG_PID");
        assert_eq!(values(&e), ["LISTEN_PID=", "WATCHDOG_PID="]);
        // SAFETY: nothing else reads the buffers meanwhile.
        unsafe { e.write(4_194_304) };
        assert_eq!(values(&e), ["LISTEN_PID=4194304", "WATCHDOG_PID=4194304"]);
        // SAFETY: as above.
        unsafe { e.write(7) };
        assert_eq!(values(&e), ["LISTEN_PID=7", "WATCHDOG_PID=7"]);
        // SAFETY: as above.
        unsafe { e.write(0) };
        assert_eq!(values(&e), ["LISTEN_PID=0", "WATCHDOG_PID=0"]);
        // SAFETY: as above.
        unsafe { e.write(u32::MAX) };
        assert_eq!(
            values(&e),
            ["LISTEN_PID=4294967295", "WATCHDOG_PID=4294967295"]
        );
        assert!(e.names(b"WATCHDOG_PID"));
        assert!(!e.names(b"WATCHDOG"));
        assert!(!e.names(b"WATCHDOG_USEC"));
    }

    #[test]
    fn a_forked_child_writes_its_own_pid() {
        let mut e = PidEntries::default();
        e.push("WATCHDOG_PID");
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only fills the entries, writes them to the pipe and _exits
        // (async-signal-safe calls on memory laid out before the fork).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                use std::os::fd::AsRawFd;
                e.fill();
                let p = e.pointers().next().unwrap_or(std::ptr::null());
                let n = libc::strlen(p);
                libc::write(w.as_raw_fd(), p.cast(), n);
                libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut got = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(got, format!("WATCHDOG_PID={child}"));
                // The parent's copy is untouched.
                assert_eq!(values(&e), ["WATCHDOG_PID="]);
            }
        }
    }
}
