//! The edge component's allocator: one free list per power-of-two size class, for a
//! guest that lives on one thread.
//!
//! A cache HIT in the component makes about 90 allocations, almost all small and
//! freed before the response leaves. Under callgrind, talc (the general allocator
//! before this one) spent about 370 instructions on each allocation and its free,
//! a sixth of the whole HIT. Here a small allocation pops the head of its class's
//! list, or bumps a pointer through a chunk kept for that class, and a free pushes
//! the block back: a few instructions each, no search, no coalescing.
//!
//! - Sizes up to [`LARGEST_CLASS`] bytes (with their alignment) are rounded up to a
//!   power of two from 16 bytes; anything larger, or aligned more strictly, goes to
//!   the backing allocator, which also supplies the chunks.
//! - A chunk serves one class only and is aligned to [`LARGEST_CLASS`], so every
//!   block in it is aligned to its own size.
//! - Freed blocks stay in their class and are never given back: the memory held is
//!   the sum over the classes of their peak use. For an edge instance, whose
//!   working set is bounded (requests in flight and its bounded record cache), that
//!   is the right trade.
//!
//! There are no locks and no atomics, which is why building one is `unsafe`: see
//! [`SizeClasses::new`].
#![cfg_attr(not(test), no_std)]
#![allow(
    unsafe_code,
    reason = "an allocator hands out raw memory; each unsafe block states what it relies on"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// The smallest block: room for the free list's link, at any alignment up to 16.
const SMALLEST_SHIFT: u32 = 4;
const LARGEST_SHIFT: u32 = 12;
/// The largest size (and alignment) served from the classes, in bytes.
pub const LARGEST_CLASS: usize = 1 << LARGEST_SHIFT;
const CLASSES: usize = (LARGEST_SHIFT - SMALLEST_SHIFT + 1) as usize;
/// What a class takes from the backing allocator when its list and chunk are empty.
const CHUNK: usize = 64 * 1024;

/// Power-of-two size classes over a backing allocator; see the crate's documentation.
pub struct SizeClasses<B> {
    backing: B,
    classes: UnsafeCell<[Class; CLASSES]>,
}

#[derive(Clone, Copy)]
struct Class {
    /// The most recently freed block, whose first word links to the next one.
    free: *mut u8,
    /// The unused rest of the class's current chunk: `next..end`.
    next: *mut u8,
    end: *mut u8,
}

const EMPTY: Class = Class {
    free: ptr::null_mut(),
    next: ptr::null_mut(),
    end: ptr::null_mut(),
};

// SAFETY: `new`'s caller promises that one thread only ever uses the allocator, so the
// classes are never touched from two threads; `Sync` is what a `static` requires.
unsafe impl<B: Sync> Sync for SizeClasses<B> {}

impl<B> SizeClasses<B> {
    /// # Safety
    /// Only one thread may ever use the allocator (as in a wasm component without the
    /// threads proposal): it keeps its lists without locks or atomics.
    pub const unsafe fn new(backing: B) -> Self {
        Self {
            backing,
            classes: UnsafeCell::new([EMPTY; CLASSES]),
        }
    }
}

/// The class serving `layout`, or `None` for the backing allocator.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << SMALLEST_SHIFT);
    if size > LARGEST_CLASS {
        return None;
    }
    // The exponent of the smallest power of two at least `size`.
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - SMALLEST_SHIFT) as usize)
}

fn class_size(index: usize) -> usize {
    1 << (index as u32 + SMALLEST_SHIFT)
}

unsafe impl<B: GlobalAlloc> GlobalAlloc for SizeClasses<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(index) = class_of(layout) else {
            // SAFETY: the caller's layout passes through unchanged.
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: one thread only (`new`), and no reference into the classes outlives
        // this call, so this is the only reference.
        let class = unsafe { &mut (*self.classes.get())[index] };
        if !class.free.is_null() {
            let block = class.free;
            // SAFETY: a freed block of this class holds the link `dealloc` wrote; blocks
            // are at least 16 bytes and aligned to their size, so the read is aligned.
            class.free = unsafe { block.cast::<*mut u8>().read() };
            return block;
        }
        let size = class_size(index);
        if (class.end as usize) - (class.next as usize) < size {
            // SAFETY: CHUNK is non-zero and a multiple of LARGEST_CLASS, a power of two.
            let chunk_layout = unsafe { Layout::from_size_align_unchecked(CHUNK, LARGEST_CLASS) };
            // SAFETY: the layout is valid and non-zero.
            let chunk = unsafe { self.backing.alloc(chunk_layout) };
            if chunk.is_null() {
                return chunk;
            }
            class.next = chunk;
            // SAFETY: one past the end of the chunk just allocated.
            class.end = unsafe { chunk.add(CHUNK) };
        }
        let block = class.next;
        // SAFETY: at least `size` bytes are left before `end` (checked or refilled above).
        class.next = unsafe { block.add(size) };
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(index) = class_of(layout) else {
            // SAFETY: a layout with no class was allocated by the backing allocator.
            return unsafe { self.backing.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`: one thread, one reference.
        let class = unsafe { &mut (*self.classes.get())[index] };
        // SAFETY: the block came from this class (same layout, same class), so it is at
        // least 16 bytes, aligned to its size, and ours again to write the link into.
        unsafe { block.cast::<*mut u8>().write(class.free) };
        class.free = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does
        // not overflow isize, which is what the layout needs.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block already has room: its class did not change.
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: both sizes belong to the backing allocator, which made the block.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a valid layout; the copy stays within both blocks, which are
                // distinct, and the old block is freed with the layout it was made with.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;
    use std::collections::HashSet;

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_round_up_to_a_power_of_two_and_large_ones_go_to_the_backing() {
        let cases = [
            ((1, 1), Some(0)),
            ((16, 8), Some(0)),
            ((17, 1), Some(1)),
            ((8, 32), Some(1)),
            ((100, 4), Some(3)),
            ((4096, 8), Some(8)),
            ((4097, 8), None),
            ((8, 8192), None),
        ];
        for ((size, align), class) in cases {
            assert_eq!(
                class_of(layout(size, align)),
                class,
                "{size} bytes at {align}"
            );
        }
        assert_eq!(class_size(0), 16);
        assert_eq!(class_size(CLASSES - 1), LARGEST_CLASS);
    }

    #[test]
    fn a_freed_block_is_the_next_one_handed_out_for_its_class() {
        // SAFETY: this test is the allocator's only thread.
        let heap = unsafe { SizeClasses::new(System) };
        let small = layout(24, 8);
        unsafe {
            let first = heap.alloc(small);
            let second = heap.alloc(small);
            assert_eq!(
                second as usize - first as usize,
                32,
                "bumped through one chunk"
            );
            heap.dealloc(first, small);
            assert_eq!(heap.alloc(layout(32, 4)), first, "same class, reused");
            heap.dealloc(first, layout(32, 4));
            heap.dealloc(second, small);
        }
    }

    #[test]
    fn realloc_keeps_the_block_within_its_class_and_the_bytes_across_classes() {
        // SAFETY: this test is the allocator's only thread.
        let heap = unsafe { SizeClasses::new(System) };
        unsafe {
            let block = heap.alloc(layout(40, 8));
            for offset in 0..40 {
                block.add(offset).write(offset as u8);
            }
            let grown = heap.realloc(block, layout(40, 8), 64);
            assert_eq!(grown, block, "40 and 64 bytes share a class");
            let moved = heap.realloc(grown, layout(64, 8), 10_000);
            assert_ne!(moved, block);
            for offset in 0..40 {
                assert_eq!(moved.add(offset).read(), offset as u8);
            }
            let back = heap.realloc(moved, layout(10_000, 8), 20);
            for offset in 0..20 {
                assert_eq!(back.add(offset).read(), offset as u8);
            }
            heap.dealloc(back, layout(20, 8));
        }
    }

    /// Many live blocks of mixed sizes and alignments, freed and reallocated in a
    /// scrambled order: every block is aligned, and no two live blocks overlap (each
    /// is filled with its own byte and checked before it is freed).
    #[test]
    fn live_blocks_are_aligned_and_never_overlap() {
        // SAFETY: this test is the allocator's only thread.
        let heap = unsafe { SizeClasses::new(System) };
        let mut random = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: usize| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            (random % bound as u64) as usize
        };
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut classes_seen = HashSet::new();
        for step in 0..20_000 {
            if live.len() > 300 || (!live.is_empty() && next(3) == 0) {
                let (block, layout, tag) = live.swap_remove(next(live.len()));
                for offset in 0..layout.size() {
                    assert_eq!(unsafe { block.add(offset).read() }, tag, "step {step}");
                }
                unsafe { heap.dealloc(block, layout) };
                continue;
            }
            let size = match next(10) {
                0 => 1 + next(20_000),
                _ => 1 + next(600),
            };
            let align = 1 << next(8);
            let wanted = layout(size, align);
            classes_seen.insert(class_of(wanted));
            let block = unsafe { heap.alloc(wanted) };
            assert!(!block.is_null());
            assert_eq!(block as usize % align, 0, "{size} bytes at {align}");
            let tag = (step % 251) as u8;
            unsafe { block.write_bytes(tag, size) };
            live.push((block, wanted, tag));
        }
        for (block, layout, tag) in live {
            for offset in 0..layout.size() {
                assert_eq!(unsafe { block.add(offset).read() }, tag);
            }
            unsafe { heap.dealloc(block, layout) };
        }
        assert!(
            classes_seen.contains(&None),
            "the backing allocator was used"
        );
        assert!(
            classes_seen.len() > CLASSES / 2,
            "classes used: {classes_seen:?}"
        );
    }
}
