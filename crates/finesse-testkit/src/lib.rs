//! Test support shared by finesse's tests (a dev-dependency only, never shipped).
//!
//! - [`paths`]: the checkout's root, the shared fixtures folder, `assets/tiny-bert`.
//! - [`TinyBert`]: the tiny random BERT (2 layers, hidden 32) written as an HF folder;
//!   [`tiny_model`] is the common case.
//! - [`ToySst2`]: a small synthetic SST-2 folder; [`tiny_glue`] is the common case.
//! - [`cli`]: running the `finesse` binary ([`finesse!`]) and reading what it wrote.
//!
//! Helpers panic with a message on failure: they are test code.

pub mod cli;
pub mod paths;
mod tiny_bert;
mod toy_glue;

pub use cli::{events, ok, stderr};
pub use paths::{root, shared, tiny_assets};
pub use tiny_bert::{TinyBert, tiny_model};
pub use toy_glue::{Sentences, ToySst2, tiny_glue};
