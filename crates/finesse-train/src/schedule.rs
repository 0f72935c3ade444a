//! The BERT learning-rate schedule: linear warm-up from 0, then linear decay to 0
//! (transformers' `get_linear_schedule_with_warmup`).

/// Linear warm-up then linear decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearSchedule {
    /// Peak learning rate.
    pub peak_lr: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// Total steps.
    pub total_steps: usize,
}

impl LinearSchedule {
    /// A schedule over `total_steps` with `ceil(warmup_ratio · total_steps)` warm-up steps.
    pub fn new(peak_lr: f64, warmup_ratio: f64, total_steps: usize) -> Self {
        let warmup_steps = (warmup_ratio * total_steps as f64).ceil() as usize;
        Self {
            peak_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// Learning rate of the optimizer step with 0-based index `step` (as transformers counts:
    /// the first step of a warm-up uses lr 0).
    pub fn lr(&self, step: usize) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / self.warmup_steps.max(1) as f64
        } else {
            let left = self.total_steps.saturating_sub(step) as f64;
            (left / self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64).max(0.0)
        };
        self.peak_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        let s = LinearSchedule::new(1e-3, 0.1, 100);
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 5e-4).abs() < 1e-15);
        assert!((s.lr(10) - 1e-3).abs() < 1e-15);
        assert!((s.lr(55) - 5e-4).abs() < 1e-15);
        assert_eq!(s.lr(100), 0.0);
        assert_eq!(s.lr(150), 0.0);
        for i in 10..99 {
            assert!(s.lr(i) > s.lr(i + 1), "decays monotonically at {i}");
        }
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = LinearSchedule::new(2e-5, 0.0, 4);
        assert_eq!((s.lr(0), s.lr(2)), (2e-5, 1e-5));
    }
}
