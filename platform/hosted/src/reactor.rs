//! The epoll reactor: where the hosted executor sleeps, and what wakes it.
//!
//! One [`Reactor`] per thread that runs an executor (the program's main thread; each
//! test thread in hosted tests), because an epoll set can be waited on by one thread
//! at a time. A host file descriptor is registered once, edge-triggered (or
//! level-triggered where asked), with both read and write interest; futures that hit
//! `WouldBlock` store their [`Waker`] for a direction and a readiness event for that
//! descriptor wakes them. [`Platform::wait_for_event`](oasis_devices::Platform) is
//! [`Reactor::wait`]: an `epoll_wait` bounded by the executor's next deadline
//! (`polling` programs a timerfd, so the deadline is exact to the nanosecond, not
//! rounded to milliseconds). Nothing spins: an idle program sits in `epoll_wait`.
//!
//! Cross-thread wake-ups ([`wake_all`], behind `wake_main`) use `Poller::notify`.
//! A new reactor starts notified, so a wake-up sent before the thread first waited is
//! never lost (it costs one spurious return, which the contract allows).

use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

/// Which way a future waits on a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Readable (data, a pending connection, EOF, an error).
    Read,
    /// Writable (buffer space, a finished connect, an error).
    Write,
}

/// Wakers parked on one registered descriptor.
#[derive(Default)]
struct Parked {
    read: Vec<Waker>,
    write: Vec<Waker>,
}

/// Registered descriptors, indexed by their epoll key.
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Parked>>,
    free: Vec<usize>,
}

/// An epoll set with the wakers waiting on it.
pub(crate) struct Reactor {
    poller: Poller,
    sources: Mutex<Sources>,
    /// Pre-allocated event list (1024 entries) reused by every wait.
    events: Mutex<Events>,
    /// Wakers taken out of `sources` during a wait, woken after the lock is released
    /// (a waker may drop a socket, which locks `sources` again). Reused.
    to_wake: Mutex<Vec<Waker>>,
}

/// Every live reactor, for [`wake_all`].
static ALL: Mutex<Vec<Weak<Reactor>>> = Mutex::new(Vec::new());

std::thread_local! {
    static CURRENT: OnceCell<Arc<Reactor>> = const { OnceCell::new() };
}

/// Locks `m`, ignoring poisoning: the data under these locks stays consistent even if
/// a waker panicked (the worst case is a lost spurious wake-up).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reactor {
    fn new() -> io::Result<Self> {
        let poller = Poller::new()?;
        // Start notified: see the module docs.
        poller.notify()?;
        Ok(Self {
            poller,
            sources: Mutex::new(Sources::default()),
            events: Mutex::new(Events::new()),
            to_wake: Mutex::new(Vec::new()),
        })
    }

    /// The calling thread's reactor, created on first use.
    pub(crate) fn current() -> io::Result<Arc<Reactor>> {
        CURRENT.with(|cell| {
            if let Some(r) = cell.get() {
                return Ok(r.clone());
            }
            let r = Arc::new(Reactor::new()?);
            let mut all = lock(&ALL);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&r));
            drop(all);
            let _ = cell.set(r.clone());
            Ok(r)
        })
    }

    /// Adds `fd` to the epoll set with read and write interest; returns its key.
    ///
    /// # Safety
    ///
    /// `fd` must be removed with [`deregister`](Self::deregister) before it is closed.
    pub(crate) unsafe fn register(&self, fd: BorrowedFd<'_>, mode: PollMode) -> io::Result<usize> {
        let key = {
            let mut s = lock(&self.sources);
            match s.free.pop() {
                Some(k) => {
                    s.slots[k] = Some(Parked::default());
                    k
                }
                None => {
                    s.slots.push(Some(Parked::default()));
                    s.slots.len() - 1
                }
            }
        };
        // SAFETY: the caller promises to deregister `fd` before closing it, which is
        // the contract of `Poller::add_with_mode`.
        let added = unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), Event::all(key), mode)
        };
        if let Err(e) = added {
            self.release(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Removes `fd` (registered under `key`) from the epoll set and drops its wakers.
    pub(crate) fn deregister(&self, key: usize, fd: BorrowedFd<'_>) {
        if let Err(e) = self.poller.delete(fd) {
            // Only possible if the descriptor was already closed: a bug, but harmless
            // here (the kernel dropped it from the set when it closed).
            log::warn!("reactor: removing fd {fd:?} (key {key}) from epoll failed: {e}");
        }
        self.release(key);
    }

    fn release(&self, key: usize) {
        let mut s = lock(&self.sources);
        if let Some(slot) = s.slots.get_mut(key)
            && slot.take().is_some()
        {
            s.free.push(key);
        }
    }

    /// Parks `waker` until descriptor `key` is ready in `dir`. A waker that would wake
    /// the same task as one already parked is not added twice.
    pub(crate) fn park(&self, key: usize, dir: Direction, waker: &Waker) {
        let mut s = lock(&self.sources);
        let Some(Some(parked)) = s.slots.get_mut(key) else {
            return;
        };
        let list = match dir {
            Direction::Read => &mut parked.read,
            Direction::Write => &mut parked.write,
        };
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    /// Sleeps until a registered descriptor is ready, a notification arrives, or
    /// `timeout` passes (`None`: no limit); wakes the wakers parked on ready
    /// descriptors. Returns the number of readiness events.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut events = lock(&self.events);
        events.clear();
        let n = self.poller.wait(&mut events, timeout)?;
        let mut to_wake = lock(&self.to_wake);
        {
            let mut s = lock(&self.sources);
            for ev in events.iter() {
                let Some(Some(parked)) = s.slots.get_mut(ev.key) else {
                    continue; // deregistered after the event was queued
                };
                if ev.readable {
                    to_wake.append(&mut parked.read);
                }
                if ev.writable {
                    to_wake.append(&mut parked.write);
                }
            }
        }
        drop(events);
        for w in to_wake.drain(..) {
            w.wake();
        }
        Ok(n)
    }

    /// Makes the current or next [`wait`](Self::wait) return at once.
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }

    /// Number of registered descriptors (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        lock(&self.sources)
            .slots
            .iter()
            .filter(|s| s.is_some())
            .count()
    }
}

/// Notifies every live reactor (in a program: the one executor thread).
pub(crate) fn wake_all() {
    let all: Vec<Arc<Reactor>> = lock(&ALL).iter().filter_map(Weak::upgrade).collect();
    for r in all {
        if let Err(e) = r.notify() {
            log::warn!("reactor: notify failed: {e}");
        }
    }
}

/// A host descriptor registered with the calling thread's reactor; removed from it on
/// drop, before the descriptor itself closes.
pub(crate) struct Registered<T: std::os::fd::AsFd> {
    io: T,
    key: usize,
    reactor: Arc<Reactor>,
}

impl<T: std::os::fd::AsFd> Registered<T> {
    /// Registers `io` (already non-blocking) with the calling thread's reactor.
    pub(crate) fn new(io: T, mode: PollMode) -> io::Result<Self> {
        let reactor = Reactor::current()?;
        // SAFETY: `Registered` owns `io` and deregisters it in `Drop::drop`, which runs
        // before the fields (and so the descriptor) are dropped.
        let key = unsafe { reactor.register(io.as_fd(), mode)? };
        Ok(Self { io, key, reactor })
    }

    /// The wrapped descriptor.
    pub(crate) fn io(&self) -> &T {
        &self.io
    }

    /// Runs the non-blocking `op`; on `WouldBlock` parks the task's waker for `dir`
    /// and tries once more (a readiness edge between the first try and the parking
    /// would otherwise be lost), returning `Pending` only if that fails too.
    /// `Interrupted` is retried.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        dir: Direction,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> std::task::Poll<io::Result<R>> {
        use std::task::Poll;
        match retry_interrupted(|| op(&self.io)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return Poll::Ready(r),
        }
        self.reactor.park(self.key, dir, cx.waker());
        match retry_interrupted(|| op(&self.io)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            r => Poll::Ready(r),
        }
    }
}

impl<T: std::os::fd::AsFd> Drop for Registered<T> {
    fn drop(&mut self) {
        self.reactor.deregister(self.key, self.io.as_fd());
    }
}

/// Calls `f` again while it fails with `Interrupted` (EINTR).
pub(crate) fn retry_interrupted<R>(mut f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake};
    use std::time::Instant;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn readiness_wakes_parked_waker_and_deregistration_cleans_up() {
        let reactor = Reactor::current().unwrap();
        let before = reactor.registered();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let reg = Registered::new(sock, PollMode::Edge).unwrap();
        assert_eq!(reactor.registered(), before + 1);

        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 16];
        let mut op = |s: &UdpSocket| s.recv_from(&mut buf);
        assert!(reg.poll_io(&mut cx, Direction::Read, &mut op).is_pending());
        // Parking twice keeps one waker.
        assert!(reg.poll_io(&mut cx, Direction::Read, &mut op).is_pending());

        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"ping", addr)
            .unwrap();
        let start = Instant::now();
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "readiness never woke the waker"
            );
            reactor.wait(Some(Duration::from_secs(5))).unwrap();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        match reg.poll_io(&mut cx, Direction::Read, &mut op) {
            Poll::Ready(Ok((4, _))) => {}
            other => panic!("expected a 4-byte datagram, got {other:?}"),
        }
        drop(reg);
        assert_eq!(reactor.registered(), before);
    }

    #[test]
    fn new_reactor_starts_notified_then_honours_timeouts() {
        std::thread::spawn(|| {
            let r = Reactor::current().unwrap();
            let t = Instant::now();
            r.wait(None).unwrap(); // the initial notification
            assert!(t.elapsed() < Duration::from_secs(1));
            let t = Instant::now();
            r.wait(Some(Duration::from_millis(30))).unwrap();
            assert!(
                t.elapsed() >= Duration::from_millis(30),
                "returned early: {:?}",
                t.elapsed()
            );
        })
        .join()
        .unwrap();
    }
}
