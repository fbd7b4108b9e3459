//! Quiet panics: a panic caught at a sensor is reported once, as that sensor's failure, not as
//! the default hook's stderr text and backtrace.
//!
//! [`install_hook`] wraps the process's panic hook once; the wrapper stays silent while the
//! current thread is inside [`quietly`] or polling a [`Quiet`] future, and defers to the previous
//! hook everywhere else, so panics outside sensor reads still print as usual.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Depth of quiet sections on this thread.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Installs the quiet-aware panic hook (once per process).
pub fn install_hook() {
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
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
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

/// A future whose polls run with the panic hook silenced.
pub struct Quiet<F> {
    inner: F,
}

impl<F: Future + Unpin> Quiet<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Quiet { inner }
    }
}

impl<F: Future + Unpin> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = Pin::new(&mut self.inner);
        quietly(|| inner.poll(cx))
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
