//! Timing: samples in, a median out.

use std::future::Future;
use std::time::{Duration, Instant};

/// The samples of one measurement.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The median (the lower middle of an even count); zero when there are no samples.
    pub(crate) fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        sorted
            .get(sorted.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    /// The 95th percentile (the smallest sample at or above 95 % of them); zero when there are
    /// no samples.
    pub(crate) fn p95(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = (sorted.len() * 95).div_ceil(100);
        sorted
            .get(rank.saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }

    /// Times one run of `f` and keeps the sample.
    pub(crate) async fn time<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let value = f.await?;
        self.push(started.elapsed());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_sample() {
        let mut samples = Samples::default();
        assert_eq!(samples.median(), Duration::ZERO);
        for ms in [5, 1, 3] {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.median(), Duration::from_millis(3));
        samples.push(Duration::from_millis(4));
        assert_eq!(samples.median(), Duration::from_millis(3));
        assert_eq!(samples.p95(), Duration::from_millis(5));
        for ms in 10..106 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.p95(), Duration::from_millis(100));
    }
}
