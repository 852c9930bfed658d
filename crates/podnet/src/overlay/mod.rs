//! VXLAN mode's I/O: the TAP device and the UDP sockets around the sans-IO [`Vtep`] and the
//! software offloads ([`crate::offload`]).
//!
//! Each direction runs on a thread of its own ([`transmit`]: device to sockets, [`receive`]:
//! socket to device), so one's system calls never wait for the other's and neither pays an
//! async runtime's wakeups; they share the VTEP behind a lock taken once per batch. The
//! async component keeps the VTEP's table in line with membership and stops the threads.
//!
//! The TAP is opened with a virtio-net header and TSO: the kernel hands over TCP frames of up
//! to 64 KiB, which are cut into MTU-sized segments here and leave in one UDP GSO send; on
//! the way in, UDP GRO hands over runs of VXLAN packets, whose TCP segments are joined again
//! before the TAP gets them. Where the kernel lacks one of these, the data path works
//! without it, and says so once in the log.
//!
//! The UDP checksum is set (UDP GSO needs it; RFC 7348 allows it); DF is set over IPv4
//! (path-MTU discovery is on by default) and IPv6 never fragments on the way, so nothing is
//! fragmented. Frames arrive on a UDP socket bound to the VXLAN port, so the kernel answers
//! no "port unreachable".

mod receive;
mod sockets;
mod stop;
mod transmit;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ipnet::IpNet;
use nix::sys::socket::{setsockopt, sockopt};
use tokio::sync::mpsc;

use crate::PodNetError;
use crate::batch::{RECEIVE_BATCH, SEND_BATCH};
use crate::metrics::Counters;
use crate::offload::virtio;
use crate::plan;
use crate::vxlan::{DropReason, Vtep};
use stop::Stop;

/// Frames the kernel queues on the device for us to read.
const DEVICE_QUEUE: u32 = 10_000;
/// Where a frame read from the device starts in a batch buffer: behind its virtio-net
/// header, whose last bytes the VXLAN header then overwrites.
const FRAME_AT: usize = virtio::HEADER_LEN;

/// What VXLAN mode needs to know at bind.
#[derive(Debug, Clone)]
pub(crate) struct OverlaySettings {
    pub(crate) device: String,
    pub(crate) vni: u32,
    pub(crate) port: u16,
    /// This node's underlay address, IPv4 or IPv6.
    pub(crate) local: IpAddr,
    pub(crate) address: IpNet,
    pub(crate) mtu: u32,
}

/// What the data path's threads and the component share.
#[derive(Debug)]
struct Shared {
    vtep: Mutex<Vtep>,
    counters: Counters,
    stop: Stop,
}

impl Shared {
    /// The VTEP, locked (a thread that panicked holding it left it whole: it is only ever
    /// changed by single calls).
    fn vtep(&self) -> MutexGuard<'_, Vtep> {
        self.vtep.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The overlay's device and sockets, carried by two threads; dropping it stops them and
/// removes the device.
#[derive(Debug)]
pub(crate) struct Overlay {
    pub(crate) index: u32,
    pub(crate) settings: OverlaySettings,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Why a thread stopped before it was told to.
    failures: mpsc::UnboundedReceiver<io::Error>,
}

impl Overlay {
    /// Creates the device (up, addressed, its MTU set, offloads on where the kernel has
    /// them), binds the sockets and starts the threads.
    pub(crate) fn bind(settings: OverlaySettings, counters: Counters) -> Result<Self, PodNetError> {
        let IpAddr::V4(address) = settings.address.addr() else {
            return Err(PodNetError::Unsupported("an IPv6 pod range in VXLAN mode"));
        };
        let device_error = |e: io::Error| PodNetError::Device(settings.device.clone(), e);
        let mtu = u16::try_from(settings.mtu).unwrap_or(u16::MAX);
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(&settings.device)
                .layer(tun_rs::Layer::L2)
                .mac_addr(plan::device_mac(address.into()))
                .mtu(mtu)
                .offload(offload)
                // Room for the bursts TCP sends while the thread is busy sending: with the
                // default 1000 frames the kernel drops them on the device (TX dropped).
                .tx_queue_len(DEVICE_QUEUE)
                .ipv4(address, settings.address.prefix_len(), None)
                .enable(true)
                .build_sync()
        };
        let (device, offload) = match build(true) {
            Ok(device) => (device, true),
            Err(error) => {
                tracing::warn!(%error, "the TAP device takes no virtio-net header: no TSO, one frame per read and write");
                (build(false).map_err(device_error)?, false)
            }
        };
        device.set_nonblocking(true).map_err(device_error)?;
        let index = device.if_index().map_err(device_error)?;
        let device = Arc::new(device);

        let listen = SocketAddr::new(settings.local, settings.port);
        let socket_error = |e: io::Error| PodNetError::Socket(listen, e);
        let receiver = sockets::udp_socket(listen).map_err(socket_error)?;
        let gro = setsockopt(&receiver, sockopt::UdpGroSegment, &true);
        if let Err(error) = &gro {
            tracing::warn!(%error, "no UDP GRO: VXLAN packets are received one by one");
        }
        let senders = sockets::bind_senders(settings.local).map_err(socket_error)?;
        // Probed by setting a socket default the sends override anyway.
        let udp_gso = setsockopt(&senders[0], sockopt::UdpGsoSegment, &0).is_ok();
        if !udp_gso {
            tracing::warn!("no UDP GSO: segments are sent one datagram each");
        }
        tracing::info!(
            device = settings.device,
            address = %settings.address,
            mtu = settings.mtu,
            %listen,
            vni = settings.vni,
            receive_batch = RECEIVE_BATCH,
            send_batch = SEND_BATCH,
            tso = offload,
            udp_gso,
            udp_gro = gro.is_ok(),
            source_ports = ?senders.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.port()).collect::<Vec<_>>(),
            "VXLAN overlay up"
        );

        let shared = Arc::new(Shared {
            vtep: Mutex::new(Vtep::new(settings.vni)),
            counters,
            stop: Stop::new().map_err(PodNetError::DataPath)?,
        });
        let (failed, failures) = mpsc::unbounded_channel();
        let mut overlay = Overlay {
            index,
            settings,
            shared: shared.clone(),
            threads: Vec::with_capacity(2),
            failures,
        };
        let transmitter = transmit::Transmitter::new(
            device.clone(),
            offload,
            udp_gso,
            senders,
            overlay.settings.port,
            shared.clone(),
        );
        let receiver = receive::Receiver::new(device, offload, receiver, shared);
        overlay.spawn("dockline-vxlan-tx", failed.clone(), move || {
            transmitter.run()
        })?;
        overlay.spawn("dockline-vxlan-rx", failed, move || receiver.run())?;
        Ok(overlay)
    }

    /// Starts one direction's thread; its error, if it ends with one, goes to `failed`.
    fn spawn(
        &mut self,
        name: &str,
        failed: mpsc::UnboundedSender<io::Error>,
        run: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> Result<(), PodNetError> {
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let error = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => error,
                    Err(_) => io::Error::other("a data path thread panicked"),
                };
                let _ = failed.send(error);
            })
            .map_err(PodNetError::DataPath)?;
        self.threads.push(thread);
        Ok(())
    }

    /// The VTEP, to keep its table in line with membership and to read it for status.
    pub(crate) fn vtep(&self) -> MutexGuard<'_, Vtep> {
        self.shared.vtep()
    }

    /// Waits until a data path thread fails, and says why.
    pub(crate) async fn failed(&mut self) -> io::Error {
        // Every thread holds a sender until it ends, and reports why it ends unless it
        // was stopped, which happens only when the overlay is dropped.
        self.failures
            .recv()
            .await
            .unwrap_or_else(|| io::Error::other("the data path threads ended"))
    }

    /// Drops so far, by reason name.
    pub(crate) fn drops(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .zip(self.shared.counters.drop_counts())
            .map(|(reason, count)| (reason.name().to_owned(), count))
            .collect()
    }
}

impl Drop for Overlay {
    /// Stops the threads and waits for them (they end within one batch), so the device is
    /// gone when this returns.
    fn drop(&mut self) {
        self.shared.stop.trigger();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
