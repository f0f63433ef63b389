//! Buffers lent to client connections only while they are in use.
//!
//! A keep-alive connection spends most of its life waiting for its next request. Holding a
//! 4 KiB read buffer through that wait made the buffer a third of an idle connection's
//! memory; nginx likewise frees a keep-alive connection's header buffer. Here a read that
//! finds nothing (and has nothing buffered) hands its buffer back to the worker's free list
//! before it sleeps, and takes one again when woken: a `Vec` pop and push per wait, no
//! allocation, and the buffers in the list are the ones that were just in use (cache-warm).
//! Write buffers (a response head and a small body) are lent the same way for the time of
//! one answer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncRead;

/// Size of a fresh read buffer (a request head nearly always fits).
pub const SIZE: usize = 4096;
/// Buffers kept per worker: enough for the connections reading at one moment.
const KEEP: usize = 256;

/// Write buffers larger than this (a big coalesced body) are freed, not kept.
const MAX_WRITE: usize = 32 * 1024;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static FREE_WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty write buffer, from the free list if it has one.
pub fn take_write() -> Vec<u8> {
    FREE_WRITE
        .with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(512))
}

/// Returns a write buffer to the free list (emptied), unless it grew large.
pub fn give_write(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_WRITE {
        return;
    }
    buf.clear();
    FREE_WRITE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// An empty buffer with room for at least [`SIZE`] bytes, from the free list if it has one.
pub fn take() -> BytesMut {
    FREE.with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(SIZE))
}

/// Returns an empty buffer to the free list when its whole allocation is reusable (nothing
/// split off it still alive) and of the usual size; any other is freed.
pub fn give(mut buf: BytesMut) {
    if !buf.is_empty() || !buf.try_reclaim(SIZE) || buf.capacity() > 4 * SIZE {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// Reads into `buf` (which may be a lent-out placeholder of capacity 0: a buffer is taken
/// first), with room for [`SIZE`] more bytes. When nothing has arrived and `buf` holds
/// nothing, the buffer goes back to the free list while the read waits.
pub fn poll_read<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() == 0 {
        *buf = take();
    }
    buf.reserve(SIZE);
    let polled = tokio_util::io::poll_read_buf(Pin::new(io), cx, buf);
    if polled.is_pending() && buf.is_empty() {
        give(std::mem::take(buf));
    }
    polled
}

/// [`poll_read`] as a future.
pub async fn read<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read(io, buf, cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_idle_read_holds_no_buffer_and_a_woken_one_reads_into_a_reused_one() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut buf = take();
        let original = buf.as_ptr();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(poll_read(&mut server, &mut buf, &mut cx).is_pending());
        assert_eq!(buf.capacity(), 0, "the waiting read still holds its buffer");
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let n = read(&mut server, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        assert_eq!(buf.as_ptr(), original, "the lent buffer was not reused");
    }

    #[test]
    fn write_buffers_come_back_empty_and_large_ones_are_freed() {
        let mut buf = take_write();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let reused = buf.as_ptr();
        give_write(buf);
        let again = take_write();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), reused, "the write buffer was not reused");
        let mut big = again;
        big.resize(MAX_WRITE + 1, 0);
        give_write(big);
        assert!(take_write().capacity() <= MAX_WRITE);
    }

    #[test]
    fn buffers_still_shared_with_split_off_bytes_are_not_pooled() {
        let mut buf = take();
        buf.extend_from_slice(b"head");
        let head = buf.split_to(4).freeze();
        let before = FREE.with(|f| f.borrow().len());
        give(buf);
        assert_eq!(FREE.with(|f| f.borrow().len()), before);
        drop(head);
    }
}
