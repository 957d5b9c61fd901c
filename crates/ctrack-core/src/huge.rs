//! Memory for the table's large arrays backed by transparent huge pages where the
//! kernel gives them: random lookups in tens of megabytes then miss the TLB far less.
//!
//! [`advise`] asks for them on a range already reserved (the slab's `Vec`, grown in
//! place). [`HugeArray`] is a fixed-length array allocated on a huge-page boundary
//! when it is a huge page or more, so that the kernel can back all of it with huge
//! pages: a 2 MiB array from the allocator starts anywhere and contains no aligned
//! 2 MiB range (a table's shard holds such arrays: its share of the bucket groups).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A transparent huge page.
pub const HUGE_PAGE: usize = 2 << 20;

/// Ask the kernel to back `[p, p + len)` (a range the caller owns) with transparent
/// huge pages where it can. Ranges under one huge page are left alone; any failure
/// (THP disabled, not Linux) only leaves small pages.
pub(crate) fn advise(p: *const u8, len: usize) {
    const PAGE: usize = 4096;
    if len < HUGE_PAGE {
        return;
    }
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + len) & !(PAGE - 1);
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `[start, end)` lies inside an allocation the caller owns (page-rounded
    // inwards). MADV_HUGEPAGE only changes how the kernel backs those pages; it never
    // changes their contents or their validity, so no Rust invariant depends on it,
    // and its result is deliberately ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

/// A fixed-length array of `T`, every element set at creation, on a huge-page
/// boundary (and advised to use huge pages) when it spans one or more.
pub struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: a `HugeArray` owns its allocation alone, as a `Box<[T]>` does: sending or
// sharing it is sending or sharing its `T`s.
unsafe impl<T: Copy + Send> Send for HugeArray<T> {}
// SAFETY: as above; `&HugeArray` only gives `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> HugeArray<T> {
        HugeArray::from_fn(len, |_| fill)
    }

    /// `len` elements, element `i` being `f(i)`.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> HugeArray<T> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("a HugeArray's size fits in memory");
        let align = if bytes >= HUGE_PAGE {
            HUGE_PAGE
        } else {
            align_of::<T>()
        };
        // Never zero-sized: the allocator needs a size.
        let layout = Layout::from_size_align(bytes.max(1), align.max(align_of::<T>()))
            .expect("a valid layout: size fits, alignment a power of two");
        // SAFETY: the layout's size is not zero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        // Asked before the first write, so the first touch already faults huge pages.
        advise(raw, bytes);
        for i in 0..len {
            // SAFETY: `i < len`, inside the allocation of `len` elements, aligned for
            // `T` (the layout's alignment is at least `T`'s); the slot is written
            // before anything reads it.
            unsafe { ptr.as_ptr().add(i).write(f(i)) };
        }
        HugeArray { ptr, len, layout }
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }

    /// Whether the array starts on a huge-page boundary.
    pub fn is_huge_aligned(&self) -> bool {
        (self.ptr.as_ptr() as usize).is_multiple_of(HUGE_PAGE)
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised `T`s that this array owns.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout, freed once (`T: Copy` has
        // no destructor to run).
        unsafe { dealloc(self.ptr.as_ptr().cast::<u8>(), self.layout) }
    }
}

impl<T: Copy> Clone for HugeArray<T> {
    fn clone(&self) -> HugeArray<T> {
        HugeArray::from_fn(self.len, |i| self[i])
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small and large arrays hold what they were given, clone and drop cleanly; a
    /// large one starts on a huge-page boundary.
    #[test]
    fn arrays_hold_their_elements_and_large_ones_are_aligned() {
        for len in [0usize, 1, 7, 1000, (HUGE_PAGE / 64) * 3 + 5] {
            let mut a = HugeArray::from_fn(len, |i| [i as u64; 8]);
            assert_eq!(a.len(), len);
            assert_eq!(a.bytes(), len * 64);
            assert!(a
                .iter()
                .enumerate()
                .all(|(i, x)| x[0] == i as u64 && x[7] == i as u64));
            if let Some(x) = a.last_mut() {
                x[3] = 99;
            }
            let b = a.clone();
            assert_eq!(&a[..], &b[..]);
            if a.bytes() >= HUGE_PAGE {
                assert!(a.is_huge_aligned() && b.is_huge_aligned(), "len {len}");
            }
        }
        let filled = HugeArray::new(3, 7u16);
        assert_eq!(&filled[..], &[7, 7, 7]);
    }
}
