//! A boxed future whose heap block comes from, and returns to, the worker's free list.
//!
//! A request's future is KiBs (routing, balancing, the upstream exchange nested inside each
//! other, the answer writer). Kept inline in the connection's future, that space stays
//! allocated for the whole life of a keep-alive connection, idle or not — most of an idle
//! connection's memory. Boxed, it would cost a trip through glibc's large-chunk path per
//! request (blocks over 1 KiB miss its thread cache). [`Lent`] boxes it in a block taken
//! from a per-worker list of blocks of the same layout and gives the block back when the
//! future is dropped: per request a `Vec` pop and push; per idle connection, no
//! request-sized block.
//!
//! `unsafe` is allowed here, and only for what `Box` does inside: allocating a block for a
//! layout, writing the future into it, pinning it at that address, dropping it in place and
//! freeing the block with the same layout. The allocator API that would let `Box` take a
//! per-thread pool is not stable.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Blocks kept per worker and layout: enough for the requests in flight on it at one moment
/// (wrk's 64 connections need 32 a worker), bounded so a burst of thousands does not stay
/// resident afterwards.
const KEEP: usize = 256;
/// Layouts with a free list per worker (a plain and a TLS connection's burst, say); futures
/// of further layouts get blocks of their own, freed as usual.
const LAYOUTS: usize = 4;

/// A worker's free blocks, by layout (the first [`LAYOUTS`] lent on this thread).
struct Blocks {
    lists: Vec<(Layout, Vec<NonNull<u8>>)>,
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for (layout, free) in &mut self.lists {
            for block in free.drain(..) {
                // SAFETY: every block in the list was allocated with `layout`.
                unsafe { dealloc(block.as_ptr(), *layout) };
            }
        }
    }
}

thread_local! {
    static BLOCKS: RefCell<Blocks> = const { RefCell::new(Blocks { lists: Vec::new() }) };
}

fn take_block(layout: Layout) -> NonNull<u8> {
    let reused = BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        match b.lists.iter_mut().find(|(l, _)| *l == layout) {
            Some((_, free)) => free.pop(),
            None => {
                if b.lists.len() < LAYOUTS {
                    b.lists.push((layout, Vec::new()));
                }
                None
            }
        }
    });
    reused.unwrap_or_else(|| {
        // SAFETY: `layout` has a non-zero size (checked by the caller).
        let raw = unsafe { alloc(layout) };
        NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
    })
}

fn give_block(block: NonNull<u8>, layout: Layout) {
    let kept = BLOCKS
        .try_with(|b| {
            let mut b = b.borrow_mut();
            match b.lists.iter_mut().find(|(l, _)| *l == layout) {
                Some((_, free)) if free.len() < KEEP => {
                    free.push(block);
                    true
                }
                _ => false,
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: `block` was allocated with `layout` and holds no value any more.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

/// A future in a heap block lent by the worker (see the module documentation).
pub struct Lent<F> {
    future: NonNull<F>,
}

// SAFETY: `Lent` owns its future exclusively, like `Box<F>`; the block's free list is
// per thread and only touched at creation and drop, on whichever thread that happens.
unsafe impl<F: Send> Send for Lent<F> {}

impl<F: Future> Lent<F> {
    /// Moves `future` into a lent block.
    pub fn new(future: F) -> Self {
        let layout = Layout::new::<F>();
        assert!(layout.size() > 0, "zero-sized futures need no block");
        let block = take_block(layout).cast::<F>();
        // SAFETY: the block is valid for writes of `F` (its layout) and holds nothing.
        unsafe { block.as_ptr().write(future) };
        Lent { future: block }
    }
}

impl<F: Future> Future for Lent<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future lives at a fixed heap address until `drop`, and is never
        // moved out: pinning it there is sound (as for `Box::pin`).
        unsafe { Pin::new_unchecked(&mut *self.future.as_ptr()) }.poll(cx)
    }
}

impl<F> Drop for Lent<F> {
    fn drop(&mut self) {
        // SAFETY: the block holds an initialized `F`, dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(self.future.as_ptr()) };
        give_block(self.future.cast(), Layout::new::<F>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A future of 2 KiB that counts its drops and resolves to its payload's sum.
    struct Big {
        payload: [u8; 2048],
        drops: Arc<AtomicUsize>,
    }

    impl Future for Big {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            Poll::Ready(self.payload.iter().map(|&b| u32::from(b)).sum())
        }
    }

    impl Big {
        fn new(byte: u8, drops: &Arc<AtomicUsize>) -> Self {
            Big {
                payload: [byte; 2048],
                drops: drops.clone(),
            }
        }
    }

    impl Drop for Big {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_lent_future_runs_is_dropped_once_and_its_block_is_reused() {
        let drops = Arc::new(AtomicUsize::new(0));
        let first = Lent::new(Big::new(1, &drops));
        let block = first.future.as_ptr() as usize;
        assert_eq!(first.await, 2048);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        let second = Lent::new(Big::new(2, &drops));
        assert_eq!(second.future.as_ptr() as usize, block, "block not reused");
        drop(second);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn futures_of_another_layout_get_blocks_of_their_own_and_are_reused_too() {
        let drops = Arc::new(AtomicUsize::new(0));
        let big = Lent::new(Big::new(0, &drops));
        let small = Lent::new(async { 7u8 });
        let small_block = small.future.as_ptr() as usize;
        assert_eq!(small.await, 7);
        assert_eq!(big.await, 0);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        let again = Lent::new(async { 8u8 });
        assert_eq!(
            again.future.as_ptr() as usize,
            small_block,
            "block not reused"
        );
        assert_eq!(again.await, 8);
    }

    #[test]
    fn at_most_keep_blocks_stay_on_a_worker() {
        let drops = Arc::new(AtomicUsize::new(0));
        let many: Vec<_> = (0..KEEP + 8)
            .map(|_| Lent::new(Big::new(0, &drops)))
            .collect();
        drop(many);
        let kept = BLOCKS.with(|b| {
            let b = b.borrow();
            let layout = Layout::new::<Big>();
            b.lists
                .iter()
                .find(|(l, _)| *l == layout)
                .map_or(0, |(_, f)| f.len())
        });
        assert_eq!(kept, KEEP);
        assert_eq!(drops.load(Ordering::Relaxed), KEEP + 8);
    }
}
