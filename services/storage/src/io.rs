//! Byte-addressed reads over a sector-addressed `BlockDevice`.

use alloc::vec;
use alloc::vec::Vec;

use oasis_devices::BlockDevice;

use crate::KvError;

/// The most sectors one device request carries.
pub(crate) const MAX_SECTORS_PER_REQUEST: u64 = 128;

/// Reads `buf.len()` bytes at byte `offset`. Whole aligned sectors go straight into
/// `buf`; only a partial first or last sector passes through a bounce buffer.
pub(crate) async fn read_bytes<D: BlockDevice>(
    dev: &D,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), KvError> {
    let ss = u64::from(dev.geometry().sector_size);
    let mut bounce: Vec<u8> = Vec::new();
    let mut pos = offset;
    let mut done = 0;
    while done < buf.len() {
        let sector = pos / ss;
        let within = (pos % ss) as usize;
        let remaining = buf.len() - done;
        if within == 0 && remaining as u64 >= ss {
            let n = (remaining as u64 / ss).min(MAX_SECTORS_PER_REQUEST) * ss;
            let n = n as usize;
            dev.read(sector, &mut buf[done..done + n]).await?;
            done += n;
            pos += n as u64;
        } else {
            if bounce.is_empty() {
                bounce = vec![0; ss as usize];
            }
            dev.read(sector, &mut bounce).await?;
            let n = (ss as usize - within).min(remaining);
            buf[done..done + n].copy_from_slice(&bounce[within..within + n]);
            done += n;
            pos += n as u64;
        }
    }
    Ok(())
}
