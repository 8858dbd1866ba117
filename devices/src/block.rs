//! `BlockDevice`: sector-addressed storage with several requests in flight.
//!
//! Contract: `read`/`write` transfer whole sectors (`buf.len()` must be a non-zero
//! multiple of the sector size); a completed `write` is in the device's volatile
//! cache and survives power loss only after a later `flush` completes. Methods take
//! `&self` so several requests can be in flight at once; drivers use interior
//! mutability. Dropping a request future before it completes abandons the result,
//! never the buffer's memory safety (drivers copy or pin as needed).

/// Size and capabilities of a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of sectors.
    pub sectors: u64,
    /// Bytes per sector (512 or 4096).
    pub sector_size: u32,
    /// Writes fail with [`BlockError::ReadOnly`].
    pub read_only: bool,
}

impl Geometry {
    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors * u64::from(self.sector_size)
    }
}

/// What went wrong with a block request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The request reaches past the end of the device.
    #[error("sectors {start}..{end} are out of range (device has {sectors})")]
    OutOfRange {
        /// First sector asked for.
        start: u64,
        /// One past the last sector asked for.
        end: u64,
        /// Sectors on the device.
        sectors: u64,
    },
    /// The buffer is not a non-zero multiple of the sector size.
    #[error("buffer of {len} bytes is not a non-zero multiple of the {sector_size}-byte sector")]
    Misaligned {
        /// Buffer length.
        len: usize,
        /// Sector size.
        sector_size: u32,
    },
    /// The device is read-only.
    #[error("the device is read-only")]
    ReadOnly,
    /// The device reported an I/O error.
    #[error("the device reported an I/O error")]
    Io,
    /// The device does not support the operation.
    #[error("the device does not support this operation")]
    Unsupported,
}

/// A block device.
#[allow(async_fn_in_trait)] // single-threaded executor: futures need not be Send
pub trait BlockDevice {
    /// Size, sector size, read-only flag.
    fn geometry(&self) -> Geometry;

    /// Reads `buf.len() / sector_size` sectors starting at `sector`.
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// Writes `buf.len() / sector_size` sectors starting at `sector`.
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;

    /// Makes every completed write durable.
    async fn flush(&self) -> Result<(), BlockError>;

    /// Checks a request's shape against the geometry; drivers call this first.
    fn check(&self, sector: u64, len: usize, write: bool) -> Result<(), BlockError> {
        let g = self.geometry();
        let ss = g.sector_size as usize;
        if len == 0 || !len.is_multiple_of(ss) {
            return Err(BlockError::Misaligned {
                len,
                sector_size: g.sector_size,
            });
        }
        if write && g.read_only {
            return Err(BlockError::ReadOnly);
        }
        let count = (len / ss) as u64;
        match sector.checked_add(count) {
            Some(end) if end <= g.sectors => Ok(()),
            _ => Err(BlockError::OutOfRange {
                start: sector,
                end: sector.saturating_add(count),
                sectors: g.sectors,
            }),
        }
    }
}
