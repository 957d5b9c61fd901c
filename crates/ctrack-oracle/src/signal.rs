//! Ctrl-C and SIGTERM: note the signal, let every active run clean up, then re-raise it.
//!
//! While at least one run is active, SIGINT and SIGTERM only set a flag, which the runs
//! poll (between packets, in every wait). When the last active run has removed its
//! namespaces and restored the sysctls, the previous handlers are put back and the
//! signal is raised again, so the process ends as it would have (or the caller's own
//! handler sees it). A second signal while cleanup is still running ends the process at
//! once. Done with plain `sigaction` so no dependency is needed.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The first signal received while runs were active (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);

struct State {
    active: usize,
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    active: 0,
    saved: Vec::new(),
});

extern "C" fn on_signal(sig: libc::c_int) {
    if PENDING.swap(sig, Ordering::SeqCst) != 0 {
        // Second signal: stop waiting for cleanup.
        // SAFETY: signal() and raise() are async-signal-safe; SIG_DFL is a valid handler.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// The signal that interrupted the runs, if any.
pub(crate) fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Held for the whole of a run; the first one installs the handlers, the last one
/// restores them (and re-raises a pending signal) when dropped.
pub(crate) struct ActiveRun(());

impl ActiveRun {
    /// Registers an active run.
    pub(crate) fn enter() -> io::Result<ActiveRun> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if st.active == 0 {
            PENDING.store(0, Ordering::SeqCst);
            let mut saved = Vec::new();
            for sig in SIGNALS {
                // SAFETY: zeroed sigaction is a valid "SIG_DFL, empty mask" value.
                let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                // SAFETY: same as above; filled in by the kernel.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: both pointers are to valid sigaction structs; the handler only
                // touches an atomic and async-signal-safe functions.
                if unsafe { libc::sigaction(sig, &new, &mut old) } != 0 {
                    let err = io::Error::last_os_error();
                    restore(&saved);
                    return Err(err);
                }
                saved.push((sig, old));
            }
            st.saved = saved;
        }
        st.active += 1;
        Ok(ActiveRun(()))
    }
}

fn restore(saved: &[(libc::c_int, libc::sigaction)]) {
    for (sig, old) in saved {
        // SAFETY: `old` is the action the kernel returned for this signal.
        unsafe {
            libc::sigaction(*sig, old, std::ptr::null_mut());
        }
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        st.active = st.active.saturating_sub(1);
        if st.active == 0 {
            let saved = std::mem::take(&mut st.saved);
            restore(&saved);
            let sig = PENDING.swap(0, Ordering::SeqCst);
            drop(st);
            if sig != 0 {
                // SAFETY: raising a signal with the caller's original disposition restored.
                unsafe {
                    libc::raise(sig);
                }
            }
        }
    }
}
