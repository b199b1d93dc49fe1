//! Percentages of a [`Summary`], as the history, the CLI and the badge show them.

use nhc_core::{ReproStatus, Summary};
use serde::{Deserialize, Serialize};

/// The share of each status in percent, rounded to one decimal (0 when there are no
/// paths). Rounded shares need not add up to exactly 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentages {
    pub reproduced: f64,
    pub partially_reproduced: f64,
    pub not_reproduced: f64,
    pub one_builder: f64,
    pub no_builds: f64,
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (n as f64 * 1000.0 / total as f64).round() / 10.0
}

impl Percentages {
    pub fn of(s: &Summary) -> Self {
        let t = s.total();
        Percentages {
            reproduced: share(s.reproduced, t),
            partially_reproduced: share(s.partially_reproduced, t),
            not_reproduced: share(s.not_reproduced, t),
            one_builder: share(s.one_builder, t),
            no_builds: share(s.no_builds, t),
        }
    }

    pub fn get(&self, status: ReproStatus) -> f64 {
        match status {
            ReproStatus::Reproduced => self.reproduced,
            ReproStatus::PartiallyReproduced => self.partially_reproduced,
            ReproStatus::NotReproduced => self.not_reproduced,
            ReproStatus::OneBuilder => self.one_builder,
            ReproStatus::NoBuilds => self.no_builds,
        }
    }
}

/// The reproduced share in whole percent, rounded down so that 100 means every path
/// reproduced; `None` when there are no paths.
pub fn reproduced_percent(s: &Summary) -> Option<u8> {
    let t = s.total();
    (t > 0).then(|| (s.reproduced.min(t) as u128 * 100 / t as u128) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        let s = Summary { reproduced: 2, partially_reproduced: 0, not_reproduced: 1, one_builder: 0, no_builds: 0 };
        let p = Percentages::of(&s);
        assert_eq!((p.reproduced, p.not_reproduced, p.no_builds), (66.7, 33.3, 0.0));
        assert_eq!(p.get(ReproStatus::Reproduced), 66.7);
        assert_eq!(reproduced_percent(&s), Some(66));
        assert_eq!(Percentages::of(&Summary::default()).reproduced, 0.0);
        assert_eq!(reproduced_percent(&Summary::default()), None);
        // 19,999 of 20,000 is not 100 %.
        let s = Summary { reproduced: 19_999, no_builds: 1, ..Summary::default() };
        assert_eq!((reproduced_percent(&s), Percentages::of(&s).reproduced), (Some(99), 100.0));
        let s = Summary { reproduced: u64::MAX / 2, ..Summary::default() };
        assert_eq!(reproduced_percent(&s), Some(100));
    }
}
