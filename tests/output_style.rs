//! Colour only on a terminal: never when piped, never with `NO_COLOR`; quiet is quiet.

mod common;

use common::{PIPELINE, Workspace};

#[test]
fn piped_output_has_no_escape_codes() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let mut cmd = ws.command(&common::accord_bin(), &["run", "spec.yaml"]);
    cmd.env_remove("NO_COLOR");
    let out = common::run(cmd);
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'),
        "{out:?}"
    );
    let mut cmd = ws.command(&common::accord_bin(), &["status", "spec.yaml"]);
    cmd.env_remove("NO_COLOR");
    assert!(!common::run(cmd).stdout.contains('\u{1b}'));
}

#[test]
fn forced_colour_is_stripped_by_no_color() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let mut cmd = ws.command(&common::accord_bin(), &["status", "spec.yaml"]);
    cmd.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1");
    assert!(
        common::run(cmd).stdout.contains('\u{1b}'),
        "CLICOLOR_FORCE shows colour"
    );
    let mut cmd = ws.command(&common::accord_bin(), &["status", "spec.yaml"]);
    cmd.env("NO_COLOR", "1").env("CLICOLOR_FORCE", "1");
    assert!(!common::run(cmd).stdout.contains('\u{1b}'));
}

#[test]
fn progress_lines_go_to_stderr_and_quiet_silences_them() {
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let out = ws.accord(&["run", "spec.yaml"]);
    assert!(out.stderr.contains("dilemmas: running"), "{}", out.stderr);
    assert!(out.stderr.contains("pairs: ran in"), "{}", out.stderr);
    assert_eq!(out.stdout, "2 ran, 0 cached\n");
    let ws = Workspace::new();
    ws.write("spec.yaml", PIPELINE);
    let out = ws.accord(&["run", "spec.yaml", "--quiet"]);
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout, "2 ran, 0 cached\n");
}
