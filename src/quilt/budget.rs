//! The temporary-disk budget: the sorted runs of out-of-order manifests, patched
//! manifests, and the local copies of verified manifests the revision cache keeps
//! (at most half of it), count against one budget per server
//! process (2 GiB); a call that would pass it is `too_large` (see `docs/reference.md`,
//! Results).

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::QuiltError;

/// The server's temporary-disk budget, in bytes.
pub(crate) const TEMP_DISK_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A budget of bytes shared by every call.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: AtomicU64,
}

/// The server's temporary-disk budget.
pub(crate) static TEMP_DISK: Budget = Budget::new(TEMP_DISK_BYTES);

impl Budget {
    /// A budget of `limit` bytes.
    pub(crate) const fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Bytes taken now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty charge against this budget, for sorting an out-of-order manifest.
    pub(crate) fn charge(&'static self) -> Charge {
        self.charge_for("sorting this out-of-order manifest")
    }

    /// An empty charge against this budget for `what` (said when it runs out).
    pub(crate) fn charge_for(&'static self, what: &'static str) -> Charge {
        Charge {
            budget: self,
            what,
            bytes: 0,
        }
    }

    fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: &'static Budget,
    what: &'static str,
    bytes: u64,
}

impl Charge {
    /// Takes `bytes` more; `too_large` when the budget has not got them.
    pub(crate) fn add(&mut self, bytes: u64) -> Result<(), QuiltError> {
        if !self.budget.take(bytes) {
            return Err(QuiltError::TooLarge(format!(
                "{} needs more temporary disk than is left of the server's {} MiB budget \
                 ({} MiB in use by other calls); try again later",
                self.what,
                self.budget.limit / (1024 * 1024),
                self.budget.used().saturating_sub(self.bytes) / (1024 * 1024)
            )));
        }
        self.bytes += bytes;
        Ok(())
    }

    /// The budget charged.
    pub(crate) fn budget(&self) -> &'static Budget {
        self.budget
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_given_back() {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(100)));
        let mut a = budget.charge();
        a.add(60).unwrap();
        let mut b = budget.charge();
        assert!(matches!(b.add(50), Err(QuiltError::TooLarge(_))));
        b.add(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.add(60).unwrap();
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
