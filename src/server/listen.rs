//! Listening sockets, one per worker and address, bound with `SO_REUSEPORT` so the kernel
//! spreads new connections evenly over the workers. (Workers sharing one socket do not share
//! the work: whichever wakes first drains the whole accept queue.)
//!
//! `SO_REUSEPORT` only groups sockets of the same user; a second gateway started by that user on
//! the same address would join the group rather than fail to bind.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per socket before accepting.
const BACKLOG: i32 = 1024;

/// Binds `addr` once per worker: `listeners[worker]`. A port of 0 is chosen by the first bind
/// and shared by the rest.
pub fn bind_per_worker(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<TcpListener>> {
    let first = bind_reusable(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = Vec::with_capacity(workers);
    listeners.push(first);
    for _ in 1..workers {
        listeners.push(bind_reusable(bound)?);
    }
    Ok(listeners)
}

fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
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
    fn an_address_held_by_a_plain_socket_is_refused() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        assert!(bind_per_worker(taken, 2).is_err());
    }
}
