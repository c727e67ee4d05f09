//! `tcp` probes: a connection to `host:port` opens within the timeout.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{describe_io, ProbeError};

/// Probe: connect to `host:port`, trying each resolved address until one accepts.
pub fn probe(host: &str, port: u16, timeout: Duration) -> Result<String, ProbeError> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ProbeError::Resolve(format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ProbeError::Resolve(format!("{host}: no address")));
    }
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::Timeout(timeout));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(format!("connected to {addr}")),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = Some(ProbeError::Timeout(timeout))
            }
            Err(e) => last = Some(ProbeError::Connect(describe_io(&e))),
        }
    }
    Err(last.unwrap_or(ProbeError::Timeout(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn open_and_closed_ports() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(probe("127.0.0.1", port, Duration::from_secs(2)).is_ok());
        assert!(probe("localhost", port, Duration::from_secs(2)).is_ok());
        drop(l);
        let e = probe("127.0.0.1", port, Duration::from_secs(2));
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn unresolvable_host_fails() {
        let e = probe("no-such-host.invalid", 80, Duration::from_secs(2));
        assert!(matches!(e, Err(ProbeError::Resolve(_))), "{e:?}");
    }
}
