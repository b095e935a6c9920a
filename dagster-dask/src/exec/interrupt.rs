//! Ctrl-C for runs started from the job binary's command line.
//!
//! While an [`Interrupts`] lives, SIGINT and SIGTERM call its callback instead of ending the
//! process, so that an executor can cancel in order and record `RUN_CANCELED`. Only the CLI
//! asks for this ([`Run::cancel_on_interrupt`](super::Run::cancel_on_interrupt)): a library
//! caller keeps its own signal handling. (Once installed, the handler stays for the life of
//! the process; after the run, a signal is then ignored rather than fatal.)

use tokio::sync::oneshot;

/// Calls a callback on SIGINT or SIGTERM until dropped.
#[derive(Debug)]
pub(crate) struct Interrupts {
    stop: Option<oneshot::Sender<()>>,
}

impl Interrupts {
    /// Watches for signals on a thread of its own.
    pub(crate) fn start(on_interrupt: impl Fn() + Send + 'static) -> Self {
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = &mut stop_rx => return,
                    }
                    on_interrupt();
                }
            });
        });
        Self {
            stop: Some(stop_tx),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
