//! The lib tests' allocator: the system's, counting what each thread holds, so a test can
//! weigh a structure it builds on its own thread (other tests' threads count for themselves,
//! and nothing else about allocation changes for them).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[global_allocator]
static COUNTING: Counting = Counting;

struct Counting;

/// What this thread holds: bytes asked for, and the same in mimalloc's size classes (the
/// release binaries' allocator), which is what the memory costs there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub asked: isize,
    pub blocks: isize,
}

thread_local! {
    // Const-initialized and without a destructor: using it never allocates.
    static HELD: Cell<Held> = const { Cell::new(Held { asked: 0, blocks: 0 }) };
}

/// What the current thread holds now.
pub fn held() -> Held {
    HELD.try_with(Cell::get).unwrap_or_default()
}

fn count(size: usize, sign: isize) {
    let _ = HELD.try_with(|h| {
        let mut now = h.get();
        now.asked += sign * size as isize;
        now.blocks += sign * mimalloc_block(size) as isize;
        h.set(now);
    });
}

/// The block mimalloc serves `size` bytes from: whole words up to 64 bytes, then four size
/// classes per doubling (80, 96, 112, 128, 160, …); past 128 KiB, whole 4 KiB pages.
pub fn mimalloc_block(size: usize) -> usize {
    let words = size.div_ceil(8).max(1);
    if words <= 8 {
        return words * 8;
    }
    if size > 128 * 1024 {
        return size.div_ceil(4096) * 4096;
    }
    let top = usize::BITS - 1 - (words - 1).leading_zeros();
    let step = 1usize << (top - 2);
    ((words - 1) / step + 1) * step * 8
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_and_counting() {
        let classes: Vec<usize> =
            [1, 8, 9, 64, 65, 72, 81, 97, 113, 128, 129, 161, 200, 257].map(mimalloc_block).into();
        assert_eq!(classes, [8, 8, 16, 64, 80, 80, 96, 112, 128, 128, 160, 192, 224, 320]);
        let before = held();
        let b = vec![0u8; 100];
        assert_eq!(held().asked - before.asked, 100);
        assert_eq!(held().blocks - before.blocks, 112);
        drop(b);
        assert_eq!(held(), before);
    }
}
