//! Test doubles: the device side of a split ring on the same memory, and a
//! [`Transport`] whose registers live in a shared struct the test inspects.

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use crate::queue::QueueAddrs;
use crate::transport::{Isr, Transport, TransportError, status};

/// One descriptor as the device sees it.
#[derive(Debug, Clone, Copy)]
pub struct FakeDesc {
    pub addr: u64,
    pub len: u32,
    pub write: bool,
}

/// A chain taken off the available ring.
#[derive(Debug, Clone)]
pub struct FakeChain {
    pub head: u32,
    pub descs: Vec<FakeDesc>,
}

impl FakeChain {
    /// Concatenation of the device-readable descriptors.
    pub fn readable(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for d in self.descs.iter().filter(|d| !d.write) {
            // SAFETY: test-only device model: the driver posted `addr..addr+len` as a
            // buffer it keeps alive while posted (identity-mapped heap memory).
            v.extend_from_slice(unsafe {
                std::slice::from_raw_parts(d.addr as *const u8, d.len as usize)
            });
        }
        v
    }

    pub fn writable_len(&self) -> u32 {
        self.descs.iter().filter(|d| d.write).map(|d| d.len).sum()
    }

    /// Writes `data` across the writable descriptors; returns bytes written.
    pub fn write(&self, data: &[u8]) -> u32 {
        let mut rest = data;
        let mut n = 0;
        for d in self.descs.iter().filter(|d| d.write) {
            let k = rest.len().min(d.len as usize);
            // SAFETY: as in `readable`; the descriptor is device-writable.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), d.addr as *mut u8, k) };
            rest = &rest[k..];
            n += k as u32;
        }
        n
    }

    /// Writes `data` at byte `offset` of the writable part.
    pub fn write_at(&self, mut offset: usize, data: &[u8]) {
        let mut rest = data;
        for d in self.descs.iter().filter(|d| d.write) {
            let len = d.len as usize;
            if offset >= len {
                offset -= len;
                continue;
            }
            let k = rest.len().min(len - offset);
            // SAFETY: as in `write`; `offset + k <= len`.
            unsafe {
                std::ptr::copy_nonoverlapping(rest.as_ptr(), (d.addr as *mut u8).add(offset), k)
            };
            rest = &rest[k..];
            offset = 0;
        }
    }
}

/// The device side of a split virtqueue.
#[derive(Debug)]
pub struct FakeRing {
    size: u16,
    addrs: QueueAddrs,
    last_avail: u16,
    used_idx: u16,
}

impl FakeRing {
    pub fn new(size: u16, addrs: QueueAddrs) -> Self {
        Self {
            size,
            addrs,
            last_avail: 0,
            used_idx: 0,
        }
    }

    fn rd16(addr: u64) -> u16 {
        // SAFETY: test device model: `addr` lies in the ring allocation the driver
        // programmed (kept alive by the queue under test).
        unsafe { std::ptr::read_volatile(addr as *const u16) }
    }

    fn wr16(addr: u64, v: u16) {
        // SAFETY: as in `rd16`.
        unsafe { std::ptr::write_volatile(addr as *mut u16, v) }
    }

    fn wr32(addr: u64, v: u32) {
        // SAFETY: as in `rd16`.
        unsafe { std::ptr::write_volatile(addr as *mut u32, v) }
    }

    pub fn pop_avail(&mut self) -> Option<FakeChain> {
        let idx = Self::rd16(self.addrs.driver + 2);
        if idx == self.last_avail {
            return None;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let pos = u64::from(self.last_avail % self.size);
        let head = Self::rd16(self.addrs.driver + 4 + 2 * pos);
        self.last_avail = self.last_avail.wrapping_add(1);
        let mut descs = Vec::new();
        let mut d = head;
        for _ in 0..self.size {
            let base = self.addrs.desc + 16 * u64::from(d);
            // SAFETY: as in `rd16`; the descriptor table is 16-aligned.
            let (addr, len) = unsafe {
                (
                    std::ptr::read_volatile(base as *const u64),
                    std::ptr::read_volatile((base + 8) as *const u32),
                )
            };
            let flags = Self::rd16(base + 12);
            descs.push(FakeDesc {
                addr,
                len,
                write: flags & 2 != 0,
            });
            if flags & 1 == 0 {
                break;
            }
            d = Self::rd16(base + 14);
        }
        Some(FakeChain {
            head: u32::from(head),
            descs,
        })
    }

    pub fn push_used(&mut self, id: u32, len: u32) {
        let pos = u64::from(self.used_idx % self.size);
        Self::wr32(self.addrs.device + 4 + 8 * pos, id);
        Self::wr32(self.addrs.device + 8 + 8 * pos, len);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.used_idx = self.used_idx.wrapping_add(1);
        Self::wr16(self.addrs.device + 2, self.used_idx);
    }

    pub fn set_no_notify(&mut self, on: bool) {
        Self::wr16(self.addrs.device, u16::from(on));
    }

    pub fn set_avail_event(&mut self, v: u16) {
        Self::wr16(self.addrs.device + 4 + 8 * u64::from(self.size), v);
    }

    pub fn used_event(&self) -> u16 {
        Self::rd16(self.addrs.driver + 4 + 2 * u64::from(self.size))
    }
}

/// Registers of the fake transport.
#[derive(Debug, Default)]
pub struct FakeState {
    pub device_id: u32,
    pub offered: u64,
    pub driver_features: u64,
    pub status: u8,
    /// Refuse FEATURES_OK (the device rejects the subset).
    pub refuse_features: bool,
    pub max_queue: u16,
    pub queues: Vec<Option<(u16, QueueAddrs)>>,
    pub notifications: Vec<u16>,
    pub isr: u32,
    pub config: Vec<u8>,
    pub generation: u32,
}

/// A transport over [`FakeState`], shared with the test.
#[derive(Debug, Clone)]
pub struct FakeTransport(pub Rc<RefCell<FakeState>>);

impl FakeTransport {
    pub fn new(device_id: u32, offered: u64, config: Vec<u8>) -> Self {
        Self(Rc::new(RefCell::new(FakeState {
            device_id,
            offered,
            max_queue: 256,
            config,
            ..Default::default()
        })))
    }

    /// The device side of queue `q` as the driver set it up.
    pub fn ring(&self, q: u16) -> FakeRing {
        let (size, addrs) = self.0.borrow().queues[usize::from(q)].unwrap();
        FakeRing::new(size, addrs)
    }
}

impl Transport for FakeTransport {
    fn device_id(&self) -> u32 {
        self.0.borrow().device_id
    }
    fn device_features(&mut self) -> u64 {
        self.0.borrow().offered
    }
    fn set_driver_features(&mut self, features: u64) {
        self.0.borrow_mut().driver_features = features;
    }
    fn status(&self) -> u8 {
        self.0.borrow().status
    }
    fn set_status(&mut self, s: u8) {
        let mut st = self.0.borrow_mut();
        if s & status::FEATURES_OK != 0
            && (st.refuse_features || st.driver_features & !st.offered != 0)
        {
            st.status = s & !status::FEATURES_OK;
        } else {
            st.status = s;
        }
        if s == 0 {
            st.queues.clear();
        }
    }
    fn max_queue_size(&mut self, queue: u16) -> u16 {
        if queue < 2 {
            self.0.borrow().max_queue
        } else {
            0
        }
    }
    fn setup_queue(
        &mut self,
        queue: u16,
        size: u16,
        addrs: QueueAddrs,
    ) -> Result<(), TransportError> {
        let mut st = self.0.borrow_mut();
        let i = usize::from(queue);
        if st.queues.len() <= i {
            st.queues.resize(i + 1, None);
        }
        st.queues[i] = Some((size, addrs));
        Ok(())
    }
    fn notify(&mut self, queue: u16) {
        self.0.borrow_mut().notifications.push(queue);
    }
    fn ack_interrupt(&mut self) -> Isr {
        Isr::from_bits(core::mem::take(&mut self.0.borrow_mut().isr))
    }
    fn config_generation(&self) -> u32 {
        self.0.borrow().generation
    }
    fn read_config8(&self, offset: usize) -> Result<u8, TransportError> {
        let st = self.0.borrow();
        st.config
            .get(offset)
            .copied()
            .ok_or(TransportError::ConfigOutOfRange {
                offset,
                width: 1,
                len: st.config.len(),
            })
    }
    fn config_len(&self) -> usize {
        self.0.borrow().config.len()
    }
}
