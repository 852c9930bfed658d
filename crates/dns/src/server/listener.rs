//! One listen address: its TCP acceptor task and UDP worker threads, stopped together.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Handle;
use tokio::task::JoinSet;

use super::responder::Responder;
use super::{tcp, udp};

/// One listen address served over UDP and TCP; its tasks and threads stop when it is
/// dropped (the UDP threads within `udp::STOP_CHECK`).
#[derive(Debug)]
pub(crate) struct Listener {
    tcp: JoinSet<()>,
    udp_stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.udp_stop.store(true, Ordering::Relaxed);
    }
}

impl Listener {
    /// Binds `addr` (TCP first, then UDP, read by one thread per two cores) and serves it
    /// with `responder`; must be called on the runtime, which runs the TCP tasks and
    /// forwarded queries. The error is the socket's: the caller names the address.
    pub(crate) fn bind(addr: SocketAddr, responder: &Arc<Responder>) -> io::Result<Listener> {
        let tcp = tcp::bind(addr)?;
        // Port 0: UDP takes the port TCP got.
        let bound = tcp.local_addr()?;
        let workers = udp::workers(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let udp = udp::bind(bound, workers)?;
        let mut tasks = JoinSet::new();
        tasks.spawn(tcp::serve(tcp, responder.clone()));
        let mut listener = Listener {
            tcp: tasks,
            udp_stop: Arc::new(AtomicBool::new(false)),
            udp_threads: Vec::new(),
        };
        for socket in udp {
            let stop = listener.udp_stop.clone();
            let thread = udp::spawn(socket, responder.clone(), stop, Handle::current())?;
            listener.udp_threads.push(thread);
        }
        Ok(listener)
    }

    /// Stops serving and returns once the sockets are closed: the TCP acceptor has ended
    /// and every UDP thread has returned. (A plain drop stops them too, without waiting.)
    pub(crate) async fn close(mut self) {
        self.udp_stop.store(true, Ordering::Relaxed);
        self.tcp.shutdown().await;
        let threads = std::mem::take(&mut self.udp_threads);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}
