//! Zero-copy forwarding with splice(2): bytes move socket -> pipe -> socket inside the
//! kernel, never through a userspace buffer (HAProxy's `option splice-*`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Bytes moved per splice call; the pipe is grown to hold them. Measured with
/// tests/bench/proxy.sh, iperf3 through 256 KiB pipes ran about a tenth faster than through
/// the default 64 KiB ones.
pub(crate) const CHUNK: usize = 256 * 1024;

/// The least capacity worth splicing through. The kernel charges pipe capacity to the
/// user: past `fs.pipe-user-pages-soft` (64 MiB by default) a process without
/// CAP_SYS_RESOURCE (a container's default) gets one-page pipes, which would crawl; the
/// caller copies through a buffer instead.
const MIN_CAPACITY: libc::c_int = 64 * 1024;

/// A non-blocking pipe that carries one direction of one connection.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints that pipe2 fills on success.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are fresh descriptors that nothing else owns.
        #[allow(unsafe_code)]
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe means fewer calls per megabyte; if the kernel refuses, the size it
        // has is checked below.
        // SAFETY: F_SETPIPE_SZ and F_GETPIPE_SZ on a descriptor we own take an int argument
        // (none for the latter) and touch no memory of ours.
        #[allow(unsafe_code)]
        let capacity = unsafe {
            libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int);
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        if capacity < MIN_CAPACITY {
            return Err(io::Error::other(format!(
                "pipe capacity {capacity} bytes: over the user's pipe allowance"
            )));
        }
        Ok(Pipe { read, write })
    }

    /// Moves up to [`CHUNK`] bytes from socket `from` into the pipe; 0 means end of stream.
    pub(crate) fn fill(&self, from: RawFd) -> io::Result<usize> {
        splice(from, self.write.as_raw_fd(), CHUNK)
    }

    /// Moves up to `len` bytes from the pipe to socket `to`.
    pub(crate) fn drain(&self, to: RawFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_raw_fd(), to, len)
    }
}

/// Empty pipes kept for the next connections: creating two pipes per connection costs
/// about ten system calls, which shows in the connection rate.
#[derive(Debug, Default)]
pub(crate) struct PipePool {
    free: Mutex<Vec<Pipe>>,
}

/// Pipes kept at most; the rest are closed. Idle pipes count against the user's pipe
/// allowance too: 64 of 256 KiB are a quarter of the default soft limit.
const POOL_MAX: usize = 64;

impl PipePool {
    pub(crate) fn take(&self) -> io::Result<Pipe> {
        let pooled = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.map_or_else(Pipe::new, Ok)
    }

    /// Keeps `pipe` for reuse; only call with a pipe that holds no bytes.
    pub(crate) fn put(&self, pipe: Pipe) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < POOL_MAX {
            free.push(pipe);
        }
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are allowed for pipes and sockets; the descriptors are open
    // for the call (owned by the caller's streams and this pipe); splice touches no memory
    // of ours.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    /// The pool keeps and hands out pipes without looking into them: descriptors of
    /// /dev/null stand in, so the tests spend none of the user's pipe allowance.
    fn stand_in() -> Pipe {
        let null = || OwnedFd::from(File::open("/dev/null").unwrap());
        Pipe {
            read: null(),
            write: null(),
        }
    }

    fn kept(pool: &PipePool) -> usize {
        pool.free.lock().unwrap().len()
    }

    #[test]
    fn a_pipe_put_back_is_the_next_one_taken() {
        let pool = PipePool::default();
        let (first, second) = (stand_in(), stand_in());
        let second_fd = second.read.as_raw_fd();
        pool.put(first);
        pool.put(second);
        assert_eq!(pool.take().unwrap().read.as_raw_fd(), second_fd);
        assert_eq!(kept(&pool), 1);
    }

    #[test]
    fn the_pool_keeps_no_more_pipes_than_its_cap() {
        let pool = PipePool::default();
        for _ in 0..POOL_MAX + 3 {
            pool.put(stand_in());
        }
        assert_eq!(kept(&pool), POOL_MAX);
        let taken: Vec<Pipe> = (0..POOL_MAX).map(|_| pool.take().unwrap()).collect();
        assert_eq!(kept(&pool), 0);
        drop(taken);
    }

    #[test]
    fn an_empty_pool_makes_a_pipe_that_carries_bytes_between_sockets() {
        let pool = PipePool::default();
        let pipe = pool.take().unwrap();
        let (mut client, from) = UnixStream::pair().unwrap();
        let (to, mut backend) = UnixStream::pair().unwrap();
        client.write_all(b"hello").unwrap();
        assert_eq!(pipe.fill(from.as_raw_fd()).unwrap(), 5);
        assert_eq!(pipe.drain(to.as_raw_fd(), 5).unwrap(), 5);
        let mut got = [0u8; 5];
        backend.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
    }
}
