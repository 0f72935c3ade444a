//! The `finesse finetune` command line that starts a run of a [`RunConfig`]: what
//! `finesse runs show` prints and the desktop app copies, so a run made anywhere can be made
//! again from a terminal. Flags left at the CLI's defaults are left out; `tests/finetune.rs`
//! runs the line and checks that `run.json` records the same configuration.

use std::fmt::Write as _;

use finesse_sparse::{Algorithm, Budget, FisherKind, Selection};
use serde::Serialize;

use crate::config::{OptimizerChoice, RunConfig};
use crate::method::{FisherSettings, MethodConfig};

/// The arguments after `finesse` (`finetune`, then the flags) that start a run of `config`.
///
/// # Errors
/// A setting no flag expresses (AdamW's β or ε other than the CLI's 0.9, 0.999, 1e-8), named.
pub fn finetune_args(config: &RunConfig) -> Result<Vec<String>, String> {
    let defaults = RunConfig::new("", config.task, "", "");
    let mut a = Args(vec!["finetune".into()]);
    a.flag("--model", &config.model);
    a.flag("--task", &config.task.spec().name);
    a.flag("--data-dir", &config.data_dir.display());
    a.flag("--output-dir", &config.output_dir.display());
    a.flag("--device", &config.device);
    match config.max_steps {
        Some(n) => a.flag("--max-steps", &n),
        None if config.epochs != defaults.epochs => a.flag("--epochs", &config.epochs),
        None => {}
    }
    a.differing("--batch-size", config.batch_size, defaults.batch_size);
    a.differing("--lr", config.lr, defaults.lr);
    a.differing("--warmup-ratio", config.warmup_ratio, defaults.warmup_ratio);
    a.differing(
        "--max-grad-norm",
        config.max_grad_norm.unwrap_or(0.0),
        defaults.max_grad_norm.unwrap_or(0.0),
    );
    a.differing("--max-seq-len", config.max_seq_len, defaults.max_seq_len);
    a.differing("--seed", config.seed, defaults.seed);
    a.differing("--log-every", config.log_every, defaults.log_every);
    a.optional("--eval-every", config.eval_every);
    a.optional("--max-train-examples", config.max_train_examples);
    a.optional("--max-eval-examples", config.max_eval_examples);
    a.optional("--checkpoint-every", config.checkpoint_every);
    a.optional("--sync-every", config.sync_every);
    a.switch("--skip-bad-rows", config.skip_bad_rows);
    a.switch("--no-bucketing", !config.bucketing);
    a.switch("--no-shuffle", !config.shuffle);
    a.switch("--no-dropout", !config.dropout);
    a.switch("--save-model", config.save_model);
    a.switch("--save-best", config.save_best);
    optimizer(&mut a, config, &defaults)?;
    method(&mut a, &config.method);
    Ok(a.0)
}

/// [`finetune_args`] as one shell line, `finesse` first, arguments quoted where needed.
///
/// # Errors
/// As [`finetune_args`].
pub fn finetune_line(config: &RunConfig) -> Result<String, String> {
    let mut line = String::from("finesse");
    for arg in finetune_args(config)? {
        line.push(' ');
        line.push_str(&shell_quote(&arg));
    }
    Ok(line)
}

fn optimizer(a: &mut Args, config: &RunConfig, defaults: &RunConfig) -> Result<(), String> {
    let adamw = OptimizerChoice::Adamw.config(0.0);
    match config.optimizer.algorithm {
        Algorithm::Adamw { .. } if config.optimizer.algorithm == adamw.algorithm => {}
        Algorithm::Adamw { beta1, beta2, eps } => {
            return Err(format!(
                "AdamW with β = ({beta1}, {beta2}), ε = {eps}: the CLI has no flags for these"
            ));
        }
        Algorithm::Sgd { momentum } => {
            a.flag("--optimizer", &"sgd");
            a.differing("--momentum", momentum, 0.0);
        }
    }
    a.differing(
        "--weight-decay",
        config.optimizer.weight_decay,
        defaults.optimizer.weight_decay,
    );
    Ok(())
}

fn method(a: &mut Args, method: &MethodConfig) {
    a.flag("--method", &method.method_name().name());
    match method {
        MethodConfig::Dense | MethodConfig::Bitfit => {}
        MethodConfig::Fish {
            selection,
            fisher,
            mask_file,
        } => {
            if let Some(selection) = selection {
                budget(a, selection);
            }
            if let Some(file) = mask_file {
                a.flag("--mask", &file.display());
            }
            fisher_flags(a, fisher);
        }
        MethodConfig::Random { selection } => budget(a, selection),
        MethodConfig::Freeze { groups } => {
            for g in groups {
                a.flag("--freeze", g);
            }
        }
        MethodConfig::Supermask {
            initial_sparsity,
            score_lr,
            eval_samples,
        } => {
            a.flag("--supermask-init-sparsity", initial_sparsity);
            a.flag("--score-lr", score_lr);
            a.flag("--supermask-samples", eval_samples);
        }
        MethodConfig::Prune {
            initial,
            final_sparsity,
            start_step,
            interval,
            events,
            scope,
        } => {
            a.flag("--initial-sparsity", initial);
            a.flag("--final-sparsity", final_sparsity);
            a.optional("--prune-start", *start_step);
            a.optional("--prune-every", *interval);
            a.flag("--prune-events", events);
            a.flag("--prune-scope", &serde_name(scope));
        }
    }
}

fn budget(a: &mut Args, selection: &Selection) {
    match selection.budget {
        Budget::Ratio(r) => a.flag("--keep-ratio", &r),
        Budget::Count(k) => a.flag("--keep-count", &k),
    }
    a.flag("--scope", &serde_name(&selection.scope));
    a.switch("--head-outside-budget", !selection.head_in_budget);
    for spec in &selection.exclude {
        a.flag("--exclude", spec);
    }
}

fn fisher_flags(a: &mut Args, fisher: &FisherSettings) {
    a.flag("--fisher-samples", &fisher.samples);
    let (kind, draws) = match fisher.kind {
        FisherKind::Empirical => ("empirical", None),
        FisherKind::Expected => ("expected", None),
        FisherKind::Sampled { draws } => ("sampled", Some(draws)),
    };
    a.flag("--fisher-kind", &kind);
    a.optional("--fisher-draws", draws);
    a.flag("--fisher-order", &serde_name(&fisher.order));
}

/// The name a value has in `run.json` (the CLI parses the same names).
fn serde_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Quotes `arg` for a POSIX shell when it holds anything but plain characters.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, name: &str, value: &dyn std::fmt::Display) {
        self.0.push(name.to_string());
        let mut v = String::new();
        let _ = write!(v, "{value}");
        self.0.push(v);
    }

    fn differing<T: PartialEq + std::fmt::Display>(&mut self, name: &str, value: T, default: T) {
        if value != default {
            self.flag(name, &value);
        }
    }

    fn optional<T: std::fmt::Display>(&mut self, name: &str, value: Option<T>) {
        if let Some(v) = value {
            self.flag(name, &v);
        }
    }

    fn switch(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_glue::GlueTask;

    #[test]
    fn a_default_run_needs_only_its_places_and_a_changed_one_names_its_changes() {
        let mut c = RunConfig::new("all-MiniLM-L6-v2", GlueTask::Sst2, "/data/glue", "runs/x y");
        assert_eq!(
            finetune_line(&c).expect("line"),
            "finesse finetune --model all-MiniLM-L6-v2 --task SST-2 --data-dir /data/glue \
             --output-dir 'runs/x y' --device flex --method dense"
        );
        c.lr = 1e-4;
        c.max_steps = Some(50);
        c.bucketing = false;
        c.shuffle = false;
        c.dropout = false;
        c.method = MethodConfig::fish_global(0.005, 256);
        let line = finetune_line(&c).expect("line");
        assert!(
            line.contains("--max-steps 50 --lr 0.0001")
                && line.contains("--no-bucketing --no-shuffle --no-dropout")
                && line.ends_with(
                    "--method fish --keep-ratio 0.005 --scope global --fisher-samples 256 \
                     --fisher-kind empirical --fisher-order shuffled"
                ),
            "{line}"
        );
        c.optimizer.algorithm = Algorithm::Adamw {
            beta1: 0.8,
            beta2: 0.999,
            eps: 1e-8,
        };
        assert!(finetune_line(&c).expect_err("no flag").contains("β"));
    }
}
