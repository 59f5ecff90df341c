//! Rise/fall hysteresis: the pure state machine that turns raw probe results
//! into an up/down verdict. No clock, no I/O.

/// Anti-flap state of one endpoint: `fall` consecutive failures take an up
/// endpoint down, `rise` consecutive successes bring a down one back up.
/// A result agreeing with the current state resets the streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive successes needed to become up (at least 1).
    pub rise: u32,
    /// Consecutive failures needed to become down (at least 1).
    pub fall: u32,
    /// The current verdict.
    pub up: bool,
    /// Consecutive results disagreeing with `up`.
    pub streak: u32,
}

impl Hysteresis {
    /// A machine starting in state `up` (thresholds below 1 count as 1).
    pub fn new(rise: u32, fall: u32, up: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            streak: 0,
        }
    }

    /// Takes one probe result; returns the new state when it changes.
    pub fn handle_result(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `results` ('+' ok, '-' failure) and returns the state after each
    /// as '^' (changed to up), 'v' (changed to down) or '.' (unchanged).
    fn run(machine: &mut Hysteresis, results: &str) -> String {
        results
            .chars()
            .map(|c| match machine.handle_result(c == '+') {
                Some(true) => '^',
                Some(false) => 'v',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn falls_after_consecutive_failures_only() {
        let mut m = Hysteresis::new(2, 3, true);
        assert_eq!(run(&mut m, "--+--+---"), "........v");
        assert!(!m.up);
    }

    #[test]
    fn rises_after_consecutive_successes_only() {
        let mut m = Hysteresis::new(2, 2, false);
        assert_eq!(run(&mut m, "+-+-++"), ".....^");
        assert!(m.up);
        assert_eq!(run(&mut m, "+++--"), "....v");
    }

    #[test]
    fn thresholds_of_one_follow_every_result() {
        let mut m = Hysteresis::new(1, 1, true);
        assert_eq!(run(&mut m, "-+-++-"), "v^v^.v");
        let mut zero = Hysteresis::new(0, 0, true);
        assert_eq!(run(&mut zero, "-+"), "v^");
    }

    #[test]
    fn initial_down_needs_rise_successes() {
        let mut m = Hysteresis::new(3, 1, false);
        assert_eq!(run(&mut m, "---++-+++"), "........^");
    }
}
