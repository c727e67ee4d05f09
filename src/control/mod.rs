//! Control socket: wire protocol, server and client.
