//! Quiet panics: a panic caught at a sensor is reported once, as that sensor's failure, not as
//! the default hook's stderr text and backtrace.
//!
//! [`install_hook`] wraps the process's panic hook once; the wrapper stays silent while the
//! current thread is inside [`quietly`] (the sensor starts and polls its driver's reads there),
//! and defers to the previous hook everywhere else, so panics outside sensor reads still print
//! as usual.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// Depth of quiet sections on this thread.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Installs the quiet-aware panic hook (once per process).
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f` with the panic hook silenced on this thread.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(q.get() - 1));
        }
    }
    install_hook();
    QUIET.with(|q| q.set(q.get() + 1));
    let _reset = Reset;
    f()
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
