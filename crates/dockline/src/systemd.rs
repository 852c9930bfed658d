//! systemd's service notifications (sd_notify(3), "READY=1" and friends) for
//! `Type=notify` units: one datagram per state change to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). Without the
//! variable, as outside systemd, every call does nothing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where the service manager listens, if it does.
#[derive(Debug)]
pub(crate) struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`; a value that names no usable socket is logged and ignored.
    pub(crate) fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        let name = name.to_string_lossy().into_owned();
        let target = Self::open(&name).inspect_err(|error| {
            tracing::warn!(socket = %name, %error, "cannot use NOTIFY_SOCKET; systemd will not hear from dockline");
        });
        Notifier {
            target: target.ok(),
        }
    }

    fn open(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
            None => SocketAddr::from_pathname(name)?,
        };
        Ok((UnixDatagram::unbound()?, addr))
    }

    /// Every component runs (again, after a reload).
    pub(crate) fn ready(&self) {
        self.send("READY=1");
    }

    /// A reload is being applied; `ready` follows when it is done, accepted or not. systemd
    /// wants the CLOCK_MONOTONIC time with it, to tell this reload from an earlier one.
    pub(crate) fn reloading(&self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }

    /// The daemon is stopping.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(error) = socket.send_to_addr(message.as_bytes(), addr) {
            tracing::warn!(%error, message, "cannot notify systemd");
        }
    }
}
