//! TCP listeners for the centre's HTTP services (store, viewer, auth), optionally bound to one
//! network device first.
//!
//! On the centre's router each segment is a VRF (`kzv-upload`, `kzv-reference`, …). An address of a
//! VRF can only be bound by a socket bound to that VRF (`SO_BINDTODEVICE`), and such a socket
//! answers only traffic of that VRF: the store listens on the upload segment and nowhere else, the
//! viewer and the sign-on on the reference segment. We do not set `net.ipv4.tcp_l3mdev_accept=1`
//! instead: it would let every wildcard listener answer in every VRF. Since Linux 5.7 binding an
//! unbound socket to a device needs no privilege.
//!
//! [`tls::TlsListener`] serves axum over TLS (the registry's site API, the backup replica).

use std::net::SocketAddr;

pub mod tls;

/// A listener that could not be opened; says which address and device.
#[derive(Debug, thiserror::Error)]
#[error("listening on {what}: {source}")]
pub struct ListenError {
    /// `ADDR` or `ADDR on device DEV`.
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

/// Listens on `addr`, bound to `device` first unless it is empty.
pub fn listen(addr: SocketAddr, device: &str) -> Result<tokio::net::TcpListener, ListenError> {
    let what = if device.is_empty() { addr.to_string() } else { format!("{addr} on device {device}") };
    let err = |source| ListenError { what: what.clone(), source };
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if !device.is_empty() {
        socket.bind_device(Some(device.as_bytes())).map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::listen;

    #[tokio::test]
    async fn a_listener_is_bound_to_its_device_or_the_error_names_address_and_device() {
        // `lo` exists everywhere: the listener is bound to it.
        let listener = listen("127.0.0.1:0".parse().unwrap(), "lo").expect("listening on lo");
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        accepted.expect("accepting on lo");
        connected.expect("connecting over lo");
        // A device that does not exist: the error names the address and the device.
        let e =
            listen("127.0.0.1:0".parse().unwrap(), "kzv-nonesuch").expect_err("no such device").to_string();
        assert!(e.contains("127.0.0.1:0 on device kzv-nonesuch"), "{e}");
        // No device: an ordinary listener.
        listen("127.0.0.1:0".parse().unwrap(), "").expect("listening without a device");
    }
}
