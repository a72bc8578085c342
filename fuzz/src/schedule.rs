//! Cron expressions, which the owner of every scheduled action writes.

use vivarium_schedule::Schedule;

/// Moments a schedule is asked about: the epoch, 2026, and far in the future.
const MOMENTS: [i64; 3] = [0, 1_767_225_600_000_000, 253_402_300_799_000_000];

/// An expression: checked or refused; a checked one answers, from any moment, a firing
/// strictly later (or none), and the firing after that one later still.
pub fn run(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    for after in MOMENTS {
        let Some(next) = schedule.next_after(after) else {
            continue;
        };
        assert!(next > after, "{text:?} fires at {next}, not after {after}");
        if let Some(then) = schedule.next_after(next) {
            assert!(then > next, "{text:?} fires at {then} after {next}");
        }
    }
}
