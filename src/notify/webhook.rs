//! Webhooks: an HTTP POST of a JSON event per selected lifecycle event (docs/json.md), with
//! a timeout per attempt, bounded retries with exponential backoff, and an HMAC-SHA256
//! signature header when a secret is set. Each endpoint has a dedicated sender thread that
//! drains a bounded queue: a slow or dead endpoint only ever delays its own deliveries, never
//! supervision nor other endpoints, and when its queue is full new events are dropped (and
//! logged).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde::Serialize;

use super::NotifyError;
use crate::config::schema::Webhook;
use crate::core::Notice;
use crate::spec::ExitStatus;

/// Deliveries waiting for the sender thread at most.
pub const QUEUE: usize = 256;

/// Delay before the first retry; doubles per retry up to `MAX_RETRY_DELAY`.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Upper bound of the delay between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The header carrying `sha256=<hex hmac of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Systemg-Signature";

/// The JSON body of a webhook (documented in docs/json.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// `start`, `ready`, `exit`, `failure`, `restart`, `stop`, `unhealthy`, `deploy`.
    pub event: String,
    pub project: String,
    pub service: String,
    pub pid: Option<u32>,
    pub exit_status: Option<ExitStatus>,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    pub message: String,
    /// The sending machine.
    pub hostname: String,
    /// `deploy` events only: `{ok, strategy, slot}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<crate::core::DeployOutcome>,
}

impl Payload {
    /// The payload for `notice` of `project`, stamped now.
    pub fn new(project: &str, notice: &Notice) -> Payload {
        Payload {
            event: notice.kind.as_str().to_string(),
            project: project.to_string(),
            service: notice.unit.clone(),
            pid: notice.pid,
            exit_status: notice.exit_status,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            message: notice.message.clone(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            deploy: notice.deploy.clone(),
        }
    }
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 2 * bytes.len());
    hex.push_str("sha256=");
    for b in bytes.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// One POST to make (with its retries).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub hook: Webhook,
    pub event: String,
    pub body: Vec<u8>,
}

/// The handle of one endpoint's sender thread.
pub struct Sender {
    tx: SyncSender<Delivery>,
    /// Closed by the thread when it has sent everything and the queue is closed.
    done: Receiver<()>,
}

impl Sender {
    /// Start a sender thread.
    pub fn spawn() -> Result<Sender, NotifyError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || {
                sender_loop(rx);
                drop(done_tx);
            })
            .map_err(NotifyError::Thread)?;
        Ok(Sender { tx, done })
    }

    /// Close the queue and wait until `deadline` for what is queued to be sent. True when
    /// everything went out.
    pub fn finish(self, deadline: Instant) -> bool {
        drop(self.tx);
        let left = deadline.saturating_duration_since(Instant::now());
        matches!(
            self.done.recv_timeout(left),
            Err(mpsc::RecvTimeoutError::Disconnected)
        )
    }

    /// Queue a delivery without ever blocking.
    pub fn send(&self, d: Delivery) -> Result<(), NotifyError> {
        match self.tx.try_send(d) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(d)) => Err(NotifyError::QueueFull {
                url: d.hook.url,
                event: d.event,
            }),
            Err(TrySendError::Disconnected(_)) => Err(NotifyError::SenderGone),
        }
    }
}

fn sender_loop(rx: Receiver<Delivery>) {
    while let Ok(d) = rx.recv() {
        match deliver(&d) {
            Ok(code) => {
                tracing::debug!(url = %d.hook.url, event = %d.event, "webhook delivered (HTTP {code})")
            }
            Err(e) => {
                tracing::warn!(url = %d.hook.url, event = %d.event, "webhook not delivered: {e}")
            }
        }
    }
}

/// POST `d`, retrying failures (`retries` more attempts, exponential backoff). Returns the
/// final HTTP status, or the last error.
pub fn deliver(d: &Delivery) -> Result<u16, String> {
    let mut delay = RETRY_DELAY;
    let mut attempt = 0u32;
    loop {
        let last = post(d);
        match &last {
            Ok(code) if (200..300).contains(code) => return Ok(*code),
            Ok(code) => tracing::debug!(url = %d.hook.url, "webhook answered HTTP {code}"),
            Err(e) => tracing::debug!(url = %d.hook.url, "webhook attempt failed: {e}"),
        }
        if attempt >= d.hook.retries {
            return match last {
                Ok(code) => Err(format!(
                    "HTTP {code} after {} attempt(s)",
                    attempt.saturating_add(1)
                )),
                Err(e) => Err(format!(
                    "{e} after {} attempt(s)",
                    attempt.saturating_add(1)
                )),
            };
        }
        attempt += 1;
        // The sender thread is dedicated to webhooks: waiting here delays only them.
        std::thread::sleep(delay);
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// One attempt.
fn post(d: &Delivery) -> Result<u16, String> {
    let url = &d.hook.url;
    let mut req = crate::health::http::outbound_agent(d.hook.timeout, url)
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Systemg-Event", &d.event);
    if let Some(secret) = &d.hook.secret {
        req = req.header(SIGNATURE_HEADER, &signature(secret, &d.body));
    }
    match req.send(&d.body[..]) {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => Err(crate::health::http::describe(e, d.hook.timeout, url).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// A server answering `codes` in turn, one per connection; returns its url and a
    /// channel of (headers, body) per request.
    fn server(codes: Vec<u16>) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", l.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for code in codes {
                let Ok((s, _)) = l.accept() else { return };
                let mut r = BufReader::new(s);
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let _ = tx.send((head, body));
                let mut s = r.into_inner();
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        (url, rx)
    }

    fn delivery(url: String, retries: u32, secret: Option<&str>) -> Delivery {
        Delivery {
            hook: Webhook {
                url,
                events: Vec::new(),
                timeout: Duration::from_secs(2),
                retries,
                secret: secret.map(str::to_string),
            },
            event: "exit".into(),
            body: br#"{"event":"exit"}"#.to_vec(),
        }
    }

    #[test]
    fn retries_with_backoff_until_success() {
        let (url, rx) = server(vec![500, 503, 200]);
        let t0 = Instant::now();
        assert_eq!(deliver(&delivery(url, 3, Some("k"))), Ok(200));
        // Two waits: 0.5 s then 1 s.
        assert!(
            t0.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        let reqs: Vec<_> = rx.try_iter().collect();
        assert_eq!(reqs.len(), 3);
        let (head, body) = &reqs[0];
        assert_eq!(body, br#"{"event":"exit"}"#);
        let want = format!(
            "x-systemg-signature: {}",
            signature("k", br#"{"event":"exit"}"#)
        );
        assert!(head.to_ascii_lowercase().contains(&want), "{head}");
        assert!(head.to_ascii_lowercase().contains("x-systemg-event: exit"));
    }

    #[test]
    fn gives_up_after_the_retries() {
        let (url, rx) = server(vec![500, 500]);
        let r = deliver(&delivery(url, 1, None));
        assert_eq!(r, Err("HTTP 500 after 2 attempt(s)".into()));
        let reqs: Vec<_> = rx.try_iter().collect();
        assert_eq!(reqs.len(), 2);
        assert!(!reqs[0]
            .0
            .to_ascii_lowercase()
            .contains("x-systemg-signature"));
    }

    #[test]
    fn full_queue_drops_instead_of_blocking() {
        let (tx, _rx) = mpsc::sync_channel(1);
        let (_done_tx, done) = mpsc::channel();
        let s = Sender { tx, done };
        let d = delivery("http://127.0.0.1:1/".into(), 0, None);
        assert!(s.send(d.clone()).is_ok());
        let t0 = Instant::now();
        assert!(matches!(s.send(d), Err(NotifyError::QueueFull { .. })));
        assert!(t0.elapsed() < Duration::from_millis(100));
    }
}
