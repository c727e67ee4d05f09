//! The certificate authorities that https probes and webhooks trust: the PEM file named by
//! `$SSL_CERT_FILE` when it is set (the variable OpenSSL, curl and Python honour too), else the
//! system's CA bundle wherever the distribution keeps it (so a company CA installed with
//! `update-ca-certificates` works), else Mozilla's roots built into the binary. Read once, at
//! the first https request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ureq::tls::{Certificate, PemItem, RootCerts};

/// Where distributions keep the system's bundle of trusted CAs.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // macOS, the BSDs
];

/// The roots to trust (see the module documentation).
pub fn roots() -> RootCerts {
    static ROOTS: OnceLock<RootCerts> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let env = std::env::var_os("SSL_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            choose(env.as_deref(), SYSTEM_BUNDLES)
        })
        .clone()
}

/// `env` if it can be read, else the first readable bundle, else the built-in roots.
fn choose(env: Option<&Path>, bundles: &[&str]) -> RootCerts {
    if let Some(path) = env {
        match load(path) {
            Ok(roots) => return roots,
            Err(e) => tracing::warn!(
                "SSL_CERT_FILE={}: {e}; trusting the system's CAs instead",
                path.display()
            ),
        }
    }
    bundles
        .iter()
        .find_map(|b| load(Path::new(b)).ok())
        .unwrap_or(RootCerts::WebPki)
}

/// The certificates of the PEM file at `path`.
pub fn load(path: &Path) -> Result<RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(r: &RootCerts) -> Option<usize> {
        match r {
            RootCerts::Specific(c) => Some(c.len()),
            _ => None,
        }
    }

    #[test]
    fn the_environment_wins_then_the_system_then_the_built_in_roots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let pem = cert.cert.pem();
        std::fs::write(&ca, format!("{pem}{pem}")).expect("write");
        let bundle = ca.to_str().expect("utf-8");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").expect("write");
        let missing = dir.path().join("missing.pem");

        assert_eq!(count(&choose(Some(&ca), &[])), Some(2));
        // An unusable SSL_CERT_FILE falls back to the system's bundle (with a warning).
        assert_eq!(count(&choose(Some(&junk), &[bundle])), Some(2));
        assert_eq!(
            count(&choose(None, &["/nonexistent/bundle", bundle])),
            Some(2)
        );
        assert!(matches!(
            choose(Some(&missing), &["/nonexistent/bundle"]),
            RootCerts::WebPki
        ));
        assert_eq!(load(&junk).err().as_deref(), Some("no certificate in it"));
    }
}
