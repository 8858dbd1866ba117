//! Exhaustive power-cut test: a deterministic workload is run once per device write,
//! with the power cut at that write (and, separately, at the flush after it), with
//! and without torn writes. After each cut the store must mount (never `Corrupt`),
//! hold every acknowledged operation, hold the interrupted one entirely or not at all,
//! and keep working.

mod common;

use std::collections::BTreeMap;

use common::{Rng, block_on};
use oasis_devices::ramdisk::RamDisk;
use oasis_storage::{Batch, KvError, KvRead, KvWrite, LogStore};

/// 2 superblock sectors + two regions of 40 sectors of 512 bytes.
const SECTORS: u64 = 82;
const STEPS: usize = 300;

#[derive(Debug, Clone)]
enum Step {
    Set(String, Vec<u8>),
    Remove(String),
    Rename(String, String),
    Batch(Batch),
}

type Model = BTreeMap<String, Vec<u8>>;

fn workload() -> Vec<Step> {
    let mut rng = Rng::new(0x0a51_5000_dead_beef);
    let key = |rng: &mut Rng| format!("key/{}", rng.below(12));
    let value = |rng: &mut Rng, i: usize| {
        let len = 1 + rng.below(300) as usize;
        (0..len).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>()
    };
    (0..STEPS)
        .map(|i| match rng.below(10) {
            0..=4 => Step::Set(key(&mut rng), value(&mut rng, i)),
            5 | 6 => Step::Remove(key(&mut rng)),
            7 => Step::Rename(key(&mut rng), key(&mut rng)),
            _ => {
                let mut b = Batch::new();
                for _ in 0..2 + rng.below(3) {
                    if rng.below(3) == 0 {
                        b.remove(&key(&mut rng));
                    } else {
                        b.set(&key(&mut rng), &value(&mut rng, i));
                    }
                }
                Step::Batch(b)
            }
        })
        .collect()
}

fn apply_model(m: &Model, step: &Step) -> Model {
    let mut m = m.clone();
    match step {
        Step::Set(k, v) => {
            m.insert(k.clone(), v.clone());
        }
        Step::Remove(k) => {
            m.remove(k);
        }
        Step::Rename(from, to) => {
            if let Some(v) = m.remove(from) {
                m.insert(to.clone(), v);
            }
        }
        Step::Batch(b) => {
            for op in b.ops() {
                match op {
                    oasis_storage::Op::Set { key, value } => {
                        m.insert(key.clone(), value.clone());
                    }
                    oasis_storage::Op::Remove { key } => {
                        m.remove(key);
                    }
                }
            }
        }
    }
    m
}

fn run_step(store: &mut LogStore<RamDisk>, step: &Step) -> Result<(), KvError> {
    block_on(async {
        match step {
            Step::Set(k, v) => store.set(k, v).await,
            Step::Remove(k) => store.remove(k).await.map(drop),
            Step::Rename(from, to) => match store.rename(from, to).await {
                Err(KvError::NotFound { .. }) => Ok(()),
                r => r,
            },
            Step::Batch(b) => store.commit(b).await,
        }
    })
}

fn contents(store: &LogStore<RamDisk>) -> Model {
    store
        .list("")
        .into_iter()
        .map(|k| {
            let v = block_on(store.get(&k)).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

fn fresh() -> LogStore<RamDisk> {
    block_on(LogStore::format(RamDisk::new(SECTORS, 512))).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    AtWrite,
    BeforeFlush,
}

/// Runs the workload with the power cut after `k` device writes; checks recovery.
fn cut_and_check(steps: &[Step], states: &[Model], k: u64, cut: Cut, torn: Option<u64>) {
    let mut store = fresh();
    store.device().set_torn_writes(torn);
    match cut {
        Cut::AtWrite => store.device().fail_after_writes(Some(k)),
        Cut::BeforeFlush => store.device().fail_after_writes_or_flush(Some(k)),
    }
    let mut acked = 0;
    for step in steps {
        match run_step(&mut store, step) {
            Ok(()) => acked += 1,
            Err(KvError::Block(_)) => break,
            Err(e) => panic!("k={k}: unexpected error {e}"),
        }
    }
    assert!(acked < steps.len(), "k={k}: the power was never cut");
    let disk = store.into_device();
    disk.power_cut();
    let mut store = match block_on(LogStore::mount(disk)) {
        Ok(s) => s,
        Err(e) => panic!("k={k} {cut:?} torn={torn:?}: mount failed: {e}"),
    };
    let got = contents(&store);
    let ok = got == states[acked] || got == states[acked + 1];
    assert!(
        ok,
        "k={k} {cut:?} torn={torn:?}: recovered state matches neither step {acked} nor {}",
        acked + 1
    );
    // The recovered store keeps working, across another remount.
    block_on(store.set("after/cut", b"still writable")).unwrap();
    let mut expected = got;
    expected.insert("after/cut".into(), b"still writable".to_vec());
    let store = block_on(LogStore::mount(store.into_device())).unwrap();
    assert_eq!(
        contents(&store),
        expected,
        "k={k}: write after recovery lost"
    );
}

fn model_states(steps: &[Step]) -> Vec<Model> {
    let mut states = vec![Model::new()];
    for s in steps {
        let next = apply_model(states.last().unwrap(), s);
        states.push(next);
    }
    states
}

/// Runs the workload uninterrupted; returns the device writes it takes.
fn reference_run(steps: &[Step], states: &[Model]) -> u64 {
    let mut store = fresh();
    let start = store.device().write_count();
    for (i, step) in steps.iter().enumerate() {
        run_step(&mut store, step).unwrap();
        if i % 37 == 0 {
            assert_eq!(contents(&store), states[i + 1], "step {i}");
        }
    }
    assert_eq!(contents(&store), states[steps.len()]);
    assert!(
        store.stats().compactions >= 2,
        "workload must compact: {:?}",
        store.stats()
    );
    let total = store.device().write_count() - start;
    println!("workload: {} device writes, {:?}", total, store.stats());
    total
}

#[test]
fn every_write_cut_recovers() {
    let steps = workload();
    let states = model_states(&steps);
    let total = reference_run(&steps, &states);
    for k in 0..total {
        cut_and_check(&steps, &states, k, Cut::AtWrite, None);
        cut_and_check(&steps, &states, k, Cut::BeforeFlush, None);
    }
}

#[test]
fn every_torn_write_cut_recovers() {
    let steps = workload();
    let states = model_states(&steps);
    let total = reference_run(&steps, &states);
    for k in 0..total {
        cut_and_check(&steps, &states, k, Cut::AtWrite, Some(k * 7919 + 1));
        cut_and_check(&steps, &states, k, Cut::BeforeFlush, Some(k * 104_729 + 3));
    }
}

/// Many cuts in one history: crash, recover, carry on, crash again. Catches state
/// that one crash leaves behind and a later recovery or compaction trips over.
fn repeated_cuts(seed: u64, torn: bool) {
    let steps = workload();
    let mut rng = Rng::new(seed);
    let mut model = Model::new();
    let mut store = fresh();
    let mut i = 0;
    let mut cuts = 0;
    while i < steps.len() {
        store.device().set_torn_writes(torn.then(|| rng.next_u64()));
        let k = Some(rng.below(25));
        if rng.below(2) == 0 {
            store.device().fail_after_writes(k);
        } else {
            store.device().fail_after_writes_or_flush(k);
        }
        while i < steps.len() {
            match run_step(&mut store, &steps[i]) {
                Ok(()) => {
                    model = apply_model(&model, &steps[i]);
                    i += 1;
                }
                Err(KvError::Block(_)) => break,
                Err(e) => panic!("step {i}: unexpected error {e}"),
            }
        }
        if i == steps.len() {
            break;
        }
        cuts += 1;
        let after = apply_model(&model, &steps[i]);
        let disk = store.into_device();
        disk.power_cut();
        store = match block_on(LogStore::mount(disk)) {
            Ok(s) => s,
            Err(e) => panic!("seed {seed} cut {cuts} at step {i}: mount failed: {e}"),
        };
        let got = contents(&store);
        assert!(
            got == model || got == after,
            "seed {seed} cut {cuts} at step {i}: wrong state"
        );
        if got == after && got != model {
            i += 1;
        }
        model = got;
    }
    assert_eq!(contents(&store), model);
    assert!(cuts > 10, "only {cuts} cuts");
}

#[test]
fn repeated_cuts_recover() {
    for seed in 1..=40 {
        repeated_cuts(seed * 0x9e37_79b9, false);
        repeated_cuts(seed * 0x85eb_ca6b, true);
    }
}
