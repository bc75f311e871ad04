//! The checked-in schemas match what the code generates.

#[test]
fn pipeline_schema_is_up_to_date() {
    let generated = accord::spec::schema::pipeline_schema(&accord::Registry::builtin());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/pipeline.schema.json");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "schemas/pipeline.schema.json is stale: run `cargo run -- schema > schemas/pipeline.schema.json`"
    );
}

#[test]
fn artifact_schemas_are_up_to_date() {
    let generated = accord::spec::schema::artifacts_markdown(&accord::Registry::builtin());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/artifacts.md");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "schemas/artifacts.md is stale: run `cargo run -- schema --artifacts > schemas/artifacts.md`"
    );
}

#[test]
fn pipelines_reference_the_schema() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines");
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/pipeline.schema.json"),
            "{} does not reference the schema",
            entry.path().display()
        );
    }
}
