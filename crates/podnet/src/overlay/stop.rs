//! How the data path's threads are stopped: each waits on its device or socket and on one
//! eventfd together, so a stop wakes it wherever it waits.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// A stop signal for the data path's threads.
#[derive(Debug)]
pub(crate) struct Stop {
    event: EventFd,
    stopped: AtomicBool,
}

impl Stop {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Stop {
            event: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
            stopped: AtomicBool::new(false),
        })
    }

    /// Tells every thread to stop, waking those that wait.
    pub(crate) fn trigger(&self) {
        self.stopped.store(true, Ordering::Release);
        // Only fails when the counter would overflow, and it is never read.
        let _ = self.event.write(1);
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Runs `step` (one non-blocking read and what follows it) until told to stop, waiting
    /// for `fd` to turn readable whenever `step` would block. Ends with the first error
    /// other than "would block" or "interrupted".
    pub(crate) fn run_reads(
        &self,
        fd: BorrowedFd<'_>,
        mut step: impl FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        while !self.stopped() {
            match step() {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if !self.wait(fd, PollFlags::POLLIN)? {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Runs `attempt` (one non-blocking write) until it does not block, waiting for `fd`
    /// to turn writable in between and trying again when interrupted. `None`: told to stop
    /// meanwhile (or the wait itself failed).
    pub(crate) fn retry_write<T>(
        &self,
        fd: BorrowedFd<'_>,
        mut attempt: impl FnMut() -> io::Result<T>,
    ) -> Option<io::Result<T>> {
        loop {
            match attempt() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if !matches!(self.wait(fd, PollFlags::POLLOUT), Ok(true)) {
                        return None;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                done => return Some(done),
            }
        }
    }

    /// Waits until `fd` is ready for `events`: true then, false when told to stop.
    pub(crate) fn wait(&self, fd: BorrowedFd<'_>, events: PollFlags) -> io::Result<bool> {
        loop {
            if self.stopped() {
                return Ok(false);
            }
            let mut fds = [
                PollFd::new(fd, events),
                PollFd::new(self.event.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => return Ok(!self.stopped()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_a_thread_waiting_on_a_socket_that_never_gets_data() {
        let stop = std::sync::Arc::new(Stop::new().unwrap());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.wait(socket.as_fd(), PollFlags::POLLIN))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.trigger();
        assert!(!waiter.join().unwrap().unwrap());
        assert!(stop.stopped());
    }
}
