//! GLUE metrics: accuracy, F1 of the positive class, Matthews correlation, Pearson and
//! Spearman correlation (average ranks for ties). Computed in f64.

use std::collections::BTreeMap;

use crate::error::{GlueError, Result};

/// A GLUE metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Fraction of correct predictions.
    Accuracy,
    /// F1 of class 1 (MRPC, QQP).
    F1,
    /// Matthews correlation coefficient (CoLA).
    Matthews,
    /// Pearson correlation (STS-B).
    Pearson,
    /// Spearman rank correlation, ties get their average rank (STS-B).
    Spearman,
}

impl Metric {
    /// The name used in `metrics.json` and events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::F1 => "f1",
            Self::Matthews => "matthews",
            Self::Pearson => "pearson",
            Self::Spearman => "spearman",
        }
    }
}

fn check_len(metric: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b || a == 0 {
        return Err(GlueError::Metric {
            metric,
            problem: format!("{a} predictions for {b} labels (must be equal and non-zero)"),
        });
    }
    Ok(())
}

/// Fraction of `pred == gold`.
///
/// # Errors
///
/// [`GlueError::Metric`] when the lengths differ or are zero.
pub fn accuracy(pred: &[usize], gold: &[usize]) -> Result<f64> {
    check_len("accuracy", pred.len(), gold.len())?;
    Ok(pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / pred.len() as f64)
}

fn confusion(pred: &[usize], gold: &[usize]) -> (f64, f64, f64, f64) {
    let (mut tp, mut tn, mut fp, mut fns) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &g) in pred.iter().zip(gold) {
        match (p == 1, g == 1) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fns += 1.0,
        }
    }
    (tp, tn, fp, fns)
}

/// F1 of the positive class (label 1); 0 when there are no true positives.
///
/// # Errors
///
/// [`GlueError::Metric`] when the lengths differ or are zero.
pub fn f1(pred: &[usize], gold: &[usize]) -> Result<f64> {
    check_len("f1", pred.len(), gold.len())?;
    let (tp, _, fp, fns) = confusion(pred, gold);
    Ok(if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fns)
    })
}

/// Matthews correlation of binary predictions; 0 when a marginal is empty (sklearn's
/// convention).
///
/// # Errors
///
/// [`GlueError::Metric`] when the lengths differ or are zero.
pub fn matthews(pred: &[usize], gold: &[usize]) -> Result<f64> {
    check_len("matthews", pred.len(), gold.len())?;
    let (tp, tn, fp, fns) = confusion(pred, gold);
    let denom = ((tp + fp) * (tp + fns) * (tn + fp) * (tn + fns)).sqrt();
    Ok(if denom == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fns) / denom
    })
}

/// Pearson correlation; 0 when either side is constant.
///
/// # Errors
///
/// [`GlueError::Metric`] when the lengths differ or are zero.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_len("pearson", x.len(), y.len())?;
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let denom = (sxx * syy).sqrt();
    Ok(if denom == 0.0 { 0.0 } else { sxy / denom })
}

/// Ranks starting at 1, ties sharing their average rank.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman correlation: Pearson of the average ranks.
///
/// # Errors
///
/// [`GlueError::Metric`] when the lengths differ or are zero.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check_len("spearman", x.len(), y.len())?;
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Predictions of a whole evaluation set.
#[derive(Clone, Debug)]
pub enum Predictions {
    /// Class predictions and gold classes.
    Classes {
        /// Predicted class per example.
        pred: Vec<usize>,
        /// Gold class per example.
        gold: Vec<usize>,
    },
    /// Regression outputs and gold scores.
    Scores {
        /// Predicted score per example.
        pred: Vec<f64>,
        /// Gold score per example.
        gold: Vec<f64>,
    },
}

/// Computes the given metrics, keyed by [`Metric::name`].
///
/// # Errors
///
/// [`GlueError::Metric`] for a metric that does not apply to the predictions (a correlation of
/// classes, an accuracy of scores) and as the metrics themselves.
pub fn compute(metrics: &[Metric], preds: &Predictions) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for &m in metrics {
        let v = match (m, preds) {
            (Metric::Accuracy, Predictions::Classes { pred, gold }) => accuracy(pred, gold)?,
            (Metric::F1, Predictions::Classes { pred, gold }) => f1(pred, gold)?,
            (Metric::Matthews, Predictions::Classes { pred, gold }) => matthews(pred, gold)?,
            (Metric::Pearson, Predictions::Scores { pred, gold }) => pearson(pred, gold)?,
            (Metric::Spearman, Predictions::Scores { pred, gold }) => spearman(pred, gold)?,
            (m, _) => {
                return Err(GlueError::Metric {
                    metric: m.name(),
                    problem: "does not apply to this kind of predictions".into(),
                });
            }
        };
        out.insert(m.name().to_string(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from scikit-learn 1.x and SciPy 1.x, produced by:
    //   python3 -c "
    //   from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    //   from scipy.stats import pearsonr, spearmanr
    //   t=[1,0,1,1,0,1,0,0,1,1,1,0]; p=[1,0,0,1,0,1,1,0,1,0,1,1]
    //   print(accuracy_score(t,p), f1_score(t,p), matthews_corrcoef(t,p))
    //   x=[0.5,2.25,3.0,3.0,4.75,1.0,0.0,2.25,5.0,3.0]; y=[0.2,1.9,3.3,2.8,4.1,1.7,0.4,2.0,4.4,3.9]
    //   print(pearsonr(x,y)[0], spearmanr(x,y)[0])"
    const GOLD: [usize; 12] = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0];
    const PRED: [usize; 12] = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1];
    const X: [f64; 10] = [0.5, 2.25, 3.0, 3.0, 4.75, 1.0, 0.0, 2.25, 5.0, 3.0];
    const Y: [f64; 10] = [0.2, 1.9, 3.3, 2.8, 4.1, 1.7, 0.4, 2.0, 4.4, 3.9];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn classification_metrics_match_sklearn() {
        close(accuracy(&PRED, &GOLD).expect("acc"), 0.6666666666666666);
        close(f1(&PRED, &GOLD).expect("f1"), 0.7142857142857143);
        close(matthews(&PRED, &GOLD).expect("mcc"), 0.3142857142857143);
    }

    #[test]
    fn correlations_match_scipy_with_tied_ranks() {
        close(pearson(&X, &Y).expect("pearson"), 0.9461993388036818);
        close(spearman(&X, &Y).expect("spearman"), 0.9724227787367284);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(matthews(&[1, 1, 1], &[1, 0, 1]).expect("mcc"), 0.0);
        assert_eq!(f1(&[0, 0], &[1, 0]).expect("f1"), 0.0);
        assert_eq!(pearson(&[1.0, 1.0], &[0.0, 2.0]).expect("r"), 0.0);
        assert!(accuracy(&[], &[]).is_err());
        assert!(accuracy(&[1], &[1, 0]).is_err());
    }

    #[test]
    fn compute_keys_by_metric_name() {
        let m = compute(
            &[Metric::F1, Metric::Accuracy],
            &Predictions::Classes {
                pred: PRED.to_vec(),
                gold: GOLD.to_vec(),
            },
        )
        .expect("compute");
        assert_eq!(m.keys().collect::<Vec<_>>(), ["accuracy", "f1"]);
        assert!(
            compute(
                &[Metric::Pearson],
                &Predictions::Classes {
                    pred: vec![1],
                    gold: vec![1]
                }
            )
            .is_err()
        );
    }
}
