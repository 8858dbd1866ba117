//! The `mount` fuzz target's body, shared by the cargo-fuzz target and the stable
//! replay test: mount arbitrary bytes as a LogStore image and as a TarStore image,
//! then read and write through whatever mounted; must never panic.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use oasis_devices::ramdisk::RamDisk;
use oasis_storage::{KvRead, KvWrite, LogStore, TarStore};

/// Polls a future that completes without waiting (RamDisk futures do).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Mounts `data` both ways and exercises what mounted.
pub fn run(data: &[u8]) {
    let mut image = data.to_vec();
    image.resize(image.len().max(16 * 512), 0);
    if let Ok(mut store) = block_on(LogStore::mount(RamDisk::from_image(&image, 512))) {
        for key in store.list("") {
            let _ = block_on(store.get(&key));
        }
        let _ = block_on(store.set("fuzz", b"value"));
        let _ = block_on(LogStore::mount(store.into_device()));
    }
    if let Ok(store) = block_on(TarStore::mount(RamDisk::from_image(data, 512))) {
        for key in store.list("") {
            let _ = block_on(store.get(&key));
            let _ = block_on(store.digest(&key));
        }
    }
}
