//! Colour maps and palettes, chosen to read for colour-blind viewers: viridis for magnitudes,
//! a diverging blue–white–red (ColorBrewer RdBu) for signed values, and the Okabe–Ito palette
//! for lines. Scales map a value to [0, 1] linearly or in log10 (for values spanning decades).

use plotters::style::RGBColor;

/// Which colour map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMap {
    /// Viridis (dark purple → yellow): magnitudes.
    Viridis,
    /// Blue (negative) → white (0) → red (positive): signed values, symmetric around 0.
    Diverging,
}

impl ColorMap {
    /// The colour at `t` in [0, 1] (clamped).
    pub fn at(self, t: f64) -> RGBColor {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let c = match self {
            Self::Viridis => colorous::VIRIDIS.eval_continuous(t),
            // RdBu runs red → blue; reversed so that positive is red.
            Self::Diverging => colorous::RED_BLUE.eval_continuous(1.0 - t),
        };
        RGBColor(c.r, c.g, c.b)
    }
}

/// How a value becomes a position on a colour map (and on a value axis).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorScale {
    /// The map.
    pub map: ColorMap,
    /// The value at 0.
    pub min: f64,
    /// The value at 1.
    pub max: f64,
    /// log10 between `min` and `max` (both > 0).
    pub log: bool,
}

/// Which scale a figure asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleKind {
    /// Log when the positive values span more than two decades, else linear.
    #[default]
    Auto,
    /// Linear, viridis.
    Linear,
    /// log10, viridis.
    Log,
    /// Symmetric around 0, diverging map.
    Diverging,
}

impl ColorScale {
    /// The scale of `kind` that covers `values` (non-finite ones ignored).
    pub fn fit(kind: ScaleKind, values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min_pos = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let (min, max) = if min.is_finite() {
            (min, max)
        } else {
            (0.0, 1.0)
        };
        let spans_decades = min_pos.is_finite() && max / min_pos > 100.0;
        match kind {
            ScaleKind::Diverging => {
                let m = min.abs().max(max.abs()).max(f64::MIN_POSITIVE);
                Self::linear(ColorMap::Diverging, -m, m)
            }
            ScaleKind::Log | ScaleKind::Auto
                if spans_decades || (kind == ScaleKind::Log && min_pos.is_finite()) =>
            {
                let (lo, hi) = (min_pos, max.max(min_pos));
                let (lo, hi) = if hi > lo {
                    (lo, hi)
                } else {
                    (lo / 10.0, lo * 10.0)
                };
                Self {
                    map: ColorMap::Viridis,
                    min: lo,
                    max: hi,
                    log: true,
                }
            }
            _ => {
                // Not anchored at 0: the map spans the values, so small differences show.
                let (lo, hi) = if max > min {
                    (min, max)
                } else {
                    (
                        min - 0.5 * min.abs().max(1e-12),
                        max + 0.5 * max.abs().max(1e-12),
                    )
                };
                Self::linear(ColorMap::Viridis, lo, hi)
            }
        }
    }

    /// A linear scale.
    pub fn linear(map: ColorMap, min: f64, max: f64) -> Self {
        Self {
            map,
            min,
            max,
            log: false,
        }
    }

    /// Where `value` sits, in [0, 1] (clamped; in a log scale values ≤ 0 sit at 0).
    pub fn position(&self, value: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            if value <= 0.0 {
                return 0.0;
            }
            (value.log10(), self.min.log10(), self.max.log10())
        } else {
            (value, self.min, self.max)
        };
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// The colour of `value`.
    pub fn color(&self, value: f64) -> RGBColor {
        self.map.at(self.position(value))
    }

    /// The axis coordinate of `value`: log10 of it on a log scale, the value otherwise.
    pub fn axis(&self, value: f64) -> f64 {
        if self.log {
            value.max(self.min).log10()
        } else {
            value
        }
    }

    /// The axis range (in [`Self::axis`] coordinates).
    pub fn axis_range(&self) -> std::ops::Range<f64> {
        self.axis(self.min)..self.axis(self.max)
    }

    /// The value at axis coordinate `x` (inverse of [`Self::axis`]).
    pub fn value_at(&self, x: f64) -> f64 {
        if self.log { 10f64.powf(x) } else { x }
    }
}

/// Black or white, whichever reads better on `background`.
pub fn text_color_on(background: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = background;
    let luminance = 0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64;
    if luminance > 140.0 {
        RGBColor(0, 0, 0)
    } else {
        RGBColor(255, 255, 255)
    }
}

/// The Okabe–Ito palette (colour-blind safe), black last; lines take colours in this order.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

/// The colour of series `i` (cycling through [`PALETTE`]).
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A value for labels: `percent` shows fractions as percentages; otherwise three significant
/// digits, scientific notation outside [0.01, 10,000).
pub fn format_value(value: f64, percent: bool) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    if percent {
        let p = value * 100.0;
        return match p.abs() {
            0.0 => "0%".into(),
            a if a >= 99.995 => format!("{p:.0}%"),
            a if a >= 99.95 => format!("{p:.2}%"),
            a if a >= 10.0 => format!("{p:.1}%"),
            a if a >= 0.1 => format!("{p:.2}%"),
            a if a >= 0.01 => format!("{p:.3}%"),
            a if a >= 0.001 => format!("{p:.4}%"),
            _ => format!("{p:.1e}%"),
        };
    }
    let a = value.abs();
    if a == 0.0 {
        "0".into()
    } else if value.fract() == 0.0 && a < 1e6 {
        format!("{value:.0}")
    } else if !(0.01..10_000.0).contains(&a) {
        format!("{value:.1e}")
    } else if a >= 100.0 {
        format!("{value:.0}")
    } else if a >= 10.0 {
        format!("{value:.1}")
    } else if a >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_spanning_decades_get_a_log_scale_and_others_a_linear_one() {
        let log = ColorScale::fit(ScaleKind::Auto, [1e-4, 1e-2, 0.5]);
        assert!(log.log);
        assert!((log.position(1e-2) - (2.0 / (4.0 - 0.5f64.log10().abs()))).abs() < 1e-3);
        let lin = ColorScale::fit(ScaleKind::Auto, [0.1, 0.2, 0.4]);
        assert!(!lin.log);
        assert_eq!(lin.position(0.4), 1.0);
    }

    #[test]
    fn the_diverging_scale_is_symmetric_with_white_at_zero() {
        let s = ColorScale::fit(ScaleKind::Diverging, [-0.2, 0.5]);
        assert_eq!((s.min, s.max), (-0.5, 0.5));
        let RGBColor(r, g, b) = s.color(0.0);
        assert!(r > 230 && g > 230 && b > 230, "{r} {g} {b}");
        let RGBColor(r, _, b) = s.color(0.5);
        assert!(r > b, "positive is red");
    }

    #[test]
    fn labels_read_as_percentages_or_significant_digits() {
        assert_eq!(format_value(0.005, true), "0.50%");
        assert_eq!(format_value(0.25, true), "25.0%");
        assert_eq!(format_value(1.23e-5, false), "1.2e-5");
        assert_eq!(format_value(0.123_45, false), "0.123");
    }
}
