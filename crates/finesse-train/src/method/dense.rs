//! Dense fine-tuning: every parameter trained; every hook keeps its default.

use super::Method;

/// Ordinary fine-tuning of every parameter.
pub struct Dense;

impl Method for Dense {}
