//! Socket address families by name (`AF_UNIX`) and number, for `restrict_address_families`:
//! the parser checks names against it, the process backend's filter needs the numbers and
//! systemd takes the names as written here (its own list comes from the kernel headers).

/// Every family of Linux's `<linux/socket.h>`, with its number (a stable kernel ABI).
pub const NAMES: &[(&str, i32)] = &[
    ("AF_UNIX", 1),
    ("AF_LOCAL", 1),
    ("AF_INET", 2),
    ("AF_AX25", 3),
    ("AF_IPX", 4),
    ("AF_APPLETALK", 5),
    ("AF_NETROM", 6),
    ("AF_BRIDGE", 7),
    ("AF_ATMPVC", 8),
    ("AF_X25", 9),
    ("AF_INET6", 10),
    ("AF_ROSE", 11),
    ("AF_DECnet", 12),
    ("AF_NETBEUI", 13),
    ("AF_SECURITY", 14),
    ("AF_KEY", 15),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
    ("AF_ASH", 18),
    ("AF_ECONET", 19),
    ("AF_ATMSVC", 20),
    ("AF_RDS", 21),
    ("AF_SNA", 22),
    ("AF_IRDA", 23),
    ("AF_PPPOX", 24),
    ("AF_WANPIPE", 25),
    ("AF_LLC", 26),
    ("AF_IB", 27),
    ("AF_MPLS", 28),
    ("AF_CAN", 29),
    ("AF_TIPC", 30),
    ("AF_BLUETOOTH", 31),
    ("AF_IUCV", 32),
    ("AF_RXRPC", 33),
    ("AF_ISDN", 34),
    ("AF_PHONET", 35),
    ("AF_IEEE802154", 36),
    ("AF_CAIF", 37),
    ("AF_ALG", 38),
    ("AF_NFC", 39),
    ("AF_VSOCK", 40),
    ("AF_KCM", 41),
    ("AF_QIPCRTR", 42),
    ("AF_SMC", 43),
    ("AF_XDP", 44),
    ("AF_MCTP", 45),
];

/// The table's spelling of `name` (matched without regard to case): `af_decnet` → `AF_DECnet`.
pub fn canonical(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| *n)
}

/// The number of the family `name` (any case).
pub fn number(name: &str) -> Option<i32> {
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_c_library() {
        for (name, want) in [
            ("AF_UNIX", libc::AF_UNIX),
            ("AF_INET", libc::AF_INET),
            ("AF_INET6", libc::AF_INET6),
            ("AF_NETLINK", libc::AF_NETLINK),
            ("AF_PACKET", libc::AF_PACKET),
            ("AF_DECnet", libc::AF_DECnet),
            ("AF_ALG", libc::AF_ALG),
            ("AF_VSOCK", libc::AF_VSOCK),
            ("AF_XDP", libc::AF_XDP),
        ] {
            assert_eq!(number(name), Some(want), "{name}");
        }
        assert_eq!(canonical("af_decnet"), Some("AF_DECnet"));
        assert_eq!(number("AF_NOPE"), None);
    }
}
