//! `url` probes: HTTP GET; a 2xx or 3xx answer (redirects are not followed) within the
//! timeout is healthy. Plain `http://` only: the build carries no TLS stack, and probes
//! target local services.

use std::time::Duration;

use super::{describe_io, ProbeError};

/// A ureq agent for one request bounded by `timeout` as a whole (connect, send, answer):
/// statuses are returned (not errors), redirects not followed, no proxy from the
/// environment (probes and webhooks of local services must not go through one).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
        .user_agent(concat!("systemg/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// What a ureq error means, for a probe's or a webhook's detail.
pub fn describe(e: ureq::Error, timeout: Duration, url: &str) -> ProbeError {
    match e {
        ureq::Error::Timeout(_) => ProbeError::Timeout(timeout),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ProbeError::Timeout(timeout)
        }
        ureq::Error::Io(io) => ProbeError::Connect(describe_io(&io)),
        ureq::Error::HostNotFound => ProbeError::Resolve(format!("host not found in {url}")),
        ureq::Error::BadUri(u) => ProbeError::Request(format!("bad url {u}")),
        ureq::Error::TlsRequired | ureq::Error::Tls(_) => ProbeError::Unsupported(
            "https is not supported by this build; use an http:// url or a tcp probe".into(),
        ),
        other => ProbeError::Request(other.to_string()),
    }
}

/// Probe: GET `url`.
pub fn probe(url: &str, timeout: Duration) -> Result<String, ProbeError> {
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(ProbeError::Unsupported(
            "https is not supported by this build; use an http:// url or a tcp probe".into(),
        ));
    }
    let resp = agent(timeout)
        .get(url)
        .call()
        .map_err(|e| describe(e, timeout, url))?;
    let code = resp.status().as_u16();
    if (200..400).contains(&code) {
        Ok(format!("HTTP {code}"))
    } else {
        Err(ProbeError::Status(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    /// A server on 127.0.0.1:0 answering every connection with `response` (or never
    /// answering when `None`); returns its base url.
    fn server(response: Option<&'static str>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                match response {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes());
                    }
                    // Hang: keep the connection open, say nothing.
                    None => held.push(s),
                }
            }
        });
        format!("http://{addr}/health")
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    const MOVED: &str =
        "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const FAIL: &str =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    #[test]
    fn two_and_three_hundreds_are_healthy() {
        let t = Duration::from_secs(5);
        assert_eq!(
            probe(&server(Some(OK)), t).ok().as_deref(),
            Some("HTTP 200")
        );
        assert_eq!(
            probe(&server(Some(MOVED)), t).ok().as_deref(),
            Some("HTTP 302")
        );
    }

    #[test]
    fn five_hundred_is_unhealthy() {
        let e = probe(&server(Some(FAIL)), Duration::from_secs(5));
        assert!(matches!(e, Err(ProbeError::Status(500))), "{e:?}");
        assert_eq!(e.err().map(|e| e.to_string()).as_deref(), Some("HTTP 500"));
    }

    #[test]
    fn hanging_server_fails_within_the_timeout() {
        let url = server(None);
        let t0 = Instant::now();
        let e = probe(&url, Duration::from_millis(300));
        let took = t0.elapsed();
        assert!(matches!(e, Err(ProbeError::Timeout(_))), "{e:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn refused_and_unsupported() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let e = probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2));
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("connection refused")
        );
        let e = probe("https://127.0.0.1:1/", Duration::from_secs(2));
        assert!(matches!(e, Err(ProbeError::Unsupported(_))), "{e:?}");
    }
}
