//! `accord report`'s one self-contained HTML file: the comparison table, the plots
//! inline (SVG) and the best- and worst-scored dialogues of each variant as transcripts,
//! with no script, stylesheet or image fetched from anywhere.

use super::compare::Comparison;
use super::plots::{PlotError, RewardCurve, curves_svg, metrics_svg};
use super::table::text_columns;
use super::transcript::{Transcript, agreement_text, party_text, satisfaction_text, score_text};

/// The best- and worst-scored dialogues of one variant's rollout, by one judge.
pub struct Extremes {
    /// The variant's name, or the spec's name without ablations.
    pub variant: String,
    pub judge: String,
    pub rollout: String,
    pub best: Transcript,
    /// `None` when the best is the only dialogue with a score.
    pub worst: Option<Transcript>,
}

/// Text safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The comparison as an HTML table, the columns of the terminal table; rows whose
/// difference is significant are bold.
fn table(comparison: &Comparison) -> String {
    let columns = text_columns(comparison);
    let mut html = String::from("<table>\n<thead><tr>");
    for (name, _) in &columns {
        html.push_str(&format!("<th>{}</th>", escape(name)));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (row, metric) in comparison.metrics.iter().enumerate() {
        let significant = metric.delta.as_ref().is_some_and(|d| d.significant);
        html.push_str(if significant {
            "<tr class=\"significant\">"
        } else {
            "<tr>"
        });
        for (_, values) in &columns {
            html.push_str(&format!("<td>{}</td>", escape(&values[row])));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

/// One dialogue as an `<article>`: the dilemma, the parties, every turn, the agreement,
/// the summary and the judge's verdict; `title` heads it.
fn transcript(title: &str, t: &Transcript) -> String {
    let mut html = format!(
        "<article class=\"dialogue\" id=\"dialogue-{id}\">\n<h4>{title}</h4>\n\
         <p class=\"note\">dialogue {id}, pair {pair}, sample {sample}</p>\n\
         <p><b>Dilemma.</b> {dilemma}</p>\n<p><b>Parties.</b> {parties}</p>\n<ol class=\"turns\">\n",
        title = escape(title),
        id = escape(&t.dialogue_id),
        pair = escape(&t.group_id),
        sample = t.sample,
        dilemma = escape(&t.dilemma),
        parties = t
            .parties
            .iter()
            .map(|p| escape(&party_text(p)))
            .collect::<Vec<_>>()
            .join("; "),
    );
    let name = |speaker: usize| escape(t.parties.get(speaker).map_or("?", |p| p.name.as_str()));
    for turn in &t.turns {
        let check = turn
            .p_agree
            .map(|p| format!(" <span class=\"note\">P(agree) {p:.2}</span>"))
            .unwrap_or_default();
        html.push_str(&format!(
            "<li><b>{}</b>{check}<div class=\"said\">{}</div></li>\n",
            name(turn.speaker),
            escape(turn.text.trim())
        ));
    }
    html.push_str("</ol>\n");
    html.push_str(&format!(
        "<p><b>Agreement</b> {}.</p>\n",
        escape(&agreement_text(t))
    ));
    if let Some(summary) = &t.summary {
        html.push_str(&format!(
            "<p><b>Summary</b> by {}:</p>\n<div class=\"said\">{}</div>\n",
            name(summary.speaker),
            escape(summary.text.trim())
        ));
    }
    for verdict in &t.verdicts {
        html.push_str(&format!(
            "<p><b>Judge</b> <code>{}</code>: Collective Agency {}",
            escape(&verdict.stage),
            escape(&score_text(verdict))
        ));
        if let Some(satisfaction) = satisfaction_text(t, verdict) {
            html.push_str(&format!("; satisfaction: {}", escape(&satisfaction)));
        }
        html.push_str(".</p>\n");
        if !verdict.rationale.trim().is_empty() {
            html.push_str(&format!(
                "<blockquote class=\"rationale\">{}</blockquote>\n",
                escape(verdict.rationale.trim())
            ));
        }
    }
    html.push_str("</article>\n");
    html
}

/// Each variant's best- and worst-scored dialogues.
fn dialogues(extremes: &[Extremes]) -> String {
    let mut html = String::from(
        "<h2>Dialogues</h2>\n<p class=\"note\">The best- and the worst-scored dialogue of each \
         variant, as its judge scored them (Collective Agency, 0–5).</p>\n",
    );
    for e in extremes {
        html.push_str(&format!(
            "<section class=\"dialogues\">\n<h3>{}: <code>{}</code> on <code>{}</code></h3>\n",
            escape(&e.variant),
            escape(&e.judge),
            escape(&e.rollout)
        ));
        let score = |t: &Transcript| t.score().map_or_else(|| "-".into(), |s| format!("{s:.2}"));
        match &e.worst {
            Some(worst) => {
                html.push_str(&transcript(
                    &format!("Best scored: {}", score(&e.best)),
                    &e.best,
                ));
                html.push_str(&transcript(
                    &format!("Worst scored: {}", score(worst)),
                    worst,
                ));
            }
            None => html.push_str(&transcript(
                &format!("The only scored dialogue: {}", score(&e.best)),
                &e.best,
            )),
        }
        html.push_str("</section>\n");
    }
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;\
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}\
table{border-collapse:collapse;font-size:.9rem}th,td{border-bottom:1px solid #ddd;\
padding:.3rem .6rem;text-align:left}th{background:#f4f4f4}tr.significant td{font-weight:600}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}.note{color:#555;font-size:.9rem}\
h3{font-size:1.05rem}h4{font-size:1rem;margin:.5rem 0}\
article.dialogue{border-left:3px solid #ddd;padding:.2rem 1rem;margin:1rem 0}\
.said{white-space:pre-wrap;margin:.2rem 0 .6rem}ol.turns{padding-left:1.5rem}\
blockquote.rationale{margin:.3rem 0 .6rem 1rem;color:#444;white-space:pre-wrap}";

/// The report for spec `name`: the table, the metric bars, (when the spec trains) the
/// reward curves and (when it judges dialogues) the best and worst of them, as one HTML
/// document.
pub fn report(
    name: &str,
    generated: &str,
    comparison: &Comparison,
    curves: &[RewardCurve],
    extremes: &[Extremes],
) -> Result<String, PlotError> {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>accord report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p class=\"note\">accord {version}, {generated}. Means over repeats \
         ± their standard deviation, 95% bootstrap intervals over items{paired}.</p>\n",
        title = escape(name),
        version = crate::VERSION,
        generated = escape(generated),
        paired = match &comparison.baseline {
            Some(b) => format!(
                "; Δ: paired-bootstrap difference from {}, starred and bold when its interval leaves out zero",
                escape(b)
            ),
            None => String::new(),
        },
    );
    html.push_str("<h2>Metrics</h2>\n");
    html.push_str(&table(comparison));
    html.push_str("<h2>Metrics with 95% intervals</h2>\n<figure class=\"plot\">\n");
    html.push_str(&metrics_svg(comparison)?);
    html.push_str("\n</figure>\n");
    if !curves.is_empty() {
        html.push_str("<h2>Training reward</h2>\n<figure class=\"plot\">\n");
        html.push_str(&curves_svg(curves)?);
        html.push_str("\n</figure>\n");
    }
    if !extremes.is_empty() {
        html.push_str(&dialogues(extremes));
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}
