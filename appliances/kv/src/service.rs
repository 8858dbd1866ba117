//! The store side: a request channel between connection tasks and the one task that
//! owns the [`LogStore`], and [`Store::execute`], which runs a group of operations
//! with one commit (one flush) for all the writes among them.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use oasis::sync::{Channel, Signal};

use oasis::storage::{Batch, KvError, KvRead, KvWrite, LogStore, MAX_BATCH_BYTES};
use oasis_devices::BlockDevice;

use crate::api::{Op, Reply};

/// Writes committed together carry at most this many bytes of keys and values, so a
/// group always fits in one batch ([`MAX_BATCH_BYTES`]) with room for overheads.
pub const GROUP_BYTES: usize = MAX_BATCH_BYTES / 2;
/// Bytes a write adds to a batch besides its key and value (generous).
const OP_OVERHEAD: usize = 64;

/// Calls waiting for the store task at most; more callers wait for room (the
/// connection tasks, and so their clients, are held back instead of a queue growing).
pub const QUEUE_DEPTH: usize = 64;

/// One operation in the queue and where its answer goes.
pub struct Call {
    op: Op,
    reply: Arc<Signal<Reply>>,
}

/// The connection tasks' handle on the store task. Cheap to clone; `Send`.
#[derive(Clone)]
pub struct Client {
    queue: Arc<Channel<Call, QUEUE_DEPTH>>,
}

/// The store task's end of the channel.
pub struct Receiver {
    queue: Arc<Channel<Call, QUEUE_DEPTH>>,
}

/// A connected client and receiver.
pub fn channel() -> (Client, Receiver) {
    let queue = Arc::new(Channel::new());
    (
        Client {
            queue: queue.clone(),
        },
        Receiver { queue },
    )
}

impl Client {
    /// Sends `op` to the store task and waits for its answer.
    pub async fn call(&self, op: Op) -> Reply {
        let reply = Arc::new(Signal::new());
        self.queue
            .send(Call {
                op,
                reply: reply.clone(),
            })
            .await;
        reply.wait().await
    }
}

impl Receiver {
    /// Waits for at least one call, then takes every queued call.
    pub async fn recv_all(&self) -> Vec<Call> {
        let first = self.queue.receive().await;
        let mut calls = alloc::vec![first];
        while let Ok(c) = self.queue.try_receive() {
            calls.push(c);
        }
        calls
    }
}

/// The store and its group-commit logic.
pub struct Store<D> {
    kv: LogStore<D>,
    commits: u64,
}

impl<D: BlockDevice> Store<D> {
    /// Wraps a mounted store.
    pub fn new(kv: LogStore<D>) -> Self {
        Store { kv, commits: 0 }
    }

    /// The store.
    pub fn kv(&self) -> &LogStore<D> {
        &self.kv
    }

    /// Commits made so far (each is one device flush).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Serves calls forever.
    pub async fn run(&mut self, rx: &Receiver) {
        self.run_observed(rx, |_| ()).await
    }

    /// Serves calls forever, showing the store to `observe` after each group of
    /// operations (for usage gauges).
    pub async fn run_observed(&mut self, rx: &Receiver, mut observe: impl FnMut(&LogStore<D>)) {
        loop {
            // Moved, not cloned: a group may carry megabytes of values.
            let (ops, answers): (Vec<Op>, Vec<Arc<Signal<Reply>>>) = rx
                .recv_all()
                .await
                .into_iter()
                .map(|c| (c.op, c.reply))
                .unzip();
            let replies = self.execute(&ops).await;
            observe(&self.kv);
            for (answer, reply) in answers.into_iter().zip(replies) {
                answer.signal(reply);
            }
        }
    }

    /// Runs `ops`, which arrived together, and answers each (same order). Writes go
    /// first, committed in as few batches as fit [`GROUP_BYTES`] (one flush each);
    /// reads then see them. Concurrent requests may be ordered either way, so this
    /// is linearizable: every answer is sent after its effect is durable.
    pub async fn execute(&mut self, ops: &[Op]) -> Vec<Reply> {
        let mut replies: Vec<Option<Reply>> = ops.iter().map(|_| None).collect();
        let writes: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].is_write()).collect();
        let mut start = 0;
        while start < writes.len() {
            let mut end = start;
            let mut bytes = 0;
            while let Some(&i) = writes.get(end) {
                let size = match &ops[i] {
                    Op::Put { key, value } => key.len() + value.len() + OP_OVERHEAD,
                    Op::Delete { key } => key.len() + OP_OVERHEAD,
                    _ => 0,
                };
                if end > start && bytes + size > GROUP_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            let group = &writes[start..end];
            self.commit_group(ops, group, &mut replies).await;
            start = end;
        }
        for (i, op) in ops.iter().enumerate() {
            if replies[i].is_some() {
                continue;
            }
            replies[i] = Some(match op {
                // A value is read into memory whole: refuse when the heap could
                // not take it twice (value and response; the connection answers 503).
                Op::Get { key }
                    if !oasis::heap_has_room(
                        2 * self.kv.meta(key).map_or(0, |m| m.size as usize),
                    ) =>
                {
                    Reply::Refused(
                        oasis::http::StatusCode::ServiceUnavailable,
                        "out of memory: try again later\n",
                    )
                }
                Op::Get { key } => match self.kv.get(key).await {
                    Ok(Some(v)) => Reply::Value(v),
                    Ok(None) => Reply::NotFound,
                    Err(e) => Reply::Failed(e),
                },
                Op::List { prefix } => Reply::Keys(self.kv.list(prefix)),
                Op::Shutdown => Reply::Stopping,
                // Writes were answered above.
                Op::Put { .. } | Op::Delete { .. } => Reply::Failed(KvError::Poisoned),
            });
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or(Reply::Failed(KvError::Poisoned)))
            .collect()
    }

    /// Commits the writes `group` (indices into `ops`) as one batch; on
    /// [`KvError::Full`] retries them one by one so that those that fit succeed.
    async fn commit_group(&mut self, ops: &[Op], group: &[usize], replies: &mut [Option<Reply>]) {
        let (batch, planned) = self.plan(ops, group);
        if batch.is_empty() {
            for (i, r) in planned {
                replies[i] = Some(r);
            }
            return;
        }
        match self.commit(&batch).await {
            Ok(()) => {
                for (i, r) in planned {
                    replies[i] = Some(r);
                }
            }
            Err(KvError::Full { .. }) if group.len() > 1 => {
                for &i in group {
                    let (batch, planned) = self.plan(ops, &[i]);
                    let reply = match self.commit(&batch).await {
                        Ok(()) => planned.into_iter().next().map(|(_, r)| r),
                        Err(e) => Some(Reply::Failed(e)),
                    };
                    replies[i] = reply;
                }
            }
            Err(e) => {
                for &i in group {
                    replies[i] = Some(Reply::Failed(e.clone()));
                }
            }
        }
    }

    async fn commit(&mut self, batch: &Batch) -> Result<(), KvError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.kv.commit(batch).await?;
        self.commits += 1;
        Ok(())
    }

    /// The batch for `group` and each write's answer should it commit: 201 for a new
    /// key, 204 for a replaced or removed one, 404 for removing a missing key
    /// (nothing written), as if the writes ran in order.
    fn plan(&self, ops: &[Op], group: &[usize]) -> (Batch, Vec<(usize, Reply)>) {
        let mut batch = Batch::new();
        let mut planned = Vec::with_capacity(group.len());
        let mut exists: BTreeMap<String, bool> = BTreeMap::new();
        let mut present = |key: &str, now: Option<bool>, kv: &LogStore<D>| -> bool {
            let was = *exists.entry(key.into()).or_insert_with(|| kv.exists(key));
            if let Some(n) = now {
                exists.insert(key.into(), n);
            }
            was
        };
        for &i in group {
            match &ops[i] {
                Op::Put { key, value } => {
                    let was = present(key, Some(true), &self.kv);
                    batch.set(key, value);
                    planned.push((i, if was { Reply::Done } else { Reply::Created }));
                }
                Op::Delete { key } => {
                    if present(key, Some(false), &self.kv) {
                        batch.remove(key);
                        planned.push((i, Reply::Done));
                    } else {
                        planned.push((i, Reply::NotFound));
                    }
                }
                _ => {}
            }
        }
        (batch, planned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use oasis_devices::ramdisk::RamDisk;

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn put(k: &str, v: &[u8]) -> Op {
        Op::Put {
            key: k.into(),
            value: v.to_vec(),
        }
    }

    fn get(k: &str) -> Op {
        Op::Get { key: k.into() }
    }

    fn del(k: &str) -> Op {
        Op::Delete { key: k.into() }
    }

    fn store(sectors: u64) -> Store<RamDisk> {
        Store::new(block_on(LogStore::mount_or_format(RamDisk::new(sectors, 512))).unwrap())
    }

    #[test]
    fn a_group_of_writes_is_one_commit_with_per_request_answers() {
        let mut s = store(4096);
        let r = block_on(s.execute(&[
            put("a", b"1"),
            get("a"),
            put("a", b"2"),
            del("b"),
            put("b", b"3"),
            del("b"),
            Op::List { prefix: "".into() },
        ]));
        assert_eq!(
            r,
            [
                Reply::Created,
                Reply::Value(b"2".to_vec()),
                Reply::Done,
                Reply::NotFound,
                Reply::Created,
                Reply::Done,
                Reply::Keys(vec!["a".into()]),
            ]
        );
        assert_eq!(s.commits(), 1);
        let flushes = s.kv().device().flush_count();
        // Nothing to write: no commit.
        let r = block_on(s.execute(&[del("zzz"), get("zzz")]));
        assert_eq!(r, [Reply::NotFound, Reply::NotFound]);
        assert_eq!(s.commits(), 1);
        assert_eq!(s.kv().device().flush_count(), flushes);
    }

    #[test]
    fn acknowledged_writes_survive_a_power_cut() {
        let mut s = store(4096);
        let r = block_on(s.execute(&[put("x", b"durable"), put("y", b"too")]));
        assert_eq!(r, [Reply::Created, Reply::Created]);
        let disk = s.kv.into_device();
        disk.power_cut();
        let mut s = Store::new(block_on(LogStore::mount(disk)).unwrap());
        let r = block_on(s.execute(&[get("x"), get("y"), get("z")]));
        assert_eq!(
            r,
            [
                Reply::Value(b"durable".to_vec()),
                Reply::Value(b"too".to_vec()),
                Reply::NotFound
            ]
        );
    }

    #[test]
    fn a_full_store_still_takes_what_fits() {
        // 2 superblock sectors + two regions of 40 sectors (20 KiB each).
        let mut s = store(82);
        let big = vec![7u8; 12 * 1024];
        let r = block_on(s.execute(&[put("big1", &big), put("big2", &big), put("small", b"s")]));
        assert_eq!(r[0], Reply::Created);
        assert!(
            matches!(r[1], Reply::Failed(KvError::Full { .. })),
            "{:?}",
            r[1]
        );
        assert_eq!(r[2], Reply::Created);
        let r = block_on(s.execute(&[get("big1"), get("big2"), get("small")]));
        assert_eq!(r[0], Reply::Value(big.clone()));
        assert_eq!(r[1], Reply::NotFound);
        assert_eq!(r[2], Reply::Value(b"s".to_vec()));
    }

    #[test]
    fn large_groups_split_into_several_batches() {
        let mut s = store(40_000);
        let value = vec![1u8; 900 * 1024];
        let ops: Vec<Op> = (0..5)
            .map(|i| put(&alloc::format!("k{i}"), &value))
            .collect();
        let r = block_on(s.execute(&ops));
        assert!(r.iter().all(|r| *r == Reply::Created), "{r:?}");
        assert_eq!(
            s.commits(),
            3,
            "groups of at most 2 MiB: 2 + 2 + 1 values of 900 KiB"
        );
    }

    #[test]
    fn calls_travel_through_the_channel() {
        let (client, rx) = channel();
        let mut s = store(4096);
        let mut a = pin!(client.call(put("k", b"v")));
        let mut b = pin!(client.call(get("k")));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        let calls = block_on(rx.recv_all());
        assert_eq!(calls.len(), 2);
        let ops: Vec<Op> = calls.iter().map(|c| c.op.clone()).collect();
        let replies = block_on(s.execute(&ops));
        for (c, r) in calls.into_iter().zip(replies) {
            c.reply.signal(r);
        }
        assert_eq!(a.as_mut().poll(&mut cx), Poll::Ready(Reply::Created));
        assert_eq!(
            b.as_mut().poll(&mut cx),
            Poll::Ready(Reply::Value(b"v".to_vec()))
        );
    }
}
