//! The Oasis facade.
#![no_std]
#![forbid(unsafe_code)]
