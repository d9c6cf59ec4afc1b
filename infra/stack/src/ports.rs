//! Loopback port choice: the fixed ports of the local stack, or free ones for tests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Default fixed ports (all below the ephemeral range, which starts at 32768).
pub const EDGE_PORT: u16 = 8000;
pub const NGINX_PORT: u16 = 8100;
pub const FIRST_INSTANCE_PORT: u16 = 8101;
pub const POSTGRES_PORT: u16 = 15432;
pub const REDIS_PORT: u16 = 16379;
/// Cassandra's CQL (native transport) port, and its inter-node (storage) port.
pub const CASSANDRA_PORT: u16 = 19042;
pub const CASSANDRA_STORAGE_PORT: u16 = 17000;

/// Asks the kernel for a port that is free right now on 127.0.0.1.
///
/// There is a short window in which another process could take it; tests accept that
/// in exchange for knowing every port before anything starts (nginx needs them up front).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// True if something accepts TCP connections on 127.0.0.1:`port`.
pub fn is_listening(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}
