//! Ctrl-C and SIGTERM for runs that cancel on interrupt.
//!
//! The handlers are registered once per process, the first time a run asks for them, and
//! before that run emits `RUN_START`, so that no interrupt of a run goes unrecorded. While a
//! run holds an [`Interrupts`], SIGINT and SIGTERM reach the run (its state is canceled, its
//! executor's hook is called); at any other time they do what they do by default (end the
//! process), also in a library caller's process after its run.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};

/// What an executor does on an interrupt; called with how many interrupts came so far.
type Hook = Box<dyn Fn(u32) + Send + Sync>;

/// The callback of the run that listens now, if one does.
type Current = Arc<Mutex<Option<Arc<dyn Fn() + Send + Sync>>>>;

/// The interrupts one run has received, and what its executor does on one.
#[derive(Default)]
pub(crate) struct InterruptHook {
    count: AtomicU32,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for InterruptHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptHook")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl InterruptHook {
    /// How many interrupts came.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// Sets the executor's hook; calls it at once if an interrupt already came.
    pub(crate) fn set(&self, hook: impl Fn(u32) + Send + Sync + 'static) {
        let n = self.count();
        if n > 0 {
            hook(n);
        }
        *self.hook.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
    }

    /// Records an interrupt and calls the hook.
    pub(crate) fn fire(&self) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(hook) = &*self.hook.lock().unwrap_or_else(PoisonError::into_inner) {
            hook(n);
        }
    }
}

/// The process's handlers: registered once, pointed at the current run.
struct Handlers {
    /// True while no run listens: the signals then take their default action.
    default: Arc<AtomicBool>,
    current: Current,
}

fn handlers() -> Result<&'static Handlers, String> {
    static HANDLERS: OnceLock<Result<Handlers, String>> = OnceLock::new();
    HANDLERS
        .get_or_init(|| {
            let default = Arc::new(AtomicBool::new(true));
            let current: Current = Arc::default();
            let (mut reader, writer) = UnixStream::pair().map_err(|e| e.to_string())?;
            for signal in [SIGINT, SIGTERM] {
                signal_hook::flag::register_conditional_default(signal, Arc::clone(&default))
                    .map_err(|e| e.to_string())?;
                let writer = writer.try_clone().map_err(|e| e.to_string())?;
                signal_hook::low_level::pipe::register(signal, writer)
                    .map_err(|e| e.to_string())?;
            }
            let listener = Arc::clone(&current);
            std::thread::Builder::new()
                .name("dagster-dask-signals".to_owned())
                .spawn(move || {
                    let mut byte = [0_u8; 1];
                    while reader.read(&mut byte).is_ok_and(|n| n == 1) {
                        let callback = listener
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clone();
                        if let Some(callback) = callback {
                            callback();
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(Handlers { default, current })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// SIGINT and SIGTERM call a callback while this lives.
#[derive(Debug)]
pub(crate) struct Interrupts(());

impl Interrupts {
    /// Points the handlers at `on_interrupt` until dropped.
    pub(crate) fn install(on_interrupt: impl Fn() + Send + Sync + 'static) -> Result<Self, String> {
        let handlers = handlers()?;
        *handlers
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(on_interrupt));
        handlers.default.store(false, Ordering::SeqCst);
        Ok(Self(()))
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        if let Ok(handlers) = handlers() {
            handlers.default.store(true, Ordering::SeqCst);
            *handlers
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}
