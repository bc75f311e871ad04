//! `accord dag` in text, DOT and Mermaid.

mod common;

use common::{PIPELINE, Workspace};

#[test]
fn renders_each_format() {
    let ws = Workspace::new();
    let spec = format!("{PIPELINE}  judge-me:\n    kind: persona_pairing\n    needs: [dilemmas]\n");
    ws.write("spec.yaml", &spec);
    for format in ["text", "dot", "mermaid"] {
        let out = ws.accord(&["dag", "spec.yaml", "--format", format]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        insta::assert_snapshot!(format!("dag_{format}"), out.stdout);
    }
}
