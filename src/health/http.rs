//! `url` probes: HTTP GET; a 2xx or 3xx answer (redirects are not followed) within the
//! timeout is healthy. `https://` checks the server's certificate against the roots of
//! `tls.rs`.

use std::time::Duration;

use super::{describe_io, ProbeError};

/// A ureq agent for one request bounded by `timeout` as a whole (connect, send, answer):
/// statuses are returned (not errors), redirects not followed, no proxy (probes check
/// services of this machine; webhooks use `outbound_agent`).
pub fn agent(timeout: Duration) -> ureq::Agent {
    agent_trusting(timeout, super::tls::roots())
}

/// `agent`, trusting `roots` for https.
pub fn agent_trusting(timeout: Duration, roots: ureq::tls::RootCerts) -> ureq::Agent {
    agent_via(timeout, roots, None)
}

/// A webhook's agent for `url`: like `agent`, but through the proxy the environment names
/// (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, honouring `NO_PROXY`), as curl would, unless
/// `url` is on this machine (a local receiver never goes through a proxy).
pub fn outbound_agent(timeout: Duration, url: &str) -> ureq::Agent {
    let proxy = if is_local(url) {
        None
    } else {
        ureq::Proxy::try_from_env()
    };
    agent_via(timeout, super::tls::roots(), proxy)
}

/// Whether `url`'s host is this machine: `localhost` or a loopback address.
pub fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn agent_via(
    timeout: Duration,
    roots: ureq::tls::RootCerts,
    proxy: Option<ureq::Proxy>,
) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .user_agent(concat!("systemg/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A TLS failure in words. rustls prints some certificate problems as Rust debug values
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`): those are named here.
pub fn describe_tls(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let E::InvalidCertificate(c) = e else {
        return e.to_string();
    };
    let words = match c {
        C::UnknownIssuer => "it is not signed by a trusted certificate authority (self-signed, or \
                             its CA is not among the trusted roots)"
            .to_string(),
        C::BadSignature => "its signature does not verify".to_string(),
        C::Expired => "it has expired".to_string(),
        C::NotValidYet => "it is not valid yet (check the clocks)".to_string(),
        C::NotValidForName => "it is not valid for the host name of the URL".to_string(),
        C::BadEncoding => "it is not a well-formed certificate".to_string(),
        C::UnhandledCriticalExtension => {
            "it has a critical extension that is not understood".to_string()
        }
        C::UnknownRevocationStatus => "its revocation status is unknown".to_string(),
        C::Revoked => "it was revoked".to_string(),
        C::Other(o) => {
            // webpki's errors display as their variant name.
            let name = o.0.to_string();
            match name.as_str() {
                "CaUsedAsEndEntity" => "it is a CA certificate (basicConstraints CA:TRUE), which \
                                        cannot identify a server; serve a leaf certificate \
                                        signed by that CA"
                    .to_string(),
                "EndEntityUsedAsCa" => {
                    "a server (leaf) certificate was used to sign another certificate".to_string()
                }
                "RequiredEkuNotFound" => {
                    "it is not meant for TLS servers (no serverAuth extended key usage)".to_string()
                }
                "UnsupportedCertVersion" => "its X.509 version is not supported".to_string(),
                "BadDer" | "BadDerTime" => "it is not a well-formed certificate".to_string(),
                "PathLenConstraintViolated" => {
                    "its chain is longer than a CA's path length allows".to_string()
                }
                "SignatureAlgorithmMismatch" | "UnsupportedSignatureAlgorithm" => {
                    "it is signed with an unsupported algorithm".to_string()
                }
                _ => format!("it was refused ({name})"),
            }
        }
        other => return format!("the server's certificate is refused: {other}"),
    };
    format!("the server's certificate is refused: {words}")
}

/// What a ureq error means, for a probe's or a webhook's detail.
pub fn describe(e: ureq::Error, timeout: Duration, url: &str) -> ProbeError {
    match e {
        ureq::Error::Timeout(_) => ProbeError::Timeout(timeout),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ProbeError::Timeout(timeout)
        }
        // rustls reports a refused handshake (a certificate that does not check out) as
        // invalid data on the connection.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData && is_https(url) => {
            ProbeError::Request(format!("TLS: {io}"))
        }
        ureq::Error::Io(io) => ProbeError::Connect(describe_io(&io)),
        ureq::Error::HostNotFound => ProbeError::Resolve(format!("host not found in {url}")),
        ureq::Error::BadUri(u) => ProbeError::Request(format!("bad url {u}")),
        ureq::Error::Tls(what) => ProbeError::Request(format!("TLS: {what}")),
        ureq::Error::Rustls(e) => ProbeError::Request(format!("TLS: {}", describe_tls(&e))),
        other => ProbeError::Request(other.to_string()),
    }
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Probe: GET `url`.
pub fn probe(url: &str, timeout: Duration) -> Result<String, ProbeError> {
    probe_with(&agent(timeout), url, timeout)
}

/// `probe` through `agent`.
fn probe_with(agent: &ureq::Agent, url: &str, timeout: Duration) -> Result<String, ProbeError> {
    let resp = agent
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

    /// An https server for `localhost` with a fresh self-signed certificate, answering every
    /// request with 204; returns its url and the certificate to trust.
    fn https_server() -> (String, ureq::tls::Certificate<'static>) {
        use std::sync::Arc;
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let config = Arc::new(config);
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut buf = [0u8; 1024];
                // A client that rejects the certificate ends the handshake here.
                if tls.read(&mut buf).is_ok() {
                    let _ = tls.write_all(
                        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        });
        (
            format!("https://localhost:{port}/health"),
            ureq::tls::Certificate::from_der(cert.as_ref()).to_owned(),
        )
    }

    #[test]
    fn https_checks_the_certificate() {
        let (url, cert) = https_server();
        let t = Duration::from_secs(5);
        let trusting = agent_trusting(t, ureq::tls::RootCerts::new_with_certs(&[cert]));
        assert_eq!(
            probe_with(&trusting, &url, t).ok().as_deref(),
            Some("HTTP 204")
        );
        // Not signed by anyone the built-in roots know: refused, and the detail says why.
        let public = agent_trusting(t, ureq::tls::RootCerts::WebPki);
        let e = probe_with(&public, &url, t).expect_err("an unknown issuer must be refused");
        let e = e.to_string();
        assert!(e.starts_with("TLS: ") && e.contains("certificate"), "{e}");
        assert!(!e.contains("Other(") && !e.contains("OtherError"), "{e}");
    }

    #[test]
    fn tls_certificate_problems_are_said_in_words() {
        use rustls::{CertificateError, Error, OtherError};
        // What webpki's errors look like to rustls: displayed as their variant's name.
        #[derive(Debug)]
        struct Webpki(&'static str);
        impl std::fmt::Display for Webpki {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Webpki {}
        let webpki = |name| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(std::sync::Arc::new(
                Webpki(name),
            ))))
        };
        let e = describe_tls(&webpki("CaUsedAsEndEntity"));
        assert_eq!(
            e,
            "the server's certificate is refused: it is a CA certificate (basicConstraints \
             CA:TRUE), which cannot identify a server; serve a leaf certificate signed by that CA"
        );
        let e = describe_tls(&Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(
            e.contains("not signed by a trusted certificate authority"),
            "{e}"
        );
        let e = describe_tls(&Error::InvalidCertificate(CertificateError::Expired));
        assert!(e.contains("expired"), "{e}");
    }

    #[test]
    fn local_urls() {
        for url in [
            "http://localhost/x",
            "https://LOCALHOST:8443/",
            "http://app.localhost:80",
            "http://127.0.0.1:9/hook",
            "http://127.1.2.3/",
            "http://[::1]:8080/a",
            "http://user:pw@127.0.0.1/",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://hooks.slack.com/services/x",
            "http://10.0.0.1/",
            "http://[2001:db8::1]/",
            "http://localhost.example.com/",
            "http://127.0.0.1.example.com/",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }

    #[test]
    fn refused() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let e = probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2));
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("connection refused")
        );
    }
}
