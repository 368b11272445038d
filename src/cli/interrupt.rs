//! Interrupts (SIGINT and SIGTERM) for every command: one `Interrupt` made in `cli::main`
//! turns the first signal into a request to stop — cancellable phases (prompt, refresh, plan,
//! state commands) are dropped so their session releases the lock, `apply`/`destroy` let the
//! operations in flight finish and persist state — and the second into an immediate exit, after
//! a bounded best-effort release of the state lock. It does not know what a command does.

use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a second interrupt waits for the lock to be released before exiting anyway.
const SECOND_INTERRUPT_RELEASE: Duration = Duration::from_millis(1500);

/// A release of the state lock that can run from the signal task (a GCS lock needs a request).
pub type LockRelease = BoxFuture<'static, ()>;

/// The process-wide interrupt state, shared by the signal task and the running command.
#[derive(Clone)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set on the first signal; `apply` polls it between operations.
    stop: Arc<AtomicBool>,
    /// How many phases are running that finish on their own rather than being dropped.
    shields: watch::Sender<usize>,
    interrupted: watch::Sender<bool>,
    lock_release: Mutex<Option<LockRelease>>,
}

/// While alive, a first interrupt does not cancel the command: it only sets the stop flag.
pub struct Shield {
    interrupt: Interrupt,
}

impl Drop for Shield {
    fn drop(&mut self) {
        self.interrupt
            .inner
            .shields
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl Interrupt {
    /// Returns an interrupt that no signal reaches (tests, and before `listen`).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                stop: Arc::new(AtomicBool::new(false)),
                shields: watch::Sender::new(0),
                interrupted: watch::Sender::new(false),
                lock_release: Mutex::new(None),
            }),
        }
    }

    /// Starts the signal task on the current runtime: SIGINT and SIGTERM alike.
    pub fn listen(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt_signal = signal(SignalKind::interrupt())?;
        let mut terminate_signal = signal(SignalKind::terminate())?;
        let this = self.clone();
        tokio::spawn(async move {
            let mut received = 0;
            loop {
                tokio::select! {
                    Some(()) = interrupt_signal.recv() => {}
                    Some(()) = terminate_signal.recv() => {}
                    else => return,
                }
                received += 1;
                if received == 1 {
                    this.first();
                } else {
                    this.second().await;
                }
            }
        });
        Ok(())
    }

    fn first(&self) {
        if *self.inner.shields.borrow() > 0 {
            eprintln!(
                "\nInterrupt received: finishing the operations in flight and saving state; nothing new starts.\nInterrupt again to exit at once (data loss may occur)."
            );
        } else {
            eprintln!("\nInterrupt received: stopping.");
        }
        self.trigger();
    }

    /// Marks the command interrupted, as a first signal does.
    pub fn trigger(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.interrupted.send_replace(true);
    }

    async fn second(&self) -> ! {
        eprintln!(
            "\nTwo interrupts received. Exiting immediately. Note that data loss may have occurred: operations in flight were not recorded in the state."
        );
        let release = self
            .inner
            .lock_release
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(release) = release
            && tokio::time::timeout(SECOND_INTERRUPT_RELEASE, release)
                .await
                .is_err()
        {
            eprintln!(
                "The state lock could not be released in time; the next run will say how to remove it."
            );
        }
        std::process::exit(1)
    }

    /// Returns whether an interrupt arrived.
    pub fn is_interrupted(&self) -> bool {
        *self.inner.interrupted.borrow()
    }

    /// Returns the flag `apply` polls to stop starting operations.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.inner.stop.clone()
    }

    /// Keeps a first interrupt from cancelling the command until the shield is dropped.
    pub fn shield(&self) -> Shield {
        self.inner.shields.send_modify(|count| *count += 1);
        Shield {
            interrupt: self.clone(),
        }
    }

    /// Resolves once an interrupt arrived and no shield is up: the command is to be dropped.
    pub async fn cancelled(&self) {
        let mut interrupted = self.inner.interrupted.subscribe();
        let mut shields = self.inner.shields.subscribe();
        loop {
            if *interrupted.borrow_and_update() && *shields.borrow_and_update() == 0 {
                return;
            }
            tokio::select! {
                changed = interrupted.changed() => if changed.is_err() { std::future::pending::<()>().await },
                changed = shields.changed() => if changed.is_err() { std::future::pending::<()>().await },
            }
        }
    }

    /// Registers how to release the state lock on a second interrupt (`None`: nothing to do).
    pub fn set_lock_release(&self, release: Option<LockRelease>) {
        *self
            .inner
            .lock_release
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = release;
    }
}

impl Default for Interrupt {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shield_defers_cancellation_until_dropped() {
        let interrupt = Interrupt::new();
        let shield = interrupt.shield();
        interrupt.trigger();
        assert!(interrupt.stop_flag().load(Ordering::SeqCst));
        let waited = tokio::time::timeout(Duration::from_millis(50), interrupt.cancelled()).await;
        assert!(waited.is_err(), "cancelled while shielded");
        drop(shield);
        tokio::time::timeout(Duration::from_millis(500), interrupt.cancelled())
            .await
            .expect("cancelled once the shield is gone");
    }

    #[tokio::test]
    async fn nothing_is_cancelled_without_an_interrupt() {
        let interrupt = Interrupt::new();
        let waited = tokio::time::timeout(Duration::from_millis(50), interrupt.cancelled()).await;
        assert!(waited.is_err());
        assert!(!interrupt.is_interrupted());
    }
}
