//! The timer queue: user timers, idle timeouts, accept back-off and the shutdown deadline, in one
//! min-heap whose earliest deadline sets the poll timeout.
//!
//! Cancelling leaves the heap node in place (removing from the middle of a binary heap costs O(n));
//! the node is recognised as dead when it reaches the top because its slot's generation moved on. To
//! keep that garbage bounded, the heap is rebuilt from the live timers whenever dead nodes outnumber
//! them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::token::{Generations, Key};

/// How far off a deadline may lie. Durations come from the application and its config
/// (`Duration::MAX` included), and `Instant + Duration` panics past what the clock can represent; a
/// century is "never" for a loop, and always representable.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + after`, saturated: a deadline too far off to represent becomes [`NEVER`] from now, or as much
/// of it as the clock can hold.
pub(crate) fn deadline_after(now: Instant, after: Duration) -> Instant {
    let mut after = after.min(NEVER);
    // Halving reaches zero within 64 steps, and `now + 0` always exists.
    loop {
        match now.checked_add(after) {
            Some(deadline) => return deadline,
            None => after /= 2,
        }
    }
}

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// An application timer, with the application's tag.
    User(u64),
    /// Check whether this connection has been idle too long.
    Idle(Key),
    /// Try accepting on this listener again after running out of descriptors or memory.
    AcceptRetry(Key),
    /// A connection we closed waited long enough for the peer's FIN.
    Linger(Key),
    /// A graceful shutdown's time is up.
    ShutdownDeadline,
}

#[derive(Debug)]
struct Timer {
    deadline: Instant,
    kind: TimerKind,
    generation: u32,
    /// The firing phase that was current when the timer was set.
    phase: u64,
}

/// Timers ordered by deadline.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    timers: Slab<Timer>,
    heap: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    generations: Generations,
    /// Counts firing phases, so that a timer set while its phase runs (a zero-delay timer re-armed from
    /// its own callback) waits for the next one instead of firing again in the same turn.
    phase: u64,
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: Instant, kind: TimerKind) -> Key {
        let generation = self.generations.next();
        let slot = self.timers.insert(Timer { deadline, kind, generation, phase: self.phase });
        self.heap.push(Reverse((deadline, slot, generation)));
        self.compact_if_mostly_dead();
        Key { slot, generation }
    }

    /// Removes a timer; false if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: Key) -> bool {
        match self.timers.get(key.slot) {
            Some(timer) if timer.generation == key.generation => {
                self.timers.remove(key.slot);
                true
            }
            _ => false,
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_dead_top();
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Opens a firing phase: from now on, [`pop_expired`](Self::pop_expired) passes over the timers set
    /// during it.
    pub(crate) fn begin_phase(&mut self) {
        self.phase += 1;
    }

    /// Takes the earliest timer whose deadline is at or before `now` and that was set before the current
    /// firing phase began.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(Key, TimerKind)> {
        self.drop_dead_top();
        let Reverse((deadline, slot, generation)) = *self.heap.peek()?;
        // A timer set during this phase has a deadline no earlier than `now`, so it sorts after every
        // timer that is due: stopping at it leaves none of those behind but an exact tie, which then
        // fires on the next turn.
        if deadline > now || self.timers[slot].phase == self.phase {
            return None;
        }
        self.heap.pop();
        let timer = self.timers.remove(slot);
        Some((Key { slot, generation }, timer.kind))
    }

    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    fn is_live(&self, slot: usize, generation: u32) -> bool {
        self.timers.get(slot).is_some_and(|t| t.generation == generation)
    }

    fn drop_dead_top(&mut self) {
        while let Some(Reverse((_, slot, generation))) = self.heap.peek() {
            if self.is_live(*slot, *generation) {
                break;
            }
            self.heap.pop();
        }
    }

    fn compact_if_mostly_dead(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.timers.len() {
            self.heap =
                self.timers.iter().map(|(slot, t)| Reverse((t.deadline, slot, t.generation))).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        let late = queue.insert(start + Duration::from_millis(30), TimerKind::User(3));
        let cancelled = queue.insert(start + Duration::from_millis(10), TimerKind::User(1));
        queue.insert(start + Duration::from_millis(20), TimerKind::User(2));
        assert!(queue.cancel(cancelled));
        assert!(!queue.cancel(cancelled), "a timer cancels once");
        assert_eq!(queue.next_deadline(), Some(start + Duration::from_millis(20)));
        queue.begin_phase();
        assert_eq!(queue.pop_expired(start + Duration::from_millis(15)), None);
        let fired: Vec<_> = std::iter::from_fn(|| queue.pop_expired(start + Duration::from_secs(1)))
            .map(|(_, kind)| kind)
            .collect();
        assert_eq!(fired, [TimerKind::User(2), TimerKind::User(3)]);
        assert!(!queue.cancel(late), "a fired timer cannot be cancelled");
    }

    #[test]
    fn a_timer_set_while_timers_fire_waits_for_the_next_phase() {
        let now = Instant::now();
        let mut queue = TimerQueue::default();
        queue.insert(now, TimerKind::User(1));
        queue.insert(now + Duration::from_secs(60), TimerKind::User(2));
        queue.begin_phase();
        assert_eq!(queue.pop_expired(now).map(|t| t.1), Some(TimerKind::User(1)));
        queue.insert(now, TimerKind::User(3));
        assert_eq!(queue.pop_expired(now), None, "set during the phase: not due in it");
        queue.begin_phase();
        assert_eq!(queue.pop_expired(now).map(|t| t.1), Some(TimerKind::User(3)));
    }

    #[test]
    fn cancelled_timers_do_not_accumulate() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        for i in 0..10_000 {
            let key = queue.insert(start + Duration::from_secs(60 + i), TimerKind::User(i));
            queue.cancel(key);
        }
        assert_eq!(queue.len(), 0);
        assert!(queue.heap.len() <= 65, "heap kept {} dead nodes", queue.heap.len());
    }

    #[test]
    fn an_unrepresentable_deadline_saturates() {
        let now = Instant::now();
        assert_eq!(deadline_after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
        assert_eq!(deadline_after(now, Duration::MAX), now + NEVER);
    }

    #[test]
    fn a_reused_slot_does_not_revive_a_cancelled_timer() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        let first = queue.insert(start, TimerKind::User(1));
        queue.cancel(first);
        let second = queue.insert(start + Duration::from_millis(5), TimerKind::User(2));
        assert_eq!(first.slot, second.slot);
        queue.begin_phase();
        assert_eq!(queue.pop_expired(start), None, "the cancelled node must not fire as the new timer");
        assert_eq!(
            queue.pop_expired(start + Duration::from_millis(5)).map(|t| t.1),
            Some(TimerKind::User(2))
        );
    }
}
