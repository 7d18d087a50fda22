//! Runs independent simulations on several threads. Each simulation is single-threaded
//! and seeded on its own, so the threads change how fast a batch runs, never its results.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// `--jobs`, or the number of cores.
pub fn jobs(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64)
}

/// Runs `f` on every item with `jobs` threads. `done` sees each result as it finishes
/// (with how many have finished) and returns `true` to hand out no more items. Results
/// come back in input order; items never started are `None`.
pub fn run<T: Sync, R: Send>(
    work: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
    done: impl Fn(usize, &R) -> bool + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(work.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = work.get(i) else { return };
                let result = f(item);
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                if done(n, &result) {
                    stop.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
