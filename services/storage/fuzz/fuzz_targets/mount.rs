//! Fuzz target: mount arbitrary bytes as a LogStore image and as a TarStore image,
//! then read and write through whatever mounted; must never panic.
#![no_main]

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use oasis_devices::ramdisk::RamDisk;
use oasis_storage::{KvRead, KvWrite, LogStore, TarStore};

fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 20 {
        return;
    }
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
});
