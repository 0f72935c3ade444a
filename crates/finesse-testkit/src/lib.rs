//! Test support shared by finesse's tests (a dev-dependency only, never shipped).
//!
//! - [`paths`]: the checkout's root, the golden fixtures (`tests/fixtures`), the GLUE slices
//!   (`tests/data/glue`), `assets/tiny-bert`.
//! - [`real_model`]: the real model, fetched on first use; a failure when it cannot be had,
//!   skipped only with `FINESSE_SKIP_REAL_MODEL=1`.
//! - [`TinyBert`]: the tiny random BERT (2 layers, hidden 32) written as an HF folder;
//!   [`tiny_model`] is the common case.
//! - [`ToySst2`]: a small synthetic SST-2 folder; [`tiny_glue`] is the common case.
//! - [`cli`]: running the `finesse` binary ([`finesse!`]) and reading what it wrote.
//!
//! Helpers panic with a message on failure: they are test code.

pub mod cli;
pub mod paths;
pub mod real_model;
mod tiny_bert;
mod toy_glue;

pub use cli::{events, ok, stderr};
pub use paths::{fixtures, glue_data, root, tiny_assets};
pub use real_model::{SKIP_REAL_MODEL, real_model, real_model_skipped};
pub use tiny_bert::{TinyBert, tiny_model};
pub use toy_glue::{Sentences, ToySst2, tiny_glue};
