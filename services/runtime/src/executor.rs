//! The executor: ready queue, task slab, timers, pollers, and the idle loop.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use oasis_devices::Platform;
use spin::Mutex;

use crate::time::Instant;

type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service the executor drives once per turn of its loop (the network stack, a
/// block driver). `poll` makes whatever progress is possible without blocking, wakes
/// the tasks that can now proceed, and returns when it next needs to run even if no
/// interrupt arrives (`None`: only after the next event).
pub trait Poller: Send {
    /// Makes progress at time `now`; returns the next deadline.
    fn poll(&mut self, now: Instant) -> Option<Instant>;
}

/// Identifies a registered timer: (deadline, sequence number).
pub(crate) type TimerKey = (u64, u64);

/// The id of the future passed to [`block_on`], which lives outside the slab.
const MAIN: usize = usize::MAX;

struct ReadyQueue(Mutex<VecDeque<usize>>);

struct TaskWaker {
    id: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.0.lock().push_back(self.id);
        }
    }
}

struct Slot {
    future: Option<TaskFuture>,
    waker: Arc<TaskWaker>,
}

/// A single-core executor. Create one with [`block_on`].
pub struct Executor {
    platform: &'static dyn Platform,
    ready: Arc<ReadyQueue>,
    slots: Mutex<Vec<Option<Slot>>>,
    free: Mutex<Vec<usize>>,
    timers: Mutex<BTreeMap<TimerKey, Waker>>,
    timer_seq: AtomicU64,
    pollers: Mutex<Vec<Box<dyn Poller>>>,
}

impl Executor {
    fn new(platform: &'static dyn Platform) -> Self {
        Self {
            platform,
            ready: Arc::new(ReadyQueue(Mutex::new(VecDeque::new()))),
            slots: Mutex::new(Vec::new()),
            free: Mutex::new(Vec::new()),
            timers: Mutex::new(BTreeMap::new()),
            timer_seq: AtomicU64::new(0),
            pollers: Mutex::new(Vec::new()),
        }
    }

    /// The current monotonic time.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.platform.monotonic_nanos())
    }

    /// The platform this executor runs on.
    pub fn platform(&self) -> &'static dyn Platform {
        self.platform
    }

    /// Number of live spawned tasks (not counting the `block_on` future).
    pub fn task_count(&self) -> usize {
        self.slots.lock().iter().filter(|s| s.is_some()).count()
    }

    fn spawn_boxed(&self, future: TaskFuture) {
        let id = match self.free.lock().pop() {
            Some(id) => id,
            None => {
                let mut slots = self.slots.lock();
                slots.push(None);
                slots.len() - 1
            }
        };
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
            ready: self.ready.clone(),
        });
        self.slots.lock()[id] = Some(Slot {
            future: Some(future),
            waker,
        });
        self.ready.0.lock().push_back(id);
    }

    /// Polls spawned task `id` once, outside every lock (it may spawn or set timers).
    fn run_task(&self, id: usize) {
        let (mut future, waker) = {
            let mut slots = self.slots.lock();
            let Some(Some(slot)) = slots.get_mut(id) else {
                return; // a stale wake for a finished task
            };
            let Some(future) = slot.future.take() else {
                return;
            };
            slot.waker.queued.store(false, Ordering::Release);
            (future, slot.waker.clone())
        };
        let w = Waker::from(waker);
        let mut cx = Context::from_waker(&w);
        let done = future.as_mut().poll(&mut cx).is_ready();
        let mut slots = self.slots.lock();
        if done {
            slots[id] = None;
            drop(slots);
            self.free.lock().push(id);
        } else if let Some(Some(slot)) = slots.get_mut(id) {
            slot.future = Some(future);
        }
    }

    pub(crate) fn set_timer(
        &self,
        old: Option<TimerKey>,
        deadline: Instant,
        waker: &Waker,
    ) -> TimerKey {
        let mut timers = self.timers.lock();
        if let Some((k, w)) = old.and_then(|k| timers.get_mut(&k).map(|w| (k, w))) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
            return k;
        }
        let key = (
            deadline.as_nanos(),
            self.timer_seq.fetch_add(1, Ordering::Relaxed),
        );
        timers.insert(key, waker.clone());
        key
    }

    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        self.timers.lock().remove(&key);
    }

    /// Wakes every timer due at `now`; returns the earliest remaining deadline.
    fn fire_timers(&self, now: Instant) -> Option<Instant> {
        let mut timers = self.timers.lock();
        while let Some(entry) = timers.first_entry() {
            if entry.key().0 > now.as_nanos() {
                return Some(Instant::from_nanos(entry.key().0));
            }
            entry.remove().wake();
        }
        None
    }

    fn run_pollers(&self, now: Instant) -> Option<Instant> {
        let mut pollers = core::mem::take(&mut *self.pollers.lock());
        let next = pollers.iter_mut().filter_map(|p| p.poll(now)).min();
        let mut slot = self.pollers.lock();
        pollers.append(&mut slot); // keep pollers registered during this turn
        *slot = pollers;
        next
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = core::pin::pin!(future);
        let main = Arc::new(TaskWaker {
            id: MAIN,
            queued: AtomicBool::new(true),
            ready: self.ready.clone(),
        });
        self.ready.0.lock().push_back(MAIN);
        let main_waker = Waker::from(main.clone());
        loop {
            // Run what is ready now; tasks woken meanwhile wait for the next turn so
            // the pollers (device I/O) get their share.
            let batch = self.ready.0.lock().len();
            for _ in 0..batch {
                let Some(id) = self.ready.0.lock().pop_front() else {
                    break;
                };
                if id == MAIN {
                    main.queued.store(false, Ordering::Release);
                    let mut cx = Context::from_waker(&main_waker);
                    if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                        return v;
                    }
                } else {
                    self.run_task(id);
                }
            }
            let now = self.now();
            let poll_at = self.run_pollers(now);
            let timer_at = self.fire_timers(now);
            if !self.ready.0.lock().is_empty() {
                continue;
            }
            let deadline = match (poll_at, timer_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if deadline.is_some_and(|d| d <= now) {
                continue;
            }
            self.platform
                .wait_for_event(deadline.map(Instant::as_nanos));
        }
    }
}

// ---- the current executor -------------------------------------------------------

#[cfg(feature = "std")]
std::thread_local! {
    static CURRENT: core::cell::RefCell<Option<Arc<Executor>>> = const { core::cell::RefCell::new(None) };
}

#[cfg(feature = "std")]
fn current() -> Option<Arc<Executor>> {
    // `try_with`: destructors that run while the thread's locals are torn down (a
    // socket dropped with its executor) ask too, and get `None`.
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

#[cfg(feature = "std")]
fn set_current(ex: Option<Arc<Executor>>) -> Option<Arc<Executor>> {
    CURRENT.with(|c| core::mem::replace(&mut *c.borrow_mut(), ex))
}

#[cfg(not(feature = "std"))]
static CURRENT: Mutex<Option<Arc<Executor>>> = Mutex::new(None);

#[cfg(not(feature = "std"))]
fn current() -> Option<Arc<Executor>> {
    CURRENT.lock().clone()
}

#[cfg(not(feature = "std"))]
fn set_current(ex: Option<Arc<Executor>>) -> Option<Arc<Executor>> {
    core::mem::replace(&mut *CURRENT.lock(), ex)
}

/// Calls `f` with the running executor. Panics when called outside [`block_on`]: that
/// is a bug in the caller (as `spawn` outside a runtime is in tokio), not a condition
/// to handle, and the public functions that come here say so under `# Panics`.
pub(crate) fn with_current<R>(f: impl FnOnce(&Executor) -> R) -> R {
    let Some(ex) = current() else {
        panic!("oasis runtime used outside block_on (no executor is running)");
    };
    f(&ex)
}

pub(crate) fn try_with_current<R>(f: impl FnOnce(&Executor) -> R) -> Option<R> {
    current().map(|ex| f(&ex))
}

/// Runs `future` to completion on a new executor over `platform`, driving every task
/// spawned meanwhile. Tasks still pending when `future` completes are dropped.
pub fn block_on<F: Future>(platform: &'static dyn Platform, future: F) -> F::Output {
    let ex = Arc::new(Executor::new(platform));
    let previous = set_current(Some(ex.clone()));
    let out = ex.block_on(future);
    // Drop leftover tasks while the executor is still current (their destructors may
    // cancel timers), then restore.
    let leftovers = core::mem::take(&mut *ex.slots.lock());
    drop(leftovers);
    set_current(previous);
    out
}

/// The heap's size, use and high-water mark from the running executor's platform;
/// `None` outside [`block_on`] or when the platform does not count (hosted).
pub fn heap_usage() -> Option<oasis_devices::HeapUsage> {
    try_with_current(|ex| ex.platform().heap_usage()).flatten()
}

/// Registers a service the executor polls every turn (see [`Poller`]).
///
/// # Panics
/// Outside [`block_on`].
pub fn register_poller(p: Box<dyn Poller>) {
    with_current(|ex| ex.pollers.lock().push(p));
}

struct JoinState<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// Awaits the output of a spawned task. Dropping it detaches the task.
pub struct JoinHandle<T> {
    state: Arc<Mutex<JoinState<T>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.lock();
        match st.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// `future`, then its output stored in `state` and the joiner woken. `map`, not an
/// `async move { future.await; .. }` block: rustc lays out a block's captured future
/// and the future it awaits side by side, so such a wrapper doubles the task's size
/// (seen: a 1.4 KiB connection task took 5.6 KiB of heap).
fn completing<F: Future>(
    future: F,
    state: Arc<Mutex<JoinState<F::Output>>>,
) -> impl Future<Output = ()> {
    futures_util::FutureExt::map(future, move |v| {
        let waker = {
            let mut s = state.lock();
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    })
}

/// Spawns a task on the running executor.
///
/// # Panics
/// Outside [`block_on`].
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let state = Arc::new(Mutex::new(JoinState {
        value: None,
        waker: None,
    }));
    let task = completing(future, state.clone());
    with_current(|ex| ex.spawn_boxed(Box::pin(task)));
    JoinHandle { state }
}

/// Yields once, letting other ready tasks and the pollers run.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Elapsed, sleep, timeout};
    use alloc::string::String;
    use alloc::vec;
    use core::time::Duration;
    use oasis_devices::EntropyError;
    use std::sync::Mutex as StdMutex;

    /// A platform whose clock only moves when the executor sleeps: tests are exact
    /// and instant, and a busy loop (waiting without a deadline) is caught.
    struct FakeClock {
        now: StdMutex<u64>,
        waits: StdMutex<Vec<Option<u64>>>,
    }

    impl Platform for FakeClock {
        fn console_write(&self, _: &[u8]) {}
        fn monotonic_nanos(&self) -> u64 {
            *self.now.lock().unwrap()
        }
        fn wall_clock_nanos(&self) -> Option<u64> {
            None
        }
        fn entropy(&self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError::NoSource)
        }
        fn wait_for_event(&self, deadline: Option<u64>) {
            self.waits.lock().unwrap().push(deadline);
            let d = deadline.expect("executor slept with nothing to wake it: deadlock");
            let mut now = self.now.lock().unwrap();
            assert!(d > *now, "slept until a past deadline");
            *now = d;
        }
        fn args(&self) -> Vec<String> {
            Vec::new()
        }
        fn boot_nanos(&self) -> Option<u64> {
            None
        }
        fn exit(&self, status: u8) -> ! {
            panic!("exit {status}")
        }
    }

    fn clock() -> &'static FakeClock {
        Box::leak(Box::new(FakeClock {
            now: StdMutex::new(1_000),
            waits: StdMutex::new(Vec::new()),
        }))
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn sleeps_advance_to_exact_deadlines_without_spinning() {
        let p = clock();
        let stamps = block_on(p, async {
            let mut v = vec![crate::now().as_nanos()];
            for _ in 0..4 {
                sleep(Duration::from_millis(100)).await;
                v.push(crate::now().as_nanos());
            }
            v
        });
        assert_eq!(
            stamps,
            [
                1_000,
                1_000 + 100 * MS,
                1_000 + 200 * MS,
                1_000 + 300 * MS,
                1_000 + 400 * MS
            ]
        );
        // One wait per sleep: the executor never woke up without a reason.
        assert_eq!(p.waits.lock().unwrap().len(), 4);
    }

    #[test]
    fn spawned_tasks_interleave_by_deadline_and_join() {
        let p = clock();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let total = block_on(p, async move {
            let mut handles = Vec::new();
            for (i, ms) in [(0u32, 30u64), (1, 10), (2, 20)] {
                let o = o.clone();
                handles.push(spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    o.lock().push(i);
                    i * 10
                }));
            }
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            sum
        });
        assert_eq!(total, 30);
        assert_eq!(*order.lock(), [1, 2, 0]);
    }

    #[test]
    fn timeout_cancels_and_cleans_up_timers() {
        let p = clock();
        block_on(p, async {
            let r = timeout(Duration::from_millis(50), sleep(Duration::from_secs(10))).await;
            assert_eq!(r, Err(Elapsed));
            assert_eq!(crate::now().as_nanos(), 1_000 + 50 * MS);
            let r = timeout(Duration::from_secs(1), async { 7 }).await;
            assert_eq!(r, Ok(7));
            with_current(|ex| {
                assert!(
                    ex.timers.lock().is_empty(),
                    "dropped sleeps left timers behind"
                )
            });
        });
    }

    #[test]
    fn pollers_run_each_turn_and_their_deadline_bounds_sleep() {
        struct Counter(Arc<AtomicU64>);
        impl Poller for Counter {
            fn poll(&mut self, now: Instant) -> Option<Instant> {
                self.0.fetch_add(1, Ordering::Relaxed);
                Some(Instant::from_nanos(now.as_nanos() + 5 * MS))
            }
        }
        let p = clock();
        let n = Arc::new(AtomicU64::new(0));
        let n2 = n.clone();
        block_on(p, async move {
            register_poller(Box::new(Counter(n2)));
            sleep(Duration::from_millis(20)).await;
        });
        assert!(n.load(Ordering::Relaxed) >= 4);
        assert!(p.waits.lock().unwrap().iter().all(|w| w.is_some()));
    }

    #[test]
    fn yield_now_lets_others_run_and_many_tasks_complete() {
        let p = clock();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        block_on(p, async move {
            let hs: Vec<_> = (0..1000)
                .map(|_| {
                    let c = c.clone();
                    spawn(async move {
                        yield_now().await;
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in hs {
                h.await;
            }
            with_current(|ex| assert_eq!(ex.task_count(), 0));
        });
        assert_eq!(count.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn tasks_spawn_tasks_and_detached_tasks_run_to_completion() {
        let p = clock();
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        block_on(p, async move {
            // A tree: each task spawns two children until depth 5; handles dropped
            // (detached) except the root's.
            fn grow(depth: u32, d: Arc<AtomicU64>) {
                let _detached = spawn(async move {
                    sleep(Duration::from_millis(1)).await;
                    d.fetch_add(1, Ordering::Relaxed);
                    if depth > 0 {
                        grow(depth - 1, d.clone());
                        grow(depth - 1, d);
                    }
                });
            }
            grow(5, d);
            sleep(Duration::from_millis(50)).await;
        });
        assert_eq!(done.load(Ordering::Relaxed), 63, "2^6 - 1 tasks ran");
    }

    #[test]
    fn a_waker_from_another_task_wakes_exactly_once() {
        use core::future::poll_fn;
        use core::task::Poll;
        let p = clock();
        let polls = Arc::new(AtomicU64::new(0));
        let pl = polls.clone();
        block_on(p, async move {
            let slot: Arc<Mutex<(bool, Option<core::task::Waker>)>> =
                Arc::new(Mutex::new((false, None)));
            let s2 = slot.clone();
            let waiter = spawn(async move {
                poll_fn(|cx| {
                    pl.fetch_add(1, Ordering::Relaxed);
                    let mut s = s2.lock();
                    if s.0 {
                        Poll::Ready(())
                    } else {
                        s.1 = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await
            });
            sleep(Duration::from_millis(10)).await;
            let w = {
                let mut s = slot.lock();
                s.0 = true;
                s.1.take()
            };
            let w = w.expect("the waiter registered its waker");
            // Woken twice before it runs: queued once, polled once more.
            w.wake_by_ref();
            w.wake();
            waiter.await;
        });
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn dropping_a_timeout_cancels_the_inner_future_and_its_timer() {
        struct Flag(Arc<AtomicU64>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let p = clock();
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        block_on(p, async move {
            let inner = async move {
                let _f = Flag(d);
                sleep(Duration::from_secs(60)).await;
            };
            assert_eq!(timeout(Duration::from_millis(5), inner).await, Err(Elapsed));
            with_current(|ex| assert!(ex.timers.lock().is_empty()));
        });
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "the inner future was dropped"
        );
    }

    #[test]
    fn a_spawned_task_is_not_twice_its_future() {
        // Regression: see `completing`.
        let big = [0u8; 4096];
        let fut = async move {
            let b = big;
            yield_now().await;
            core::hint::black_box(&b);
        };
        let size = core::mem::size_of_val(&fut);
        assert!(size >= 4096);
        let state = Arc::new(Mutex::new(JoinState {
            value: None,
            waker: None,
        }));
        let task = completing(fut, state);
        let boxed = core::mem::size_of_val(&task);
        assert!(
            boxed < size + 64,
            "task {boxed} bytes for a {size}-byte future"
        );
    }
}
