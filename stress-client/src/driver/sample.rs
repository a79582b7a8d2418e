//! `connect --echo-every K`: as the hold ends, every Kth connection (by id, so the sample is spread over
//! loops and processes alike) sends one message and verifies its echo before everything closes. This is
//! how a run that holds many idle connections shows that they still work, not only that they are open.

use std::time::{Duration, Instant};

use reactor::Context;

use super::{DRAIN, Driver, Phase, Work};

/// Bytes of a sample message: enough to carry the connection id and sequence the verifier checks.
pub const SAMPLE_SIZE: usize = 32;
/// How long the end of a hold waits for the sample's echoes. Longer than an echo run's drain: the
/// sample is sent while the server may be busy closing the connections of other client processes
/// (hundreds of thousands at the top of a ladder), and a slow echo is not a lost one.
pub const SAMPLE_DRAIN: Duration = Duration::from_secs(10);

/// Message size of a hold: [`SAMPLE_SIZE`] with a sample, nothing without.
pub(super) fn size(echo_every: Option<u64>) -> usize {
    if echo_every.is_some() { SAMPLE_SIZE } else { 0 }
}

/// The slot indices of a loop whose first connection id is `first_id` and that holds `slots` slots,
/// whose connection id is a multiple of `every`.
fn sampled(first_id: u64, slots: usize, every: u64) -> impl Iterator<Item = usize> {
    let every = every.max(1);
    let first = (every - first_id % every) % every;
    (first..slots as u64).step_by(usize::try_from(every).unwrap_or(usize::MAX)).map(|i| i as usize)
}

impl Driver {
    /// The end timer fired. A hold with a sample first sends the sample's messages, so that the drain
    /// that follows waits for their echoes; then the run ends as any other.
    pub(super) fn hold_ended(&mut self, ctx: &mut Context<'_>) {
        if let Work::Hold { echo_every: Some(every), .. } = self.plan.work
            && self.phase == Phase::Running
        {
            for index in sampled(self.plan.first_id, self.slots.len(), every) {
                self.send_sample(ctx, index);
            }
        }
        self.end(ctx);
    }

    /// Sends one message on slot `index`, if its connection is still open.
    fn send_sample(&mut self, ctx: &mut Context<'_>, index: usize) {
        let slot = &mut self.slots[index];
        let (Some(conn), Some(_)) = (slot.conn, slot.opened_at) else { return };
        slot.stream.next_message(&mut self.message);
        if ctx.send(conn, &self.message).is_err() {
            // Closing already; on_close will say why, and the slot owes nothing.
            slot.stream.unsend();
            return;
        }
        slot.sent_at.push_back(Instant::now());
        self.tally.bytes_sent += self.message.len() as u64;
        self.samples_owed += 1;
    }

    /// How long the end of the run waits for echoes in flight: [`SAMPLE_DRAIN`] for a sample.
    pub(super) fn drain(&self) -> Duration {
        if self.samples_owed > 0 { SAMPLE_DRAIN } else { DRAIN }
    }

    /// `completed` sample echoes came back verified; once none is owed, the drain need not wait.
    pub(super) fn samples_returned(&mut self, ctx: &mut Context<'_>, completed: u64) {
        self.samples_owed = self.samples_owed.saturating_sub(completed);
        // Counted, not scanned for: looking for echoes in flight is a pass over every slot.
        if self.samples_owed == 0 {
            self.check_drained(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn the_sample_is_every_kth_id_across_loops() {
        // Ids 0..10 in one loop, and the same ids split over loops of 4, 3 and 3: the same sample.
        let one: Vec<usize> = sampled(0, 10, 3).collect();
        assert_eq!(one, [0, 3, 6, 9]);
        let split: Vec<u64> = [(0u64, 4usize), (4, 3), (7, 3)]
            .into_iter()
            .flat_map(|(first, n)| sampled(first, n, 3).map(move |i| first + i as u64))
            .collect();
        assert_eq!(split, [0, 3, 6, 9]);
    }

    #[test]
    fn every_one_samples_all_and_a_large_k_samples_the_first_multiple_only() {
        assert_eq!(sampled(5, 4, 1).count(), 4);
        assert_eq!(sampled(1, 5, u64::MAX).count(), 0);
        assert_eq!(sampled(0, 5, u64::MAX).collect::<Vec<_>>(), [0]);
    }
}
