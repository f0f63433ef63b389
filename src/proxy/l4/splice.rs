//! Zero-copy TCP relay on Linux: `splice(2)` moves bytes socket -> pipe -> socket inside
//! the kernel, so plain TCP pools do not copy bulk payload through user space.
//!
//! A pipe costs six system calls to set up and tear down (pipe2, fcntl, two closes, per
//! direction), more than a short connection spends on its payload. So each direction first
//! copies through a small buffer and only switches to splice once it has carried
//! [`SPLICE_AFTER`] bytes: request/response-sized connections never create a pipe.
//!
//! This is the one module that needs `unsafe`: `pipe2`, `fcntl` and `splice` are plain
//! syscalls on file descriptors this module owns (the pipe) or borrows for the duration of
//! the call (the sockets, kept alive by the `&TcpStream`s). Readiness comes from tokio
//! (`async_io`), so the relay is as async as the buffered copy.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::pool::now_ns;

/// Bytes moved per splice call and the pipe capacity asked for.
const CHUNK: usize = 1 << 20;
/// Bytes a direction copies through user space before it switches to splice.
pub const SPLICE_AFTER: u64 = 64 * 1024;
/// The copy buffer of one direction: allocated, never zeroed (an array in the task's state
/// would be copied whole each time the connection's future moves, at spawn).
const COPY_BUF: usize = 8 * 1024;

/// A kernel pipe used as the splice buffer of one direction.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe moves more per syscall; failure (limits) just keeps the default.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(Pipe { read, write })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (owned pipe ends or
    // sockets borrowed by the caller); null offsets mean "current position", as required for
    // pipes and sockets.
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
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn shutdown_write(to: &TcpStream) {
    // SAFETY: shutdown on a socket borrowed for the call.
    unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
}

/// Moves bytes `from` -> `to` until `from` reaches EOF, then shuts down `to`'s write side
/// (half-close), stamping `activity` on progress. Returns the bytes moved.
pub async fn one_way(from: &TcpStream, to: &TcpStream, activity: &AtomicU64) -> io::Result<u64> {
    let mut total = 0u64;
    let mut buf = bytes::BytesMut::with_capacity(COPY_BUF);
    while total < SPLICE_AFTER {
        buf.clear();
        let n = from
            .async_io(Interest::READABLE, || from.try_read_buf(&mut buf))
            .await?;
        if n == 0 {
            shutdown_write(to);
            return Ok(total);
        }
        activity.store(now_ns(), Ordering::Relaxed);
        let mut sent = 0;
        while sent < n {
            sent += to
                .async_io(Interest::WRITABLE, || to.try_write(&buf[sent..n]))
                .await?;
        }
        total += n as u64;
    }
    let pipe = Pipe::new()?;
    loop {
        let n = from
            .async_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK)
            })
            .await?;
        if n == 0 {
            shutdown_write(to);
            return Ok(total);
        }
        activity.store(now_ns(), Ordering::Relaxed);
        let mut left = n;
        while left > 0 {
            left -= to
                .async_io(Interest::WRITABLE, || {
                    splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
                })
                .await?;
        }
        total += n as u64;
    }
}

/// Relays both directions between two plain TCP sockets; returns bytes (client -> backend,
/// backend -> client).
pub async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    activity: &AtomicU64,
) -> io::Result<(u64, u64)> {
    tokio::try_join!(
        one_way(client, backend, activity),
        one_way(backend, client, activity)
    )
}
