//! `accord schema`: the JSON Schema of specs, or the artifact columns as Markdown.

use super::print;
use crate::Registry;

pub fn schema(registry: &Registry, artifacts: bool) -> std::io::Result<i32> {
    if artifacts {
        print(&crate::spec::schema::artifacts_markdown(registry))
    } else {
        print(&crate::spec::schema::pipeline_schema(registry))
    }
}
