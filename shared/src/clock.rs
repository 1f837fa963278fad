//! The time, passed in: whatever decides by the clock (idempotency windows, retry budgets) asks
//! this instead of the system, so a test can move time forward by hours without waiting.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system's clock, what the functions run on.
pub fn system() -> Clock {
    Arc::new(SystemTime::now)
}

/// The system's clock moved `ahead`: a test's way of being later than now.
pub fn ahead(ahead: Duration) -> Clock {
    Arc::new(move || SystemTime::now() + ahead)
}
