//! The arithmetic of sweeps, kept pure so it is tested on its own: where a claim's ratio curve
//! crosses its threshold ([`crossover`]) and a least-squares straight line with its residuals,
//! R² and prediction intervals ([`fit`]).
//!
//! **Crossover.** A claim holds at a grid point when its whole 95% interval is at or above the
//! threshold. The crossover is the smallest axis value from which the claim holds at every
//! larger grid point: the lower CI bound's curve is followed to the last grid point below the
//! threshold and interpolated to where it reaches the threshold between that point and the next.
//! Interpolation is linear in log(x) when every x is positive (the shipped grids are geometric,
//! so this is linear between neighbours as plotted) and linear in x otherwise. The same rule
//! applied to the point ratio and to the upper CI bound gives where the estimate, and where the
//! most favourable end of the interval, cross: the span from the upper-bound crossing to the
//! lower-bound crossing is the crossover's uncertainty. Between grid points the curve is
//! assumed straight, which a finer grid can check.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// One grid point of a claim's curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The axis value.
    pub x: f64,
    /// The ratio (how many times better the candidate is).
    pub ratio: f64,
    /// Lower end of its 95% interval (the ratio itself when it has none).
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// Where one curve reaches the threshold for good.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossing {
    /// Already at or above it at the smallest swept value, and at every one after.
    AtOrBelow(f64),
    /// Between two grid points, interpolated.
    At {
        /// The interpolated axis value.
        x: f64,
        /// The grid points it lies between.
        between: (f64, f64),
    },
    /// Below the threshold at the largest swept value.
    NotReached,
}

impl Crossing {
    /// The axis value, when reached.
    pub fn x(&self) -> Option<f64> {
        match self {
            Crossing::AtOrBelow(x) | Crossing::At { x, .. } => Some(*x),
            Crossing::NotReached => None,
        }
    }

    /// In words: `<= 256`, `~731 (between 512 and 1024)`, `not reached`.
    pub fn text(&self) -> String {
        match self {
            Crossing::AtOrBelow(x) => format!("<= {}", num(*x)),
            Crossing::At { x, between } => format!("~{} (between {} and {})", num(*x), num(between.0), num(between.1)),
            Crossing::NotReached => "not reached".into(),
        }
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// A claim curve's crossover: of the lower CI bound (the claim holds from there on), of the
/// point ratio, and of the upper CI bound (the earliest the data allow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossover {
    /// The threshold.
    pub threshold: f64,
    /// Where the whole interval is above the threshold from then on: the crossover.
    pub lower: Crossing,
    /// Where the ratio itself is.
    pub point: Crossing,
    /// Where the upper bound is.
    pub upper: Crossing,
    /// Interpolated in log(x).
    pub log_x: bool,
    /// For a claim that holds at the smallest swept value and stops holding later (a falling
    /// curve, e.g. against the adapters' rank): where the interval's lower bound first falls
    /// below the threshold, interpolated, and where the upper bound does (`None`: never within
    /// the range).
    pub holds_until: Option<(Crossing, Option<Crossing>)>,
}

impl Crossover {
    /// One sentence for people.
    pub fn reading(&self, range: (f64, f64)) -> String {
        let span = format!("{}..{}", num(range.0), num(range.1));
        match (self.lower, self.upper) {
            (Crossing::AtOrBelow(_), _) => format!("holds throughout the swept range {span}"),
            (Crossing::At { x, .. }, up) => format!(
                "holds from ~{} on (interpolated{}); uncertainty: the interval's upper bound crosses at {}, the ratio at {}",
                num(x),
                if self.log_x { " in log x" } else { "" },
                up.text(),
                self.point.text()
            ),
            (Crossing::NotReached, _) if self.holds_until.is_some() => {
                let (lo, hi) = self.holds_until.expect("checked");
                format!(
                    "holds at the low end, up to {} (where the interval's lower bound falls below the threshold; its upper bound {})",
                    lo.text(),
                    hi.map_or("stays above within the swept range".to_string(), |h| format!(
                        "falls below at {}",
                        h.text()
                    ))
                )
            }
            (Crossing::NotReached, Crossing::NotReached) => {
                format!("not reached within the swept range {span}: even the interval's upper bound stays below")
            }
            (Crossing::NotReached, up) if self.point == Crossing::NotReached => format!(
                "not reached within the swept range {span} (only the interval's upper bound crosses, at {}: may hold beyond, or not at all)",
                up.text()
            ),
            (Crossing::NotReached, up) => format!(
                "not reached within the swept range {span} (the interval's upper bound crosses at {}, the ratio at {}: may hold beyond)",
                up.text(),
                self.point.text()
            ),
        }
    }
}

/// Where `y` reaches `threshold` for good along `xs` (sorted ascending).
fn crossing(xs: &[f64], ys: &[f64], threshold: f64, log_x: bool) -> Crossing {
    // NaN counts as below: a missing value is not evidence that the claim holds.
    let below = |y: f64| y.partial_cmp(&threshold).is_none_or(|o| o == std::cmp::Ordering::Less);
    let Some(last_below) = ys.iter().rposition(|&y| below(y)) else {
        return xs.first().map_or(Crossing::NotReached, |&x| Crossing::AtOrBelow(x));
    };
    if last_below + 1 >= xs.len() {
        return Crossing::NotReached;
    }
    let (i, j) = (last_below, last_below + 1);
    let (y0, y1) = (ys[i], ys[j]);
    let t = if y1 > y0 && y0.is_finite() { ((threshold - y0) / (y1 - y0)).clamp(0.0, 1.0) } else { 1.0 };
    let x = if log_x { (xs[i].ln() + t * (xs[j].ln() - xs[i].ln())).exp() } else { xs[i] + t * (xs[j] - xs[i]) };
    Crossing::At { x, between: (xs[i], xs[j]) }
}

/// Where `y`, at or above `threshold` at the smallest x, first falls below it, interpolated
/// (`None`: below already at the smallest x, or never below).
fn falls_below(xs: &[f64], ys: &[f64], threshold: f64, log_x: bool) -> Option<Crossing> {
    let below = |y: f64| y.partial_cmp(&threshold).is_none_or(|o| o == std::cmp::Ordering::Less);
    let k = ys.iter().position(|&y| below(y))?;
    if k == 0 {
        return None;
    }
    let (y0, y1) = (ys[k - 1], ys[k]);
    let t = if y0 > y1 && y1.is_finite() { ((y0 - threshold) / (y0 - y1)).clamp(0.0, 1.0) } else { 1.0 };
    let (a, b) = (xs[k - 1], xs[k]);
    let x = if log_x { (a.ln() + t * (b.ln() - a.ln())).exp() } else { a + t * (b - a) };
    Some(Crossing::At { x, between: (a, b) })
}

/// The crossover of a claim's curve (points in any order; sorted by x here).
pub fn crossover(points: &[CurvePoint], threshold: f64) -> Crossover {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.x.total_cmp(&b.x));
    let xs: Vec<f64> = p.iter().map(|c| c.x).collect();
    let log_x = xs.iter().all(|&x| x > 0.0);
    let of = |f: fn(&CurvePoint) -> f64| -> Vec<f64> { p.iter().map(f).collect() };
    let (lo, hi) = (of(|c| c.lo), of(|c| c.hi));
    let holds_until = falls_below(&xs, &lo, threshold, log_x).map(|l| (l, falls_below(&xs, &hi, threshold, log_x)));
    Crossover {
        threshold,
        lower: crossing(&xs, &lo, threshold, log_x),
        point: crossing(&xs, &of(|c| c.ratio), threshold, log_x),
        upper: crossing(&xs, &hi, threshold, log_x),
        log_x,
        holds_until,
    }
}

/// A least-squares straight line `y = a + b x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Points fitted.
    pub n: usize,
    /// Intercept.
    pub a: f64,
    /// Slope.
    pub b: f64,
    /// Coefficient of determination (1 when the line explains all variation; 1 also when `y`
    /// does not vary and the line is flat through it).
    pub r2: f64,
    /// `y - fitted`, in the points' order.
    pub residuals: Vec<f64>,
    /// Residual standard error, `sqrt(SSR / (n - 2))`.
    pub s: f64,
    x_mean: f64,
    sxx: f64,
    /// Largest x fitted.
    pub x_max: f64,
}

/// The least-squares line through `(xs, ys)`; `None` for fewer than 3 points or when x does not
/// vary.
pub fn fit(xs: &[f64], ys: &[f64]) -> Option<Fit> {
    let n = xs.len();
    if n < 3 || ys.len() != n || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    let x_mean = xs.iter().sum::<f64>() / n as f64;
    let y_mean = ys.iter().sum::<f64>() / n as f64;
    let sxx: f64 = xs.iter().map(|x| (x - x_mean).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - x_mean) * (y - y_mean)).sum();
    let b = sxy / sxx;
    let a = y_mean - b * x_mean;
    let residuals: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| y - (a + b * x)).collect();
    let ssr: f64 = residuals.iter().map(|r| r * r).sum();
    let sst: f64 = ys.iter().map(|y| (y - y_mean).powi(2)).sum();
    let r2 = if sst > 0.0 { 1.0 - ssr / sst } else { 1.0 };
    let s = (ssr / (n - 2) as f64).sqrt();
    let x_max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Fit { n, a, b, r2, residuals, s, x_mean, sxx, x_max })
}

impl Fit {
    /// The line at `x`.
    pub fn predict(&self, x: f64) -> f64 {
        self.a + self.b * x
    }

    /// 95% prediction interval of a new observation at `x` (Student's t with n - 2 degrees of
    /// freedom): how far a measurement there may lie from the line if the line still held.
    pub fn prediction_interval(&self, x: f64) -> [f64; 2] {
        let t = StudentsT::new(0.0, 1.0, (self.n - 2) as f64).map(|d| d.inverse_cdf(0.975)).unwrap_or(f64::NAN);
        let half = t * self.s * (1.0 + 1.0 / self.n as f64 + (x - self.x_mean).powi(2) / self.sxx).sqrt();
        let y = self.predict(x);
        [y - half, y + half]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn curve(xs: &[f64], ratio: &[f64], half: f64) -> Vec<CurvePoint> {
        xs.iter().zip(ratio).map(|(&x, &r)| CurvePoint { x, ratio: r, lo: r - half, hi: r + half }).collect()
    }

    #[test]
    fn crossover_interpolates_each_bound_in_log_x() {
        // Ratio 1, 2, 4, 8 at x = 1, 2, 4, 8 (ratio = x); intervals +-0.5.
        let c = crossover(&curve(&[8.0, 1.0, 4.0, 2.0], &[8.0, 1.0, 4.0, 2.0], 0.5), 3.0);
        // Lower bound 1.5 at x=2, 3.5 at x=4: reaches 3 at t = 0.75 of the log step: 2 * 2^0.75.
        let Crossing::At { x, between } = c.lower else { panic!("{c:?}") };
        assert!((x - 2.0 * 2f64.powf(0.75)).abs() < 1e-9 && between == (2.0, 4.0), "{x}");
        let Crossing::At { x: up, .. } = c.upper else { panic!("{c:?}") };
        let Crossing::At { x: mid, .. } = c.point else { panic!("{c:?}") };
        assert!(up < mid && mid < x, "{up} {mid} {x}");
        assert!(c.reading((1.0, 8.0)).starts_with("holds from ~3.36 on"), "{}", c.reading((1.0, 8.0)));
    }

    #[test]
    fn crossover_reports_holding_throughout_and_not_reached() {
        let all = crossover(&curve(&[1.0, 2.0], &[9.0, 10.0], 1.0), 4.0);
        assert_eq!(all.lower, Crossing::AtOrBelow(1.0));
        let none = crossover(&curve(&[1.0, 2.0, 4.0], &[1.0, 1.5, 2.0], 0.1), 4.0);
        assert_eq!((none.lower, none.upper), (Crossing::NotReached, Crossing::NotReached));
        assert!(
            none.reading((1.0, 4.0))
                .contains("not reached within the swept range 1..4: even the interval's upper bound stays below")
        );
        // A curve that dips below again at the end has not crossed for good.
        let dip = crossover(&curve(&[1.0, 2.0, 4.0], &[5.0, 6.0, 3.0], 0.1), 4.0);
        assert_eq!(dip.lower, Crossing::NotReached);
        // Only the upper bound gets there: the reading says it may hold beyond the range.
        let maybe = crossover(&curve(&[1.0, 2.0], &[3.0, 3.6], 0.5), 4.0);
        assert!(maybe.reading((1.0, 2.0)).contains("may hold beyond"), "{}", maybe.reading((1.0, 2.0)));
    }

    #[test]
    fn a_falling_curve_holds_up_to_where_its_lower_bound_drops() {
        // Ratio 8, 6, 4, 2 at x = 4, 8, 16, 32 (like storage against rank), intervals +-0.5.
        let c = crossover(&curve(&[4.0, 8.0, 16.0, 32.0], &[8.0, 6.0, 4.0, 2.0], 0.5), 5.0);
        assert_eq!(c.lower, Crossing::NotReached);
        let (Crossing::At { x: lo, between }, Some(Crossing::At { x: hi, .. })) = c.holds_until.unwrap() else {
            panic!("{c:?}")
        };
        // Lower bound 5.5 at 8, 3.5 at 16: falls to 5 a quarter of the log step after 8.
        assert!((lo - 8.0 * 2f64.powf(0.25)).abs() < 1e-9 && between == (8.0, 16.0), "{lo}");
        assert!(hi > lo, "{hi}");
        assert!(c.reading((4.0, 32.0)).starts_with("holds at the low end, up to ~9.51"), "{}", c.reading((4.0, 32.0)));
        // A rising curve has no such end.
        assert!(crossover(&curve(&[1.0, 2.0], &[1.0, 9.0], 0.5), 4.0).holds_until.is_none());
    }

    #[test]
    fn a_zero_axis_value_interpolates_linearly() {
        let c = crossover(&curve(&[0.0, 10.0], &[0.0, 10.0], 0.0), 4.0);
        assert_eq!(c.lower, Crossing::At { x: 4.0, between: (0.0, 10.0) });
        assert!(!c.log_x);
    }

    #[test]
    fn fit_recovers_a_line_and_its_residuals() {
        let xs = [10.0, 20.0, 40.0, 80.0];
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 + 0.5 * x).collect();
        let f = fit(&xs, &ys).unwrap();
        assert!((f.a - 3.0).abs() < 1e-9 && (f.b - 0.5).abs() < 1e-12 && (f.r2 - 1.0).abs() < 1e-12);
        assert!(f.residuals.iter().all(|r| r.abs() < 1e-9));
        let [lo, hi] = f.prediction_interval(1000.0);
        assert!((lo - 503.0).abs() < 1e-6 && (hi - 503.0).abs() < 1e-6);
        assert!(fit(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none() && fit(&[1.0, 2.0], &[1.0, 2.0]).is_none());
        // Scattered points: R² below 1, an interval that widens away from the data.
        let f = fit(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]).unwrap();
        assert!(f.r2 > 0.5 && f.r2 < 1.0, "{}", f.r2);
        let w = |x: f64| f.prediction_interval(x)[1] - f.prediction_interval(x)[0];
        assert!(w(100.0) > w(2.5));
    }

    proptest! {
        #[test]
        fn fit_residuals_sum_to_zero_and_r2_is_a_fraction(
            pts in proptest::collection::vec((0.0f64..1e3, -1e3f64..1e3), 3..20)
        ) {
            let (xs, ys): (Vec<f64>, Vec<f64>) = pts.into_iter().unzip();
            if let Some(f) = fit(&xs, &ys) {
                let scale = ys.iter().map(|y| y.abs()).fold(1.0, f64::max);
                prop_assert!(f.residuals.iter().sum::<f64>().abs() < 1e-7 * scale * xs.len() as f64);
                prop_assert!(f.r2 <= 1.0 + 1e-9 && f.r2 >= -1e-9);
            }
        }

        #[test]
        fn a_crossing_lies_within_its_grid_step_and_bounds_are_ordered(
            mut ys in proptest::collection::vec(0.1f64..10.0, 2..12), half in 0.0f64..2.0, t in 0.5f64..8.0
        ) {
            ys.sort_by(|a, b| a.total_cmp(b));
            let xs: Vec<f64> = (0..ys.len()).map(|i| 2f64.powi(i as i32 + 4)).collect();
            let c = crossover(&curve(&xs, &ys, half), t);
            for k in [c.lower, c.point, c.upper] {
                if let Crossing::At { x, between } = k {
                    prop_assert!(between.0 <= x + 1e-9 && x <= between.1 + 1e-9);
                }
            }
            // With an increasing curve, the upper bound crosses no later than the ratio, and the
            // ratio no later than the lower bound.
            let at = |k: Crossing| k.x().unwrap_or(f64::INFINITY);
            prop_assert!(at(c.upper) <= at(c.point) + 1e-9 && at(c.point) <= at(c.lower) + 1e-9);
        }
    }
}
