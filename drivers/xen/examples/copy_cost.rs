//! What `forbid(unsafe_code)` costs on the data path: shared pages are seen as
//! atomic words, so a frame is copied in or out word by word. Prints the time per
//! 1514-byte frame copy each way and netfront's frame rate against the model
//! netback (which dominates that figure; it bounds the driver's cost from above).
//!
//! `cargo run --release -p oasis-xen --features test-utils --example copy_cost`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use oasis_devices::NetDevice;
use oasis_xen::grant::{GrantTable, SharedGrants};
use oasis_xen::model::{ModelNetback, ModelXen};
use oasis_xen::net::{NetConfig, NetFront};
use oasis_xen::xenstore::Xenstore;

fn main() {
    let hv = ModelXen::new();
    let page = hv.new_page();
    let mut frame = vec![0u8; 1514];
    let n = 1_000_000;
    let t = Instant::now();
    for i in 0..n {
        frame[0] = i as u8;
        page.write_bytes(0, &frame);
    }
    let w = t.elapsed().as_nanos() as f64 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        page.read_bytes(0, &mut frame);
    }
    let r = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("copy 1514 B into a shared page: {w:.0} ns; out of it: {r:.0} ns");

    let xsd = hv.start_xenstored();
    let nb = Rc::new(RefCell::new(ModelNetback::new(xsd, 0, "00:16:3e:00:00:09")));
    let n2 = nb.clone();
    hv.add_hook(Box::new(move |hv| n2.borrow_mut().step(hv)));
    let gnt = SharedGrants::new(GrantTable::new(&hv, 1).expect("grant table"));
    let mut xs = Xenstore::connect(&hv).expect("xenstore");
    let mut nf = NetFront::new(&hv, &gnt, &mut xs, 0, NetConfig::default()).expect("netfront");
    let frames = 100_000u32;
    let t = Instant::now();
    let mut got = 0u32;
    for i in 0..frames {
        nb.borrow_mut().to_guest.push_back(vec![i as u8; 1514]);
        nf.transmit(1514, |b| b[0] = i as u8);
        nf.poll();
        hv.run_hooks();
        nb.borrow_mut().from_guest.clear();
        while nf.receive(|b| b.len()).is_some() {
            got += 1;
        }
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(got, frames);
    println!(
        "netfront + model netback: {:.0} frames/s each way (1514 B), {:.2} µs per tx+rx pair",
        f64::from(frames) / s,
        s * 1e6 / f64::from(frames)
    );
}
