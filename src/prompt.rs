//! Rendering Jinja prompt templates (the built-in ones in `data/` and a spec's own files).
//!
//! Every prompt accord sends a model goes through [`render`], so templates get one
//! environment, one trimming rule and one error message. Templates are small and rendered
//! once per message, so none is cached.

use crate::stage::StageError;

/// `source` rendered with `context`, surrounding whitespace trimmed.
pub fn render(source: &str, context: minijinja::Value) -> Result<String, StageError> {
    let failed = |e: minijinja::Error| StageError::Failed(format!("prompt template: {e}"));
    let mut env = minijinja::Environment::new();
    env.add_template("prompt", source).map_err(failed)?;
    let template = env.get_template("prompt").map_err(failed)?;
    Ok(template.render(context).map_err(failed)?.trim().to_string())
}
