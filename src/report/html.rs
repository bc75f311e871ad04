//! `accord report`'s one self-contained HTML file: the comparison table and the plots
//! inline (SVG), with no script, stylesheet or image fetched from anywhere.

use super::compare::Comparison;
use super::plots::{PlotError, RewardCurve, curves_svg, metrics_svg};
use super::table::text_columns;

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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;\
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}\
table{border-collapse:collapse;font-size:.9rem}th,td{border-bottom:1px solid #ddd;\
padding:.3rem .6rem;text-align:left}th{background:#f4f4f4}tr.significant td{font-weight:600}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}.note{color:#555;font-size:.9rem}";

/// The report for spec `name`: the table, the metric bars and (when the spec trains) the
/// reward curves, as one HTML document.
pub fn report(
    name: &str,
    generated: &str,
    comparison: &Comparison,
    curves: &[RewardCurve],
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
    html.push_str("</body>\n</html>\n");
    Ok(html)
}
