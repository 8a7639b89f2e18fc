//! Listening sockets, one per worker and address, bound with `SO_REUSEPORT` so the kernel
//! spreads new connections evenly over the workers. (Workers sharing one socket do not share
//! the work: whichever wakes first drains the whole accept queue.)
//!
//! `SO_REUSEPORT` alone would let the group join listeners another process of the same user
//! already has on the address: a second gateway started by mistake would quietly take a share
//! of the first one's connections. So the address is claimed first by a socket without it,
//! which cannot bind while anything listens there, and the group binds beside the claim.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per socket before accepting.
const BACKLOG: i32 = 1024;

/// Binds `addr` once per worker: `listeners[worker]`. A port of 0 is chosen by the claim and
/// shared by every worker. Fails with `AddrInUse` when anything already listens on `addr`.
pub fn bind_per_worker(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<TcpListener>> {
    let claim = claim(addr)?;
    let bound = claim
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the claimed address is not an IP address"))?;
    // Held until the group listens, so no other socket can take the address in between.
    (0..workers.max(1)).map(|_| bind_reusable(bound)).collect()
}

/// A bound, not listening, socket without `SO_REUSEPORT`. `SO_REUSEADDR` lets the group bind
/// beside it (and a restart bind over connections in `TIME_WAIT`), but not beside a listener.
fn claim(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = new_socket(addr)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn new_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_listens_on_the_port_the_first_one_got() {
        let listeners = bind_per_worker("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != 0 && ports.iter().all(|&p| p == ports[0]));
    }

    #[test]
    fn a_second_group_on_the_same_address_is_refused() {
        let first = bind_per_worker("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let taken = first[0].local_addr().unwrap();
        let err = bind_per_worker(taken, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        // The first group still accepts.
        std::net::TcpStream::connect(taken).unwrap();
        drop(first);
        assert!(bind_per_worker(taken, 2).is_ok(), "free again once closed");
    }

    #[test]
    fn an_address_held_by_a_plain_socket_is_refused() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        assert!(bind_per_worker(taken, 2).is_err());
    }
}
