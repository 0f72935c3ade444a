//! `finesse forward`: the parity tool. Runs the encoder in eval mode on token tensors from a
//! safetensors file (or on text) and writes/prints `last_hidden_state`, `pooler_output` and,
//! with a head, `logits`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor};
use clap::Args;
use finesse_bert::checkpoint::{TOKENIZER_FILE, WEIGHTS_FILE, model_folder_paths};
use finesse_bert::io::{
    check_outputs_distinct, read_float_tensors, read_int_tensors, write_f32_tensors,
};
use finesse_bert::{
    BertConfig, BertForSequenceClassification, BertInput, BertModel, BertTokenizer, HostTensor,
    TextInput, check_model_limits, load_bert,
};

use crate::device::DeviceChoice;

/// Arguments of `finesse forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Model: a known name (fetched on first use), an HF folder, or a run directory (its model/).
    #[arg(long, default_value = finesse_bert::hub::DEFAULT_MODEL)]
    model: String,
    /// safetensors file with int tensors `input_ids`, `token_type_ids`, `attention_mask`
    /// ([batch, len]).
    #[arg(long, requires = "out", conflicts_with = "text")]
    inputs: Option<PathBuf>,
    /// Output safetensors file: `last_hidden_state`, `pooler_output` (+ `logits` with --head).
    #[arg(long, requires = "inputs")]
    out: Option<PathBuf>,
    /// Classifier head: safetensors with `classifier.weight` [n, hidden], `classifier.bias` [n]
    /// (default: the model folder's own head, when it has one).
    #[arg(long)]
    head: Option<PathBuf>,
    /// A sentence to encode for a quick look.
    #[arg(long, required_unless_present = "inputs")]
    text: Option<String>,
    /// Second sentence of a pair (with --text).
    #[arg(long, requires = "text")]
    pair: Option<String>,
    /// Maximum tokens for --text (special tokens included).
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N; wgpu:list lists them), cuda.
    #[arg(long, value_parser = crate::device::parse, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
}

/// Runs `finesse forward`.
pub fn run(args: ForwardArgs) -> Result<()> {
    let device = args.device.device()?;
    let dir = finesse_train::models::model_folder(&args.model).context("resolving --model")?;
    if let Some(out) = &args.out {
        let mut inputs = model_folder_paths(&dir);
        inputs.extend(args.inputs.iter().chain(&args.head).cloned());
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        check_outputs_distinct(&[out.as_path()], &inputs)?;
    }
    let (bert, config, report) =
        load_bert(&dir, &device).with_context(|| format!("loading model {}", dir.display()))?;
    // The folder's own classifier head (a fine-tuned model) is used unless --head is given.
    let own_head = report.unused.iter().any(|n| n == "classifier.weight")
        && report.unused.iter().any(|n| n == "classifier.bias");
    let others: Vec<&String> = report
        .unused
        .iter()
        .filter(|n| !n.starts_with("classifier."))
        .collect();
    if !others.is_empty() {
        eprintln!(
            "note: {} checkpoint tensors unused: {}",
            others.len(),
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let head_file = args
        .head
        .clone()
        .or_else(|| own_head.then(|| dir.join(WEIGHTS_FILE)));
    let head = head_file
        .as_deref()
        .map(|p| read_head(p, &config))
        .transpose()?;

    let (input, batch, seq, real_tokens) = match (&args.inputs, &args.text) {
        (Some(path), _) => {
            let (input, b, s, real) = read_inputs(path, &config, &device)?;
            (input, b, s, real)
        }
        (None, Some(text)) => {
            let tok = BertTokenizer::from_file(&dir.join(TOKENIZER_FILE), args.max_seq_len)
                .context("loading the tokenizer")?;
            // Truncation to --max-seq-len then keeps every id and position in range.
            check_model_limits(&config, &tok, &dir)?;
            let item = match &args.pair {
                Some(p) => TextInput::pair(text.clone(), p.clone()),
                None => TextInput::single(text.clone()),
            };
            let enc = tok.encode_batch(&[item])?;
            let real = enc.real_tokens();
            let input = BertInput::from_host(
                enc.input_ids,
                enc.token_type_ids,
                enc.attention_mask,
                enc.batch,
                enc.seq,
                &device,
            );
            (input, enc.batch, enc.seq, real)
        }
        (None, None) => bail!("give --inputs FILE --out FILE, or --text"),
    };

    let started = std::time::Instant::now();
    let (out, logits) = run_model(bert, &config, head, input, &device)?;
    let elapsed = started.elapsed();
    let hidden = to_host(out.last_hidden_state, "last_hidden_state")?;
    let pooled = to_host(out.pooler_output, "pooler_output")?;
    let logits = logits.map(|l| to_host(l, "logits")).transpose()?;

    match args.out {
        Some(out_path) => {
            let mut tensors = vec![
                ("last_hidden_state".to_string(), hidden),
                ("pooler_output".to_string(), pooled),
            ];
            if let Some(l) = logits {
                tensors.push(("logits".to_string(), l));
            }
            let meta = BTreeMap::from([
                ("model".to_string(), dir.display().to_string()),
                ("device".to_string(), args.device.name().to_string()),
            ]);
            write_f32_tensors(&out_path, &tensors, meta)
                .with_context(|| format!("writing {}", out_path.display()))?;
            eprintln!(
                "{batch}×{seq} tokens on {} in {:.2}s → {}",
                args.device.name(),
                elapsed.as_secs_f64(),
                out_path.display()
            );
        }
        None => print_summary(
            &hidden,
            &pooled,
            logits.as_ref(),
            seq,
            real_tokens,
            args.device,
            elapsed,
        ),
    }
    Ok(())
}

fn run_model(
    bert: BertModel,
    config: &BertConfig,
    head: Option<(HostTensor, HostTensor)>,
    input: BertInput,
    device: &Device,
) -> Result<(finesse_bert::BertOutputs, Option<Tensor<2>>)> {
    match head {
        None => Ok((bert.forward(input), None)),
        Some((w, b)) => {
            let model = BertForSequenceClassification::with_head(bert, config, w, b, device)
                .context("head does not fit the model")?;
            let outputs = model.bert.forward(input);
            let logits = model.classifier.forward(outputs.pooler_output.clone());
            Ok((outputs, Some(logits)))
        }
    }
}

fn to_host<const D: usize>(t: Tensor<D>, what: &str) -> Result<HostTensor> {
    let shape = t.dims().to_vec();
    Ok(HostTensor::new(
        shape,
        finesse_bert::readback::floats(t, what)?,
    ))
}

pub(crate) fn read_head(path: &Path, config: &BertConfig) -> Result<(HostTensor, HostTensor)> {
    let mut t =
        read_float_tensors(path).with_context(|| format!("reading head {}", path.display()))?;
    let w = t.tensors.remove("classifier.weight");
    let b = t.tensors.remove("classifier.bias");
    let (Some(w), Some(b)) = (w, b) else {
        bail!(
            "{}: needs tensors `classifier.weight` and `classifier.bias`",
            path.display()
        );
    };
    ensure!(
        w.shape.len() == 2 && w.shape[1] == config.hidden_size && b.shape == [w.shape[0]],
        "{}: classifier.weight {:?} / classifier.bias {:?} do not fit hidden size {} \
         (expected [n, {}] and [n])",
        path.display(),
        w.shape,
        b.shape,
        config.hidden_size,
        config.hidden_size
    );
    Ok((w, b))
}

/// Reads and checks the three token tensors, so bad ids are an error here and not a panic
/// inside an embedding lookup.
fn read_inputs(
    path: &Path,
    config: &BertConfig,
    device: &Device,
) -> Result<(BertInput, usize, usize, usize)> {
    let names = ["input_ids", "token_type_ids", "attention_mask"];
    let t =
        read_int_tensors(path, &names).with_context(|| format!("reading {}", path.display()))?;
    let shape = t[0].shape.clone();
    ensure!(
        shape.len() == 2,
        "{}: input_ids must be [batch, len], got {:?}",
        path.display(),
        shape
    );
    for (name, tensor) in names.iter().zip(&t) {
        ensure!(
            tensor.shape == shape,
            "{}: `{name}` has shape {:?}, input_ids {:?}",
            path.display(),
            tensor.shape,
            shape
        );
    }
    let (batch, seq) = (shape[0], shape[1]);
    ensure!(batch > 0 && seq > 0, "{}: empty input", path.display());
    ensure!(
        seq <= config.max_position_embeddings,
        "{}: length {seq} exceeds max_position_embeddings {}",
        path.display(),
        config.max_position_embeddings
    );
    let check = |name: &str, v: &[i64], limit: usize| -> Result<()> {
        if let Some((i, x)) = v
            .iter()
            .enumerate()
            .find(|(_, x)| **x < 0 || **x as usize >= limit)
        {
            bail!(
                "{}: `{name}`[{}][{}] = {x} is outside [0, {limit})",
                path.display(),
                i / seq,
                i % seq
            );
        }
        Ok(())
    };
    check("input_ids", &t[0].data, config.vocab_size)?;
    check("token_type_ids", &t[1].data, config.type_vocab_size)?;
    check("attention_mask", &t[2].data, 2)?;
    let real = t[2].data.iter().filter(|&&m| m != 0).count();
    let mut it = t.into_iter().map(|h| h.data);
    let (ids, types, mask) = (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    );
    Ok((
        BertInput::from_host(ids, types, mask, batch, seq, device),
        batch,
        seq,
        real,
    ))
}

fn print_summary(
    hidden: &HostTensor,
    pooled: &HostTensor,
    logits: Option<&HostTensor>,
    seq: usize,
    real_tokens: usize,
    device: DeviceChoice,
    elapsed: std::time::Duration,
) {
    let h = hidden.shape[2];
    let fmt = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:+.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Mean over real tokens (all of them: one unpadded row), L2-normalised: the
    // sentence-transformers embedding of all-MiniLM-L6-v2.
    let mut mean = vec![0.0f32; h];
    for t in 0..real_tokens.min(seq) {
        for (m, x) in mean.iter_mut().zip(&hidden.data[t * h..(t + 1) * h]) {
            *m += x / real_tokens as f32;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    println!(
        "tokens: {real_tokens}   device: {}   time: {:.3}s",
        device.name(),
        elapsed.as_secs_f64()
    );
    println!("last_hidden_state: {:?}", hidden.shape);
    println!("pooler_output[..8]: {}", fmt(&pooled.data[..8.min(h)]));
    let emb: Vec<f32> = mean.iter().map(|x| x / norm).collect();
    println!(
        "mean-pooled embedding (L2-normalised)[..8]: {}",
        fmt(&emb[..8.min(h)])
    );
    if let Some(l) = logits {
        println!("logits: {}", fmt(&l.data));
    }
}
