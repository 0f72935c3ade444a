//! A method added without touching the trainer: a no-op method, registered here through
//! `run_method`, goes through every hook of the interface and trains exactly as dense does.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Gradients};
use finesse_bert::{HostTensor, io::read_float_tensors};
use finesse_glue::GlueTask;
use finesse_sparse::Mask;
use finesse_train::method::{
    FinishCtx, Method, MethodSummary, Model, PrepareCtx, StartCtx, hooks_for,
};
use finesse_train::trainer::{Emitter, RunOutcome, run_method};
use finesse_train::{Event, MethodConfig, RunConfig};

type Calls = Arc<Mutex<BTreeMap<&'static str, usize>>>;

/// Counts each hook call and changes nothing.
struct Counting {
    calls: Calls,
}

impl Counting {
    fn count(&self, hook: &'static str) {
        *self.calls.lock().expect("calls").entry(hook).or_default() += 1;
    }
}

impl Method for Counting {
    fn prepare(&mut self, _ctx: &mut PrepareCtx<'_, '_>) -> finesse_train::Result<Option<Mask>> {
        self.count("prepare");
        Ok(None)
    }
    fn start(&mut self, ctx: &StartCtx<'_>) -> finesse_train::Result<()> {
        assert_eq!(ctx.start_step, 0);
        self.count("start");
        Ok(())
    }
    fn forward_view(&self, _model: &Model) -> Option<Model> {
        self.count("forward_view");
        None
    }
    fn after_backward(&mut self, _grads: &mut Gradients, lr: f64) {
        assert!(lr >= 0.0);
        self.count("after_backward");
    }
    fn after_step(
        &mut self,
        model: Model,
        _step: usize,
        _emitter: &mut Emitter<'_>,
    ) -> finesse_train::Result<Model> {
        self.count("after_step");
        Ok(model)
    }
    fn eval_view(&self, model: &Model) -> Model {
        self.count("eval_view");
        model.clone()
    }
    fn state_tensors(&self) -> finesse_train::Result<Vec<(String, HostTensor)>> {
        self.count("state_tensors");
        Ok(Vec::new())
    }
    fn finish(&mut self, ctx: &FinishCtx<'_>) -> finesse_train::Result<MethodSummary> {
        assert!(ctx.mask.is_none());
        self.count("finish");
        Ok(MethodSummary::default())
    }
}

fn losses(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { loss, .. } => Some(loss.to_bits()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_no_op_method_registered_in_a_test_goes_through_every_hook_and_trains_as_dense() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Seeded: Burn's generator is process-wide and this file holds one test.
    let model = finesse_testkit::TinyBert::from_assets()
        .seed(7)
        .write(&dir.path().join("tiny-model"));
    let data = finesse_testkit::tiny_glue(dir.path());
    let config = |out: &str| {
        let mut c = RunConfig::new(
            model.display().to_string(),
            GlueTask::Sst2,
            &data,
            dir.path().join(out),
        );
        c.max_steps = Some(12);
        c.batch_size = 8;
        c.lr = 1e-3;
        c.eval_every = Some(5);
        c.log_every = 1;
        c.checkpoint_every = Some(4);
        c.save_model = true;
        c
    };
    let cancel = AtomicBool::new(false);
    let run = |c: RunConfig, method: Box<dyn Method>| {
        let mut events = Vec::new();
        let outcome = run_method(
            c,
            method,
            Device::flex(),
            false,
            &mut |e| events.push(e.clone()),
            &cancel,
        )
        .expect("run");
        assert!(matches!(outcome, RunOutcome::Finished(_)));
        events
    };
    let dense = run(config("dense"), hooks_for(&MethodConfig::Dense));
    let calls = Calls::default();
    let counted = run(
        config("counted"),
        Box::new(Counting {
            calls: Arc::clone(&calls),
        }),
    );
    assert_eq!(losses(&counted), losses(&dense));
    let weights = |run: &str| {
        read_float_tensors(&dir.path().join(run).join("model/model.safetensors"))
            .expect("model")
            .tensors
    };
    assert_eq!(weights("counted"), weights("dense"));
    let calls = calls.lock().expect("calls").clone();
    // 12 steps; evaluations at 5, 10 and 12; checkpoints at 4 and 8; the final view.
    let expected: BTreeMap<&str, usize> = [
        ("prepare", 1),
        ("start", 1),
        ("forward_view", 12),
        ("after_backward", 12),
        ("after_step", 12),
        ("eval_view", 4),
        ("state_tensors", 2),
        ("finish", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(calls, expected);
}
