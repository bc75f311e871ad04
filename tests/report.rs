//! `accord compare --plots` and `accord report`: plots as SVG and PNG, and one
//! self-contained HTML file that headless Chromium renders with its table, figures and
//! the best- and worst-scored dialogues.

mod common;

use std::path::Path;
use std::process::Command;

use common::Workspace;

/// A trained tiny model evaluated against its base: a table, reward curves and bars; and
/// four held-out dialogues of the base model, judged.
fn evaluated(ws: &Workspace) {
    let model = common::tiny_long_context(ws);
    let text = format!(
        "version: 1\nname: reported\nseed: 4\nmodels:\n  base:\n    source: {model}\n  \
         trained:\n    source: stage:train\nstages:\n  \
         dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 3, split: train}}\n  \
         pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
         train:\n    kind: grpo\n    needs: [pairs]\n    with: {{policy: base, reward: {{contains: \"e\"}}, \
         steps: 3, batch_prompts: 1, group_size: 2, max_turns: 2, max_new_tokens: 6, agreement: marker}}\n  \
         heldout_dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2, split: heldout}}\n  \
         heldout:\n    kind: persona_pairing\n    needs: [heldout_dilemmas]\n  \
         eval:\n    kind: evaluate\n    needs: [heldout]\n    with: {{models: [trained], baseline: base, judge: base, \
         suites: [collective_agency, general], repeats: 2, items: 2, max_new_tokens: 6, resamples: 200}}\n  \
         dialogues:\n    kind: rollout\n    needs: [heldout]\n    with: {{model: base, group_size: 2, \
         max_turns: 2, max_new_tokens: 6, agreement: marker}}\n  \
         scores:\n    kind: judge\n    needs: [dialogues]\n    with: {{model: base, rationale_tokens: 4, \
         no_agreement_score: null}}\n"
    );
    ws.write("spec.yaml", &text);
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The RGBA pixels of a PNG file and its width.
fn pixels(path: &Path) -> (Vec<[u8; 4]>, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let pixels = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            4 => [p[0], p[1], p[2], p[3]],
            3 => [p[0], p[1], p[2], 255],
            _ => [p[0], p[0], p[0], 255],
        })
        .collect();
    (pixels, info.width as usize)
}

/// Pixels close to the first bar colour (blue at 75% over white).
fn bar_pixels(pixels: &[[u8; 4]]) -> usize {
    pixels
        .iter()
        .filter(|p| {
            (p[0] as i32 - 87).abs() < 12
                && (p[1] as i32 - 153).abs() < 12
                && (p[2] as i32 - 199).abs() < 12
        })
        .count()
}

#[test]
fn plots_come_as_svg_and_png() {
    let ws = Workspace::new();
    evaluated(&ws);
    let out = ws.accord(&[
        "compare",
        "spec.yaml",
        "--backend",
        "flex",
        "--baseline",
        "base",
        "--plots",
        "plots",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for name in [
        "reward_curves.svg",
        "reward_curves.png",
        "metrics.svg",
        "metrics.png",
    ] {
        assert!(
            out.stderr.contains(&format!("wrote plots/{name}")),
            "{}",
            out.stderr
        );
    }
    let svg = ws.read("plots/metrics.svg");
    assert!(
        svg.contains("<svg") && svg.contains("ca_score") && svg.contains("mc_accuracy"),
        "{svg}"
    );
    let curves = ws.read("plots/reward_curves.svg");
    assert!(curves.contains("Training reward") && curves.contains("step"));
    let (png, width) = pixels(&ws.path().join("plots/metrics.png"));
    assert!(width > 300);
    assert!(bar_pixels(&png) > 100, "the PNG holds the bars");
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let ws = Workspace::new();
    evaluated(&ws);
    let out = ws.accord(&[
        "report",
        "spec.yaml",
        "--backend",
        "flex",
        "--baseline",
        "base",
        "-o",
        "report.html",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "report.html\n");
    let html = ws.read("report.html");
    // Self-contained: nothing is fetched.
    for outside in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(!html.contains(outside), "the report refers to `{outside}`");
    }
    let report = ws.path().join("report.html");
    let url = format!("file://{}", report.display());
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is installed (`.ci/run` installs Debian's `chromium`)");
    let profile = ws.path().join("chromium-profile");
    let base = |args: &[&str]| {
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(&url);
        cmd.output().unwrap()
    };
    // The page as Chromium built it: the table's rows and the inline figures.
    let dom = String::from_utf8(base(&["--dump-dom"]).stdout).unwrap();
    // A header and 8 rows: `ca_score`, perplexity and accuracy of each model, and the
    // trained model's win and loss rates.
    assert_eq!(dom.matches("<tr").count(), 9, "{dom}");
    assert!(dom.contains("ca_score") && dom.contains("Δ vs base"));
    assert_eq!(
        dom.matches("<svg").count(),
        2,
        "metric bars and reward curves"
    );
    // And as it is drawn: text and the figures' colours on the screen.
    let shot = ws.path().join("report.png");
    let screenshot = base(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,2400",
    ]);
    assert!(
        shot.exists(),
        "{}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    let (png, _) = pixels(&shot);
    let ink = png
        .iter()
        .filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100)
        .count();
    assert!(ink > 2000, "the table's text is drawn ({ink} dark pixels)");
    assert!(bar_pixels(&png) > 100, "the figures are drawn");

    // The best- and worst-scored dialogues, as the judge scored them, as transcripts.
    let scores = ws.accord(&[
        "show",
        "spec.yaml",
        "scores",
        "--backend",
        "flex",
        "--format",
        "json",
    ]);
    let scores: serde_json::Value = serde_json::from_str(&scores.stdout).unwrap();
    let scored: Vec<(String, f64)> = scores
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            Some((
                s["dialogue_id"].as_str()?.to_string(),
                s["ca_score"].as_f64()?,
            ))
        })
        .collect();
    assert!(scored.len() >= 2, "{scores}");
    let best = scored.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    let worst = scored.iter().map(|s| s.1).fold(f64::MAX, f64::min);
    // The first of the best, the last of the worst.
    let best_id = &scored.iter().find(|s| s.1 == best).unwrap().0;
    let worst_id = &scored.iter().rev().find(|s| s.1 == worst).unwrap().0;
    assert!(dom.contains("<h2>Dialogues</h2>"), "{dom}");
    assert_eq!(
        dom.matches("<article class=\"dialogue\"").count(),
        2,
        "{dom}"
    );
    for (label, score, id) in [
        ("Best scored", best, best_id),
        ("Worst scored", worst, worst_id),
    ] {
        let article = &dom[dom.find(&format!("id=\"dialogue-{id}\"")).unwrap()..];
        let article = &article[..article.find("</article>").unwrap()];
        assert!(
            article.contains(&format!("{label}: {score:.2}")),
            "{article}"
        );
        assert!(article.contains("<b>Dilemma.</b>") && article.contains("<b>Agreement</b>"));
        assert!(
            article.contains("<li><b>"),
            "every turn with its speaker: {article}"
        );
        assert!(
            article.contains(&format!("Collective Agency {score:.2} of 5")),
            "{article}"
        );
    }
}

/// Two fixture models (Qwen2 and Llama) on the deterministic `general` suite: perplexity
/// and multiple-choice accuracy, no sampling and no training, so the numbers are the same
/// on every run.
fn two_models_evaluated(ws: &Workspace) {
    let qwen = common::tiny_long_context(ws);
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/llama-gqa");
    std::fs::create_dir_all(ws.path().join("llama")).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            ws.path().join("llama").join(entry.file_name()),
        )
        .unwrap();
    }
    let config = ws.read("llama/config.json").replace(
        "\"max_position_embeddings\": 256",
        "\"max_position_embeddings\": 4096",
    );
    ws.write("llama/config.json", &config);
    let text = format!(
        "version: 1\nname: compared\nseed: 4\nmodels:\n  qwen:\n    source: {qwen}\n  \
         llama:\n    source: path:llama\nstages:\n  \
         heldout_dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 2, split: heldout}}\n  \
         heldout:\n    kind: persona_pairing\n    needs: [heldout_dilemmas]\n  \
         eval:\n    kind: evaluate\n    needs: [heldout]\n    with: {{models: [llama], baseline: qwen, judge: qwen, \
         suites: [general]}}\n"
    );
    ws.write("spec.yaml", &text);
    let run = ws.accord(&["run", "spec.yaml", "--backend", "flex"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The terminal table: aligned columns with numbers on the right, the significant
/// differences starred in a column of their own, and nothing but the table.
#[test]
fn compare_prints_an_aligned_table() {
    let ws = Workspace::new();
    two_models_evaluated(&ws);
    let compare = |format: &str| {
        ws.accord(&[
            "compare",
            "spec.yaml",
            "--backend",
            "flex",
            "--baseline",
            "qwen",
            "--format",
            format,
        ])
    };
    let out = compare("table");
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("compare_table", out.stdout);
    });
    assert!(!out.stdout.contains("shape:") && !out.stdout.contains("---"));
    let lines: Vec<&str> = out.stdout.lines().collect();
    // The means end in one column: right-aligned.
    let mean_end = lines[0].find("mean").unwrap() + "mean".len();
    for line in &lines[1..] {
        let bytes = line.as_bytes();
        assert!(bytes[mean_end - 1].is_ascii_digit(), "{line}");
        assert_eq!(bytes[mean_end], b' ', "{line}");
    }
    // A star on every line CSV calls significant, and on no other.
    let csv = compare("csv");
    let significant: Vec<bool> = csv
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.ends_with(",true"))
        .collect();
    let starred: Vec<bool> = lines[1..].iter().map(|l| l.ends_with(" *")).collect();
    assert_eq!(starred, significant, "{}\n{}", out.stdout, csv.stdout);
    assert!(starred.contains(&true), "{}", out.stdout);
    // Markdown keeps its form: the star in the difference's cell.
    let markdown = compare("markdown");
    assert!(markdown.stdout.starts_with(
        "| variant | model | metric | mean | ± sd | 95% CI | n | Δ vs qwen |\n| --- |"
    ));
    assert_eq!(
        markdown.stdout.matches(" * |").count(),
        1,
        "{}",
        markdown.stdout
    );
}
