//! Authoritative DNS for Oasis: the core of the `dns` appliance.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod name;
pub mod rdata;
pub mod wire;
pub mod zone;
pub mod catalog;
