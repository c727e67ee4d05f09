//! `sockets:` (socket activation): the listening sockets a service receives as in
//! sd_listen_fds(3), parsed and checked with positions.
//!
//! Pure parts (the address syntax, the overlap rule, the privileged-port rule) are plain
//! functions; the one probe of the host (`in_use_problems`, a trial bind) is kept apart so that
//! `sysg validate` and `sysg start` can run it while a running supervisor's reload does not
//! (the supervisor holds the addresses itself).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::node::{self, Pos};
use super::reader::{Ctx, Field};
use super::{DiagKind, Diagnostic};

/// Longest `name:` (systemd's `FileDescriptorName=` limit).
const MAX_FDNAME: usize = 255;
/// Longest path of a Unix socket (`sun_path` holds 108 bytes with the final NUL).
const MAX_UNIX_PATH: usize = 107;

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "address")]
pub enum ListenAddr {
    /// A TCP stream socket (`127.0.0.1:8080`, `[::]:80`, `tcp:…`).
    Tcp(SocketAddr),
    /// A UDP datagram socket (`udp:0.0.0.0:53`).
    Udp(SocketAddr),
    /// A Unix stream socket at this absolute path (`unix:/run/api.sock`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The port of an IP socket.
    pub fn port(&self) -> Option<u16> {
        match self {
            ListenAddr::Tcp(a) | ListenAddr::Udp(a) => Some(a.port()),
            ListenAddr::Unix(_) => None,
        }
    }

    /// As systemd's `Listen` property wants it: (`Stream`|`Datagram`, address).
    pub fn systemd_listen(&self) -> (&'static str, String) {
        match self {
            ListenAddr::Tcp(a) => ("Stream", a.to_string()),
            ListenAddr::Udp(a) => ("Datagram", a.to_string()),
            ListenAddr::Unix(p) => ("Stream", p.to_string_lossy().into_owned()),
        }
    }

    /// Whether two sockets cannot both be bound: the same Unix path, or the same protocol and
    /// port on addresses that overlap (equal, or one of them a wildcard: `[::]` also covers
    /// IPv4, as Linux binds it dual-stack).
    pub fn overlaps(&self, other: &ListenAddr) -> bool {
        match (self, other) {
            (ListenAddr::Unix(a), ListenAddr::Unix(b)) => a == b,
            (ListenAddr::Tcp(a), ListenAddr::Tcp(b)) | (ListenAddr::Udp(a), ListenAddr::Udp(b)) => {
                a.port() == b.port() && a.port() != 0 && ips_overlap(a.ip(), b.ip())
            }
            _ => false,
        }
    }
}

fn ips_overlap(a: IpAddr, b: IpAddr) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.is_unspecified() || y.is_unspecified(),
        // A dual-stack `[::]` takes the IPv4 port as well.
        (IpAddr::V6(x), IpAddr::V4(_)) | (IpAddr::V4(_), IpAddr::V6(x)) => x.is_unspecified(),
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Udp(a) => write!(f, "udp:{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One entry of `sockets:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ListenSocket {
    pub listen: ListenAddr,
    /// Its name in `LISTEN_FDNAMES` (default: the service name).
    pub name: String,
}

/// Parse a `listen:` value. Relative Unix paths resolve against `base`.
pub fn parse_listen(text: &str, base: &Path) -> Result<ListenAddr, String> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("`unix:` needs a path, like unix:/run/api.sock".into());
        }
        if path.starts_with('@') {
            return Err(
                "abstract Unix sockets (`unix:@name`) are not supported; use a path".into(),
            );
        }
        let p = base.join(path);
        if p.as_os_str().len() > MAX_UNIX_PATH {
            return Err(format!(
                "the socket path {} is longer than {MAX_UNIX_PATH} bytes, the limit of a Unix socket address",
                p.display()
            ));
        }
        return Ok(ListenAddr::Unix(p));
    }
    let (udp, rest) = match text.strip_prefix("udp:") {
        Some(r) => (true, r),
        None => (false, text.strip_prefix("tcp:").unwrap_or(text)),
    };
    let addr: SocketAddr = rest.parse().map_err(|_| {
        if rest.parse::<u16>().is_ok() {
            format!(
                "{text:?} has no host: write \"0.0.0.0:{rest}\" (all IPv4 addresses) or \"[::]:{rest}\" (all addresses)"
            )
        } else {
            format!(
                "invalid address {text:?}; expected host:port (\"127.0.0.1:8080\", \"[::]:80\"), \"udp:HOST:PORT\" or \"unix:/PATH\""
            )
        }
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{text:?}: port 0 would pick a different port at every bind; name the port"
        ));
    }
    Ok(if udp {
        ListenAddr::Udp(addr)
    } else {
        ListenAddr::Tcp(addr)
    })
}

/// Why `name` cannot be an entry of `LISTEN_FDNAMES` (systemd's rule: printable ASCII, no
/// `:`, at most 255 characters).
pub fn fdname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_FDNAME {
        Some("it is longer than 255 characters")
    } else if !name.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b':') {
        Some("use printable ASCII without spaces or `:`")
    } else {
        None
    }
}

/// A parsed socket with the position of its `listen:` (for conflicts between services).
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub socket: ListenSocket,
    pub pos: Pos,
    pub path: String,
}

/// Build `sockets:` of service `service`; problems go to `ctx`. Every valid entry also goes
/// to `out` with its position (even when another entry is invalid), for `check_across`.
pub(crate) fn sockets(
    ctx: &mut Ctx,
    f: &Field,
    service: &str,
    out: &mut Vec<Placed>,
) -> Option<Vec<ListenSocket>> {
    let items = f.seq(ctx)?;
    let mut ok = true;
    for item in items {
        let Some(mut m) = item.map_as(ctx, "a mapping with `listen` (and `name`)") else {
            ok = false;
            continue;
        };
        let listen = m.require(
            ctx,
            "listen",
            "the address to listen on, like \"127.0.0.1:8080\"",
        );
        let name = m.take("name");
        m.finish(ctx);
        let addr = listen.as_ref().and_then(|l| {
            let text = l.text(ctx)?;
            match parse_listen(&text, &ctx.base_dir) {
                Ok(a) => Some(a),
                Err(e) => l.error(ctx, e),
            }
        });
        let fdname = match &name {
            Some(n) => n.text(ctx).and_then(|s| match fdname_problem(&s) {
                None => Some(s),
                Some(why) => n.error(ctx, format!("invalid socket name {s:?} ({why})")),
            }),
            // A service name is always a valid name ([A-Za-z0-9_.-]).
            None => Some(service.to_string()),
        };
        let (Some(addr), Some(fdname), Some(listen)) = (addr, fdname, listen) else {
            ok = false;
            continue;
        };
        if let Some(first) = out.iter().find(|p| p.socket.listen.overlaps(&addr)) {
            listen.error::<()>(
                ctx,
                format!(
                    "{addr} overlaps {} (line {}), already in this list",
                    first.socket.listen, first.pos.line
                ),
            );
            ok = false;
            continue;
        }
        out.push(Placed {
            socket: ListenSocket {
                listen: addr,
                name: fdname,
            },
            pos: listen.pos(),
            path: listen.path.clone(),
        });
    }
    ok.then(|| out.iter().map(|p| p.socket.clone()).collect())
}

/// Two services listening on overlapping addresses: reported at the later one.
pub(crate) fn check_across(ctx: &mut Ctx, services: &[(&str, &[Placed])]) {
    for (i, (_, placed)) in services.iter().enumerate() {
        for p in placed.iter() {
            let earlier = services[..i].iter().find_map(|(other, theirs)| {
                theirs
                    .iter()
                    .find(|q| q.socket.listen.overlaps(&p.socket.listen))
                    .map(|q| (other, q))
            });
            if let Some((other, q)) = earlier {
                ctx.err(
                    p.pos,
                    format!(
                        "{}: {} is also a socket of service `{other}` ({}, line {}); two services cannot listen on one address",
                        p.path, p.socket.listen, q.socket.listen, q.pos.line
                    ),
                );
            }
        }
    }
}

/// The lowest port an unprivileged process may bind (`net.ipv4.ip_unprivileged_port_start`,
/// 1024 when unreadable).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Ports below `start` for a supervisor that is not root: (service, index, message).
pub fn privileged_ports(
    services: &[(String, Vec<ListenSocket>)],
    root: bool,
    start: u16,
    who: &str,
) -> Vec<(String, usize, String)> {
    if root {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (svc, socks) in services {
        for (i, s) in socks.iter().enumerate() {
            if let Some(port) = s.listen.port().filter(|p| *p < start) {
                out.push((
                    svc.clone(),
                    i,
                    format!(
                        "port {port} is privileged (below {start}), and the supervisor that binds it runs as {who}: run the supervisor as root (`sudo sysg --sys ...`) or use a port of {start} or above"
                    ),
                ));
            }
        }
    }
    out
}

/// Try to bind `addr` once (then release it): `Err` says why it cannot be bound now.
pub fn try_bind(addr: &ListenAddr) -> Result<(), std::io::Error> {
    match addr {
        ListenAddr::Tcp(a) => std::net::TcpListener::bind(a).map(drop),
        ListenAddr::Udp(a) => std::net::UdpSocket::bind(a).map(drop),
        ListenAddr::Unix(p) => {
            // A file there that nothing answers on is a stale socket, which the bind
            // replaces; anything that answers is in use.
            match std::os::unix::net::UnixStream::connect(p) {
                Ok(_) => Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE)),
                Err(_) if p.exists() => match std::fs::symlink_metadata(p) {
                    Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => Ok(()),
                    _ => Err(std::io::Error::from_raw_os_error(libc::EEXIST)),
                },
                Err(_) => match p.parent() {
                    Some(dir) if !dir.is_dir() => {
                        Err(std::io::Error::from_raw_os_error(libc::ENOENT))
                    }
                    _ => Ok(()),
                },
            }
        }
    }
}

/// The host-dependent checks of every `sockets:` entry of `cfg`, with positions (read again
/// from the file): ports an unprivileged supervisor (`root` false, described as `who`) cannot
/// bind, and, with `probe`, addresses another program holds now (a trial bind).
pub fn host_problems(cfg: &super::Config, root: bool, who: &str, probe: bool) -> Vec<Diagnostic> {
    let tree = std::fs::read_to_string(&cfg.path)
        .ok()
        .and_then(|src| node::parse(&src).ok());
    let at = |svc: &str, i: usize| {
        tree.as_ref()
            .and_then(|t| locate_listen(t, svc, i))
            .unwrap_or(Pos { line: 0, column: 0 })
    };
    let diag = |svc: &str, i: usize, message: String| {
        let p = at(svc, i);
        Diagnostic {
            kind: DiagKind::Config,
            file: cfg.path.clone(),
            line: p.line,
            column: p.column,
            message: format!("services.{svc}.sockets[{i}].listen: {message}"),
        }
    };
    let all: Vec<(String, Vec<ListenSocket>)> = cfg
        .services
        .iter()
        .filter(|s| !s.sockets.is_empty())
        .map(|s| (s.name.clone(), s.sockets.clone()))
        .collect();
    let mut out: Vec<Diagnostic> = privileged_ports(&all, root, unprivileged_port_start(), who)
        .into_iter()
        .map(|(svc, i, m)| diag(&svc, i, m))
        .collect();
    if probe {
        for (svc, socks) in &all {
            for (i, s) in socks.iter().enumerate() {
                if out.iter().any(|d| {
                    d.message
                        .starts_with(&format!("services.{svc}.sockets[{i}]"))
                }) {
                    continue;
                }
                if let Err(e) = try_bind(&s.listen) {
                    let why = match e.raw_os_error() {
                        Some(libc::EADDRINUSE) => "is in use by another program".to_string(),
                        Some(libc::EADDRNOTAVAIL) => "is not an address of this host".to_string(),
                        Some(libc::EEXIST) => "exists and is not a socket".to_string(),
                        _ => format!("cannot be bound: {e}"),
                    };
                    out.push(diag(svc, i, format!("{} {why}", s.listen)));
                }
            }
        }
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}

/// What the systemd backend cannot do with `sockets:` (systemd 252: one socket unit per
/// service, with one `FileDescriptorName=`, activating one service unit), with positions:
/// sockets of one service with different names, and a rolling or blue-green deployment.
pub fn systemd_problems(cfg: &super::Config) -> Vec<Diagnostic> {
    let tree = std::fs::read_to_string(&cfg.path)
        .ok()
        .and_then(|src| node::parse(&src).ok());
    let mut out = Vec::new();
    let mut push = |pos: Option<Pos>, message: String| {
        let p = pos.unwrap_or(Pos { line: 0, column: 0 });
        out.push(Diagnostic {
            kind: DiagKind::Config,
            file: cfg.path.clone(),
            line: p.line,
            column: p.column,
            message,
        });
    };
    for svc in cfg.services.iter().filter(|s| !s.sockets.is_empty()) {
        let first = &svc.sockets[0].name;
        if let Some(i) = svc.sockets.iter().position(|s| s.name != *first) {
            push(
                tree.as_ref().and_then(|t| locate_listen(t, &svc.name, i)),
                format!(
                    "services.{}.sockets[{i}]: on the systemd backend every socket of a service shares one name (one socket unit, one FileDescriptorName=), but `{first}` and `{}` differ; give them the same `name:` or use --backend process",
                    svc.name, svc.sockets[i].name
                ),
            );
        }
        if svc
            .deployment
            .as_ref()
            .is_some_and(|d| d.strategy.side_by_side())
        {
            push(
                tree.as_ref().and_then(|t| {
                    super::privileged::locate(t, &svc.name, &["deployment", "strategy"])
                }),
                format!(
                    "services.{}.deployment.strategy: a rolling or blue-green deployment cannot share `sockets:` on the systemd backend (a socket unit passes its sockets to one service unit only); use `strategy: immediate` (a restart refuses no connection either: they wait in the socket) or --backend process",
                    svc.name
                ),
            );
        }
    }
    out
}

/// Position of `services.<svc>.sockets[i].listen`, or of the nearest key found on the way.
fn locate_listen(root: &node::Node, svc: &str, i: usize) -> Option<Pos> {
    let at = super::privileged::locate(root, svc, &["sockets"])?;
    let item = entry_value(root, svc)
        .and_then(|s| match &s.value {
            node::Kind::Map(kv) => kv
                .iter()
                .find(|(k, _)| matches!(&k.value, node::Kind::Str(n) if n == "sockets"))
                .map(|(_, v)| v),
            _ => None,
        })
        .and_then(|v| match &v.value {
            node::Kind::Seq(items) => items.get(i),
            _ => None,
        });
    let listen = item.and_then(|it| match &it.value {
        node::Kind::Map(kv) => kv
            .iter()
            .find(|(k, _)| matches!(&k.value, node::Kind::Str(n) if n == "listen"))
            .map(|(_, v)| node::pos(v)),
        _ => None,
    });
    Some(listen.unwrap_or(at))
}

fn entry_value<'a>(root: &'a node::Node, svc: &str) -> Option<&'a node::Node> {
    let find = |n: &'a node::Node, key: &str| match &n.value {
        node::Kind::Map(kv) => kv
            .iter()
            .find(|(k, _)| matches!(&k.value, node::Kind::Str(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    };
    find(find(root, "services")?, svc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ListenAddr, String> {
        parse_listen(s, Path::new("/etc/app"))
    }

    #[test]
    fn addresses_parse_as_in_the_issue() {
        assert_eq!(
            p("127.0.0.1:8080"),
            Ok(ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            p("[::]:80"),
            Ok(ListenAddr::Tcp("[::]:80".parse().unwrap()))
        );
        assert_eq!(
            p("tcp:0.0.0.0:81"),
            Ok(ListenAddr::Tcp("0.0.0.0:81".parse().unwrap()))
        );
        assert_eq!(
            p("udp:0.0.0.0:53"),
            Ok(ListenAddr::Udp("0.0.0.0:53".parse().unwrap()))
        );
        assert_eq!(
            p("unix:/run/api.sock"),
            Ok(ListenAddr::Unix("/run/api.sock".into()))
        );
        assert_eq!(
            p("unix:run/api.sock"),
            Ok(ListenAddr::Unix("/etc/app/run/api.sock".into()))
        );
        assert_eq!(
            p("udp:[::1]:53").map(|a| a.systemd_listen()),
            Ok(("Datagram", "[::1]:53".to_string()))
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        assert!(p("8080").unwrap_err().contains("has no host"));
        assert!(p("localhost:80").unwrap_err().contains("invalid address"));
        assert!(p("127.0.0.1:99999")
            .unwrap_err()
            .contains("invalid address"));
        assert!(p("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(p("unix:").unwrap_err().contains("needs a path"));
        assert!(p("unix:@abstract").unwrap_err().contains("abstract"));
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(p(&long).unwrap_err().contains("107 bytes"));
    }

    #[test]
    fn overlap_follows_the_kernel() {
        let a = |s: &str| p(s).unwrap();
        assert!(a("127.0.0.1:80").overlaps(&a("127.0.0.1:80")));
        assert!(a("0.0.0.0:80").overlaps(&a("127.0.0.1:80")));
        assert!(a("[::]:80").overlaps(&a("10.0.0.1:80")));
        assert!(!a("127.0.0.1:80").overlaps(&a("127.0.0.2:80")));
        assert!(!a("127.0.0.1:80").overlaps(&a("udp:127.0.0.1:80")));
        assert!(!a("[::1]:80").overlaps(&a("127.0.0.1:80")));
        assert!(a("unix:/a").overlaps(&a("unix:/a")));
        assert!(!a("unix:/a").overlaps(&a("unix:/b")));
    }

    #[test]
    fn what_systemd_cannot_do_is_a_config_error_at_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemg.yaml");
        std::fs::write(
            &path,
            "version: \"1\"\nservices:\n  api:\n    command: \"x\"\n    sockets:\n      - listen: \"127.0.0.1:8080\"\n        name: a\n      - listen: \"127.0.0.1:8081\"\n        name: b\n    health_check:\n      command: \"true\"\n    deployment:\n      strategy: rolling\n  plain:\n    command: \"x\"\n    sockets:\n      - listen: \"127.0.0.1:8082\"\n",
        )
        .unwrap();
        let cfg = crate::config::load(&path).unwrap();
        let got: Vec<(u64, u64, String)> = systemd_problems(&cfg)
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].0, got[0].1), (8, 17));
        assert!(got[0]
            .2
            .starts_with("services.api.sockets[1]: on the systemd backend"));
        assert_eq!((got[1].0, got[1].1), (13, 7));
        assert!(got[1]
            .2
            .starts_with("services.api.deployment.strategy: a rolling"));
    }

    #[test]
    fn a_privileged_port_of_an_unprivileged_supervisor_is_reported_at_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemg.yaml");
        std::fs::write(
            &path,
            "version: \"1\"\nservices:\n  web:\n    command: \"x\"\n    sockets:\n      - listen: \"127.0.0.1:80\"\n",
        )
        .unwrap();
        let cfg = crate::config::load(&path).unwrap();
        let d = host_problems(&cfg, false, "uid 1000 (alice)", false);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].column), (6, 17));
        assert!(
            d[0].message
                .starts_with("services.web.sockets[0].listen: port 80 is privileged")
                && d[0].message.contains("runs as uid 1000 (alice)"),
            "{}",
            d[0].message
        );
        assert!(host_problems(&cfg, true, "root", false).is_empty());
    }

    #[test]
    fn config_errors_point_at_the_field() {
        let load = |y: &str| {
            crate::config::load_str(y, Path::new("/etc/app/systemg.yaml"))
                .unwrap_err()
                .0
                .into_iter()
                .map(|d| (d.line, d.column, d.message))
                .collect::<Vec<_>>()
        };
        let e = load("version: '1'\nservices:\n  b:\n    command: x\n    cron: {expression: '@daily'}\n    sockets: [{listen: '127.0.0.1:8080'}]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (6, 14));
        assert!(e[0].2.contains("not allowed on a cron job"), "{}", e[0].2);
        let e = load("version: '1'\nservices:\n  b:\n    command: x\n    sockets:\n      - listen: '127.0.0.1:8080'\n      - listen: '0.0.0.0:8080'\n");
        assert_eq!((e[0].0, e[0].1), (7, 17));
        assert!(
            e[0].2.contains("overlaps 127.0.0.1:8080 (line 6)"),
            "{}",
            e[0].2
        );
        let e = load(
            "version: '1'\nservices:\n  b:\n    command: x\n    sockets:\n      - name: http\n",
        );
        assert!(e[0].2.contains("missing `listen`"), "{}", e[0].2);
    }

    #[test]
    fn fd_names_follow_systemd() {
        assert_eq!(fdname_problem("http"), None);
        assert!(fdname_problem("a:b").is_some());
        assert!(fdname_problem("a b").is_some());
        assert!(fdname_problem("").is_some());
        assert!(fdname_problem(&"x".repeat(256)).is_some());
    }

    #[test]
    fn privileged_ports_only_for_an_unprivileged_supervisor() {
        let socks = vec![(
            "web".to_string(),
            vec![
                ListenSocket {
                    listen: p("0.0.0.0:80").unwrap(),
                    name: "http".into(),
                },
                ListenSocket {
                    listen: p("0.0.0.0:8080").unwrap(),
                    name: "alt".into(),
                },
            ],
        )];
        assert!(privileged_ports(&socks, true, 1024, "root").is_empty());
        let found = privileged_ports(&socks, false, 1024, "uid 1000");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0.as_str(), found[0].1), ("web", 0));
        assert!(
            found[0].2.contains("port 80 is privileged"),
            "{}",
            found[0].2
        );
        assert!(privileged_ports(&socks, false, 80, "uid 1000").is_empty());
    }
}

/// Listen addresses as written: `host:port` (TCP, `tcp:` optional), `[v6]:port`,
/// `udp:host:port`, `unix:/path` (the JSON Schema's pattern; the parser is the authority).
const LISTEN_PATTERN: &str =
    "^\\s*(unix:[^@\\s].*|((tcp|udp):)?([0-9.]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5})\\s*$";
/// `LISTEN_FDNAMES` entries: printable ASCII without spaces or `:`.
const FDNAME_PATTERN: &str = "^[!-9;-~]{1,255}$";

/// One entry of `sockets:` as written, for the JSON Schema.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SocketFile {
    /// Where to listen: "127.0.0.1:8080" (TCP), "[::]:80", "udp:0.0.0.0:53",
    /// "unix:/run/api.sock".
    #[schemars(extend("pattern" = LISTEN_PATTERN, "examples" = ["127.0.0.1:8080", "[::]:80", "udp:0.0.0.0:53", "unix:/run/api.sock"]))]
    pub listen: String,
    /// The socket's name in `LISTEN_FDNAMES`. Default: the service name.
    #[schemars(extend("pattern" = FDNAME_PATTERN))]
    pub name: Option<String>,
}
