//! A CSPRNG (ChaCha12) seeded once from the platform's entropy source.

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

static SEEDED: spin::Once<spin::Mutex<ChaCha12Rng>> = spin::Once::new();

/// A handle to the program's CSPRNG. Cheap to create; all handles share one state.
#[derive(Debug, Clone, Copy)]
pub struct Rng(());

impl Rng {
    pub(crate) fn get() -> Self {
        SEEDED.call_once(|| {
            let mut seed = [0u8; 32];
            if let Err(e) = crate::platform::get().entropy(&mut seed) {
                crate::console::_print(format_args!(
                    "oasis: cannot seed the random generator: {e}\n"
                ));
                crate::platform::get().exit(70);
            }
            spin::Mutex::new(ChaCha12Rng::from_seed(seed))
        });
        Rng(())
    }

    /// A random `u64`.
    pub fn next_u64(&self) -> u64 {
        Self::state().lock().next_u64()
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) {
        Self::state().lock().fill_bytes(buf);
    }

    fn state() -> &'static spin::Mutex<ChaCha12Rng> {
        SEEDED.get().expect("Rng handles exist only after seeding")
    }
}
